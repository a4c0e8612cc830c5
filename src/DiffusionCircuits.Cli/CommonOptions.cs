using System.CommandLine;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Cli;

/// <summary>
/// Where the denoiser comes from, the same in every command that runs one: <c>--model</c> (with <c>--vae-encoder</c> for a
/// latent model) or <c>--pipeline</c> (a diffusers/optimum ONNX folder), and its conditioning (<c>--prompt</c>,
/// <c>--conditioning</c>).
/// </summary>
internal sealed record DenoiserOptions(Option<string> Model, Option<string?> Pipeline, Option<string?> VaeEncoder, Option<string?> Prompt, Option<string?> Conditioning,
    Option<int?> ImageSize)
{
    public static DenoiserOptions Create() => new(CommonOptions.Model(),
        new Option<string?>("--pipeline") { Description = "A diffusers/optimum ONNX pipeline folder (model_index.json, unet/, vae_encoder/, text_encoder/, tokenizer/, scheduler/): " +
                                                          "faces are encoded by its VAE encoder, the schedule is its scheduler's. Instead of --model." },
        new Option<string?>("--vae-encoder") { Description = "The VAE encoder (ONNX) of a latent --model: faces become latents = encoder mean x scaling_factor (from a config.json beside it, else 0.18215)." },
        new Option<string?>("--prompt") { Description = "Text conditioning through the pipeline's CLIP tokenizer and text encoder (needs --pipeline); \"\" is the unconditional case." },
        new Option<string?>("--conditioning") { Description = "Text conditioning as embeddings in a .npy file, [1 or N, tokens, dim] float32 (N: row i conditions image i of each data set)." },
        new Option<int?>("--image-size") { Description = "Latent models: encode faces at this many pixels instead of the VAE's sample_size (e.g. 256 for Stable Diffusion 1.x: 32x32 latents, 16 times smaller attention maps)." });

    /// <summary>Adds the options to a command, in this order.</summary>
    public Command AddTo(Command command)
    {
        foreach (Option o in new Option[] { Model, Pipeline, VaeEncoder, Prompt, Conditioning, ImageSize }) command.Options.Add(o);
        return command;
    }

    /// <summary>The setup these options name; contradicting options are a one-line user error.</summary>
    public DenoiserSetup Resolve(ParseResult parse)
    {
        string? pipeline = parse.GetValue(Pipeline), vae = parse.GetValue(VaeEncoder), prompt = parse.GetValue(Prompt), conditioning = parse.GetValue(Conditioning);
        if (prompt != null && conditioning != null) throw new UserFacingException("Give --prompt or --conditioning, not both.");
        return CommonOptions.Translate(() =>
        {
            DenoiserSetup setup;
            if (pipeline == null) setup = DenoiserSetup.FromModel(parse.GetValue(Model)!, vae, prompt, conditioning);
            else
            {
                if (parse.GetResult(Model) is { Implicit: false }) throw new UserFacingException("Give --model or --pipeline, not both (the pipeline's UNet is unet/model.onnx).");
                if (vae != null) throw new UserFacingException("--vae-encoder is for a bare --model; a --pipeline uses its own vae_encoder/model.onnx.");
                setup = DenoiserSetup.FromPipeline(pipeline, prompt, conditioning);
            }
            return parse.GetValue(ImageSize) is int size ? setup.WithImageSize(size) : setup;
        });
    }

    /// <summary>The denoiser as a command line names it (for run locks and logs).</summary>
    public string Describe(ParseResult parse) => parse.GetValue(Pipeline) is string p ? $"--pipeline {p}" : $"--model {parse.GetValue(Model)}";
}

/// <summary>The inputs of the commands that run a model on faces: real faces (and a file list), images, synthetic seed, timesteps.</summary>
internal sealed record FaceInputs(Option<string?> Real, Option<string?> Heldout, Option<int> Images, Option<int> SyntheticSeed, Option<string> Timesteps)
{
    public static FaceInputs Create(int defaultImages, string realExtra = "", bool realRequired = false)
    {
        var real = CommonOptions.Real(realExtra);
        real.Required = realRequired;
        return new(real, CommonOptions.Heldout(), CommonOptions.Images(defaultImages), CommonOptions.SyntheticSeed(), CommonOptions.Timesteps());
    }

    /// <summary>Adds the options to a command, in this order.</summary>
    public Command AddTo(Command command)
    {
        foreach (Option o in new Option[] { Real, Heldout, Images, SyntheticSeed, Timesteps }) command.Options.Add(o);
        return command;
    }
}

/// <summary>
/// A denoiser opened for a command: its conditioning, a capture session fed with it, and for a latent model the VAE
/// encoder, which faces go through (<see cref="Prepare"/>) before the session sees them.
/// </summary>
internal sealed class OpenedDenoiser : IDisposable
{
    private OpenedDenoiser(DenoiserSetup setup, ModelConditioning? conditioning, AttentionCaptureSession session, LatentEncoder? encoder) =>
        (Setup, Conditioning, Session, Encoder) = (setup, conditioning, session, encoder);

    public DenoiserSetup Setup { get; }
    public ModelConditioning? Conditioning { get; }
    public AttentionCaptureSession Session { get; }
    public LatentEncoder? Encoder { get; }

    /// <summary>Faces are loaded at this side: the VAE encoder's input, or the model's own.</summary>
    public int ImageSize => Encoder?.Height ?? Session.Height;

    /// <summary>Opens the setup's model with <paramref name="options"/> (conditioning, schedule and sample size from the setup).</summary>
    public static OpenedDenoiser Open(DenoiserSetup setup, CaptureOptions options)
    {
        var conditioning = setup.LoadConditioning();
        var session = new AttentionCaptureSession(setup.ModelPath, options with
        {
            Conditioning = conditioning, Schedule = setup.LoadSchedule(), SampleSize = setup.LatentSize ?? options.SampleSize,
        });
        try
        {
            if (session.Channels != 3 && !setup.IsLatent)
                throw new UserFacingException($"Model '{setup.ModelPath}': input '{session.Discovery.Signature.Sample.Name}' takes {session.Channels} channels, but faces are RGB: " +
                                              "a latent model needs its VAE encoder in front. Pass --pipeline DIR (a diffusers/optimum ONNX export) or --vae-encoder FILE.");
            return new OpenedDenoiser(setup, conditioning, session, setup.OpenLatentEncoder(session.Channels, session.Height));
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The faces as the model takes them: with their latents for a latent model; with one conditioning row per image,
    /// row i conditions the i-th face of each data set.
    /// </summary>
    public List<FaceImage> Prepare(IEnumerable<FaceImage> images) => Prepare(images, Encoder, Conditioning);

    /// <summary><see cref="Prepare(IEnumerable{FaceImage})"/> for any encoder and conditioning.</summary>
    public static List<FaceImage> Prepare(IEnumerable<FaceImage> images, LatentEncoder? encoder, ModelConditioning? conditioning)
    {
        var list = encoder == null ? images.ToList() : encoder.Encode(images).ToList();
        conditioning?.AssignRows(list.Select(i => i.Id).ToList());
        return list;
    }

    public void Dispose()
    {
        Session.Dispose();
        Encoder?.Dispose();
    }
}

/// <summary>Options several commands share, defined once so their names, defaults and help text agree.</summary>
internal static class CommonOptions
{
    public static Option<string> Model() => new("--model") { Description = "The denoiser (ONNX).", DefaultValueFactory = _ => Defaults.ModelPath };

    public static Option<string?> Real(string extra = "") => new("--real") { Description = "Real faces: an img_align_celeba folder (or any image folder)." + extra };

    public static Option<string?> Heldout() => new("--heldout") { Description = "Only these files of --real (one name per line, # comments), e.g. models/heldout-celeba.txt." };

    public static Option<int> Images(int defaultCount, string extra = "") =>
        new("--images") { Description = $"Images per data set ({AnalysisLimits.MinImages}..{AnalysisLimits.MaxImages}).{extra}", DefaultValueFactory = _ => defaultCount };

    public static Option<int> SyntheticSeed() => new("--synthetic-seed") { Description = "Seed of the synthetic faces.", DefaultValueFactory = _ => 1 };

    public static Option<string> Timesteps() => new("--timesteps") { Description = "Comma-separated timesteps in 0..999.", DefaultValueFactory = _ => string.Join(",", Defaults.Analysis.Timesteps) };

    public static Option<int> Roles() => new("--roles")
    {
        Description = $"Number of functional roles k for k-means ({AnalysisLimits.MinRoles}..{AnalysisLimits.MaxRoles}, capped at the number of heads).",
        DefaultValueFactory = _ => Defaults.Analysis.Roles,
    };

    public static Option<int> Seed(string what = "noise, clustering, bootstrap and permutations") =>
        new("--seed") { Description = $"The seed of {what}.", DefaultValueFactory = _ => Defaults.Analysis.Seed };

    public static Option<double> Tolerance() => new("--tolerance")
    {
        Description = "Circuit tolerance tau: % degradation the joint ablation may reach (0 < tau <= 1000).", DefaultValueFactory = _ => Defaults.Analysis.TolerancePercent,
    };

    public static Option<int> Bootstrap() => new("--bootstrap")
    {
        Description = $"Bootstrap resamples and permutations ({AnalysisLimits.MinResamples}..{AnalysisLimits.MaxResamples}).", DefaultValueFactory = _ => Defaults.Analysis.Bootstrap,
    };

    public static Option<AblationKind> Ablation() => new("--ablation")
    {
        Description = "zero (z = 0), mean (z = its mean over the data set at the same timestep and position) or resample (z = its value on another image " +
                      "of the same data set at the same timestep and position, seeded, --resample-draws draws averaged).", DefaultValueFactory = _ => Defaults.Analysis.Ablation,
    };

    public static Option<int> ResampleDraws() => new("--resample-draws")
    {
        Description = $"Donor images per image and timestep for --ablation resample, losses averaged ({AnalysisLimits.MinResampleDraws}..{AnalysisLimits.MaxResampleDraws}).",
        DefaultValueFactory = _ => Defaults.Analysis.ResampleDraws,
    };

    /// <summary>"1 head", "3 heads".</summary>
    public static string Count(int n, string noun) => $"{n} {noun}{(n == 1 ? "" : "s")}";

    public static Option<int> PatchPairs() => new("--patch-pairs")
    {
        Description = "Activation patching between the data sets (METHOD.md 5b): at most this many seeded synthetic/real pairs, " +
                      $"each head's output swapped in both directions (0 = off, up to {AnalysisLimits.MaxImages}).",
        DefaultValueFactory = _ => Defaults.Analysis.PatchingPairs,
    };

    public static Option<int> Batch(int defaultRows) =>
        new("--batch") { Description = $"Rows (image x timestep) per ONNX Runtime run (1..{AnalysisLimits.MaxBatch}).", DefaultValueFactory = _ => defaultRows };

    /// <summary>Rows per Run of the sweeps; its default was measured on a CPU (docs/PERFORMANCE.md), a GPU may want more.</summary>
    public static Option<int> SweepBatch() =>
        new("--batch")
        {
            Description = $"Rows (image x timestep) per ONNX Runtime run of the ablation and patching sweeps (1..{AnalysisLimits.MaxBatch}). " +
                          $"The default, {Defaults.Analysis.BatchSize}, is fastest on a CPU; on a GPU larger batches may pay. The numbers do not depend on it on a CPU.",
            DefaultValueFactory = _ => Defaults.Analysis.BatchSize,
        };

    public static Option<int?> Gpu() => new("--gpu") { Description = "CUDA device id (needs the GPU build, -p:Gpu=true, with CUDA 13 and cuDNN 9; falls back to the CPU with one line saying why)." };

    public static Option<string> Out(string defaultFolder, string holds) => new("--out", "-o") { Description = $"Folder for {holds}.", DefaultValueFactory = _ => defaultFolder };

    /// <summary>Comma-separated timesteps in 0..999, or a one-line user error.</summary>
    public static int[] ParseTimesteps(string text)
    {
        try
        {
            var ts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
            if (ts.Length == 0 || ts.Any(t => t < 0 || t > 999)) throw new FormatException();
            return ts;
        }
        catch (FormatException)
        {
            throw new UserFacingException($"--timesteps must be comma-separated integers in 0..999 (got '{text}').");
        }
    }


    /// <summary>Checks a shared option's value against <see cref="AnalysisLimits"/>, as a one-line user error.</summary>
    public static void Check(Action check)
    {
        try { check(); }
        catch (ArgumentException e) { throw new UserFacingException(e.Message, e); }
    }

    /// <summary>
    /// Runs library work whose ArgumentExceptions are the user's options (a report's), not bugs; the other input errors
    /// (files, models, data, folders) are exit 2 in every command already (<see cref="CliApp"/>).
    /// </summary>
    public static T Translate<T>(Func<T> work)
    {
        try { return work(); }
        catch (ArgumentException e) { throw new UserFacingException(e.Message, e); }
    }

    public static void Translate(Action work) => Translate(() => { work(); return 0; });

    /// <summary>
    /// Claims an output folder for this command (<see cref="Reporting.RunLock"/>): refused when it cannot be written or
    /// another run holds it (a running report, say). Dispose when done.
    /// </summary>
    public static IDisposable ClaimOutput(string folder, string description) => Reporting.RunLock.Acquire(folder, description);

    /// <summary>The skipped files of a folder, one line each on stderr (20 at most), so none is skipped silently.</summary>
    public static void ReportSkipped(ImageFolder folder)
    {
        foreach (var s in folder.Skipped.Take(20)) Console.Error.WriteLine($"skipped {s.Path}: {s.Reason}");
        if (folder.Skipped.Count > 20) Console.Error.WriteLine($"... and {folder.Skipped.Count - 20} more skipped files in '{folder.Root}'.");
    }

    /// <summary>Up to <paramref name="count"/> real faces of a folder, optionally restricted to a file list; errors name the folder or list.</summary>
    public static (List<FaceImage> Images, ImageFolder Folder) LoadReal(string folder, string? listFile, int size, int count)
    {
        HashSet<string>? only = null;
        if (listFile != null)
        {
            if (!File.Exists(listFile)) throw new UserFacingException($"File list '{listFile}' does not exist.");
            only = File.ReadAllLines(listFile).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToHashSet();
        }
        var images = new ImageFolder(folder, size, onlyFiles: only);
        var read = images.Read().Take(count).ToList();
        ReportSkipped(images);
        if (read.Count == 0)
            throw new UserFacingException($"No readable images in '{folder}'{(only != null ? $" among the files of '{listFile}'" : "")} ({images.Skipped.Count} skipped).");
        return (read, images);
    }
}
