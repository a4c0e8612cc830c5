using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using DiffusionCircuits.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Diffusion;

/// <summary>
/// A denoiser and what it needs around it, from a bare model file (<c>--model</c>, with an optional <c>--vae-encoder</c>
/// and conditioning) or from a diffusers/optimum ONNX pipeline folder (<c>--pipeline</c>): the UNet, the VAE encoder of a
/// latent model and its scaling factor, the noise schedule, and where the conditioning comes from (a prompt through
/// the pipeline's tokenizer and text encoder, or embeddings in a .npy file). Every path is checked when the setup is
/// made; errors name the file and what is expected.
/// </summary>
public sealed record DenoiserSetup
{
    /// <summary>Stable Diffusion's latent scaling factor, used when a VAE config does not give one.</summary>
    public const double DefaultScalingFactor = 0.18215;

    /// <summary>The UNet (ONNX).</summary>
    public required string ModelPath { get; init; }
    /// <summary>The pipeline folder, when the setup comes from one.</summary>
    public string? PipelineFolder { get; init; }
    /// <summary>The VAE encoder of a latent model, or null for a pixel-space model.</summary>
    public string? VaeEncoderPath { get; init; }
    /// <summary>Latents are the encoder's mean times this.</summary>
    public double LatentScalingFactor { get; init; } = DefaultScalingFactor;
    /// <summary>Where <see cref="LatentScalingFactor"/> comes from, in words.</summary>
    public string ScalingFactorSource { get; init; } = "the default";
    /// <summary>Image side the VAE encoder takes when its input size is dynamic (its config's sample_size), or null.</summary>
    public int? ImageSize { get; init; }
    /// <summary>Latent side the UNet takes when its input size is dynamic (its config's sample_size), or null.</summary>
    public int? LatentSize { get; init; }
    /// <summary>Pixels per latent position of the VAE (2 to the number of its down blocks less one; 8 for Stable Diffusion).</summary>
    public int VaeDownsampling { get; init; } = 8;
    /// <summary>The scheduler config whose schedule the model was trained with, or null for the model's metadata.</summary>
    public string? SchedulerConfigPath { get; init; }
    /// <summary>The pipeline's text encoder, when it has one.</summary>
    public string? TextEncoderPath { get; init; }
    /// <summary>The pipeline's tokenizer folder, when it has one.</summary>
    public string? TokenizerFolder { get; init; }
    /// <summary>The prompt to condition on ("" is the unconditional case), or null.</summary>
    public string? Prompt { get; init; }
    /// <summary>A .npy file of embeddings to condition on, or null.</summary>
    public string? ConditioningPath { get; init; }

    /// <summary>Whether the model denoises latents (it has a VAE encoder in front).</summary>
    public bool IsLatent => VaeEncoderPath != null;

    /// <summary>
    /// A setup for a bare model: <paramref name="vaeEncoder"/> makes it a latent model (scaling factor and image size from a
    /// <c>config.json</c> beside the encoder, else 0.18215 and the encoder's own input size); conditioning from
    /// <paramref name="conditioningPath"/>. A prompt needs a pipeline's tokenizer and text encoder.
    /// </summary>
    public static DenoiserSetup FromModel(string modelPath, string? vaeEncoder = null, string? prompt = null, string? conditioningPath = null)
    {
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"Model '{modelPath}' does not exist.", modelPath);
        if (prompt != null)
            throw new ArgumentException("--prompt needs a pipeline's tokenizer and text encoder: use --pipeline DIR, or give the embeddings with --conditioning FILE.npy.");
        CheckConditioningFile(conditioningPath);
        var setup = new DenoiserSetup { ModelPath = modelPath, ConditioningPath = conditioningPath };
        if (vaeEncoder == null) return setup;
        if (!File.Exists(vaeEncoder)) throw new FileNotFoundException($"VAE encoder '{vaeEncoder}' (--vae-encoder) does not exist.", vaeEncoder);
        var config = ReadJson(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(vaeEncoder))!, "config.json"), optional: true);
        return setup with
        {
            VaeEncoderPath = vaeEncoder, ImageSize = SampleSize(config), VaeDownsampling = Downsampling(config),
            LatentScalingFactor = Number(config, "scaling_factor") ?? DefaultScalingFactor,
            ScalingFactorSource = Number(config, "scaling_factor") != null ? "config.json beside the VAE encoder" : $"the default ({DefaultScalingFactor}; no config.json beside the encoder gives one)",
        };
    }

    /// <summary>
    /// A setup from a diffusers/optimum ONNX pipeline folder: <c>model_index.json</c>, <c>unet/model.onnx</c>,
    /// <c>vae_encoder/model.onnx</c> (with its <c>config.json</c>: scaling_factor, sample_size),
    /// <c>scheduler/scheduler_config.json</c>, and for a prompt <c>text_encoder/model.onnx</c> and <c>tokenizer/</c>.
    /// </summary>
    public static DenoiserSetup FromPipeline(string folder, string? prompt = null, string? conditioningPath = null)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Pipeline folder '{folder}' (--pipeline) does not exist.");
        string Need(string relative, string what)
        {
            string path = Path.Combine(folder, relative);
            return File.Exists(path) ? path
                : throw new FileNotFoundException($"Pipeline folder '{folder}' has no {relative} ({what}). A diffusers/optimum ONNX export " +
                                                  "(optimum-cli export onnx --model ID DIR) writes model_index.json, unet/, vae_encoder/, text_encoder/, tokenizer/ and scheduler/.", path);
        }
        var index = ReadJson(Need("model_index.json", "the pipeline's index"), optional: false)!.Value;
        if (index.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"'{Path.Combine(folder, "model_index.json")}' is not a JSON object.");
        string unet = Need(Path.Combine("unet", "model.onnx"), "the denoising UNet");
        string vae = Need(Path.Combine("vae_encoder", "model.onnx"), "the VAE encoder that turns faces into latents");
        string scheduler = Need(Path.Combine("scheduler", "scheduler_config.json"), "the noise schedule the UNet was trained with");
        CheckConditioningFile(conditioningPath);
        if (prompt != null && conditioningPath != null) throw new ArgumentException("Give --prompt or --conditioning, not both.");
        string? textEncoder = null, tokenizer = null;
        if (prompt != null)
        {
            textEncoder = Need(Path.Combine("text_encoder", "model.onnx"), "the text encoder that --prompt needs");
            Need(Path.Combine("tokenizer", "vocab.json"), "the CLIP vocabulary that --prompt needs");
            Need(Path.Combine("tokenizer", "merges.txt"), "the CLIP merges that --prompt needs");
            tokenizer = Path.Combine(folder, "tokenizer");
        }
        var vaeConfig = ReadJson(Path.Combine(folder, "vae_encoder", "config.json"), optional: true)
                        ?? ReadJson(Path.Combine(folder, "vae", "config.json"), optional: true);
        var unetConfig = ReadJson(Path.Combine(folder, "unet", "config.json"), optional: true);
        double? scaling = Number(vaeConfig, "scaling_factor");
        return new DenoiserSetup
        {
            ModelPath = unet, PipelineFolder = folder, VaeEncoderPath = vae, SchedulerConfigPath = scheduler, TextEncoderPath = textEncoder, TokenizerFolder = tokenizer,
            Prompt = prompt, ConditioningPath = conditioningPath, LatentScalingFactor = scaling ?? DefaultScalingFactor,
            ScalingFactorSource = scaling != null ? "vae_encoder/config.json" : $"the default ({DefaultScalingFactor}; the VAE config gives none)",
            ImageSize = SampleSize(vaeConfig), LatentSize = SampleSize(unetConfig), VaeDownsampling = Downsampling(vaeConfig),
        };
    }

    /// <summary>
    /// The same setup with faces encoded at <paramref name="pixels"/> instead of the VAE's own size (a UNet and VAE with
    /// dynamic sizes take other sizes; smaller ones keep the attention maps, S^2 per head, within memory).
    /// </summary>
    public DenoiserSetup WithImageSize(int pixels)
    {
        if (!IsLatent) throw new ArgumentException("--image-size is for latent models (with --pipeline or --vae-encoder); a pixel model takes the size of its input.");
        if (pixels < VaeDownsampling || pixels > 4096 || pixels % VaeDownsampling != 0)
            throw new ArgumentException($"--image-size must be a multiple of the VAE's downsampling ({VaeDownsampling}) between {VaeDownsampling} and 4096 (got {pixels}).");
        return this with { ImageSize = pixels, LatentSize = pixels / VaeDownsampling };
    }

    /// <summary>The schedule of the pipeline's scheduler config, or null to read the model's metadata.</summary>
    public NoiseSchedule? LoadSchedule() => SchedulerConfigPath == null ? null : NoiseSchedule.FromSchedulerConfig(SchedulerConfigPath);

    /// <summary>The conditioning: the prompt through the pipeline's text encoder, the .npy file's embeddings, or null.</summary>
    public ModelConditioning? LoadConditioning(SessionOptions? options = null)
    {
        if (ConditioningPath != null) return ModelConditioning.FromNpy(ConditioningPath);
        if (Prompt == null) return null;
        using var encoder = new TextEncoder(TextEncoderPath!, new ClipTokenizer(TokenizerFolder!), options);
        return encoder.Encode(Prompt);
    }

    /// <summary>The VAE encoder for a UNet of <paramref name="latentChannels"/> channels and latent side <paramref name="latentSide"/>, or null for a pixel model.</summary>
    public LatentEncoder? OpenLatentEncoder(int latentChannels, int latentSide, SessionOptions? options = null) =>
        VaeEncoderPath == null ? null
            : new LatentEncoder(VaeEncoderPath, latentChannels, LatentScalingFactor, ImageSize ?? 8 * latentSide, options);

    /// <summary>What decides the numbers besides the UNet file (for the kept work's key and the methods section), in a fixed order.</summary>
    public IReadOnlyDictionary<string, string> Describe(ModelConditioning? conditioning) => new SortedDictionary<string, string>(StringComparer.Ordinal)
    {
        ["vaeEncoder"] = VaeEncoderPath == null ? "none" : $"{Sha256Of(VaeEncoderPath)} x {LatentScalingFactor.ToString("R", CultureInfo.InvariantCulture)}",
        ["schedule"] = SchedulerConfigPath == null ? "model metadata" : Sha256Of(SchedulerConfigPath),
        ["conditioning"] = conditioning == null ? "none" : conditioning.Sha256,
    };

    /// <summary>A model file as messages name it: its folder and file name (<c>vae_encoder/model.onnx</c>), since pipeline files are all model.onnx.</summary>
    public static string ShortName(string path) => $"{Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(path)))}/{Path.GetFileName(path)}";

    private static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }

    private static void CheckConditioningFile(string? path)
    {
        if (path != null && !File.Exists(path)) throw new FileNotFoundException($"Conditioning file '{path}' (--conditioning) does not exist.", path);
    }

    private static JsonElement? ReadJson(string path, bool optional)
    {
        if (!File.Exists(path))
            return optional ? null : throw new FileNotFoundException($"'{path}' does not exist.", path);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.Clone();
        }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e); }
    }

    private static double? Number(JsonElement? json, string key) =>
        json is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    /// <summary>A VAE config's downsampling: 2^(down blocks - 1) from block_out_channels, else Stable Diffusion's 8.</summary>
    private static int Downsampling(JsonElement? json) =>
        json is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("block_out_channels", out var blocks) && blocks.ValueKind == JsonValueKind.Array && blocks.GetArrayLength() is > 0 and < 8
            ? 1 << (blocks.GetArrayLength() - 1) : 8;

    /// <summary>A config's sample_size: a number, or [height, width] (square sizes only here).</summary>
    private static int? SampleSize(JsonElement? json)
    {
        if (json is not { ValueKind: JsonValueKind.Object } o || !o.TryGetProperty("sample_size", out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n > 0) return n;
        if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 2 && v[0].TryGetInt32(out int h) && v[1].TryGetInt32(out int w) && h == w && h > 0) return h;
        return null;
    }
}
