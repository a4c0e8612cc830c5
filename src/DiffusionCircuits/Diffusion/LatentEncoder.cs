using System.Security.Cryptography;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Onnx.Proto;
using Microsoft.ML.OnnxRuntime;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Diffusion;

/// <summary>
/// A latent diffusion model's VAE encoder (<c>vae_encoder/model.onnx</c>): faces in [0, 1] become latents
/// x0 = scaling factor x mean of the encoder's Gaussian, [C, h, w], the space the UNet denoises in. Exports differ in
/// what they output: the distribution's parameters (mean and log-variance, 2C channels: the first C are the mean), or
/// a draw from it (optimum: <c>latent_dist.sample()</c>, with a RandomNormal node in the graph); a draw is made
/// deterministic by replacing the random node with zeros, which leaves mean + std x 0 = the mean.
/// </summary>
public sealed class LatentEncoder : IDisposable
{
    private static readonly HashSet<string> RandomOps = new() { "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike" };
    private readonly InferenceSession _session;
    private readonly string _input, _output, _path;
    private readonly DataType _inputType;

    /// <summary>
    /// The encoder at <paramref name="modelPath"/> for a UNet of <paramref name="latentChannels"/> channels; images of
    /// <paramref name="imageSize"/> pixels when its input size is dynamic; latents times <paramref name="scalingFactor"/>.
    /// </summary>
    public LatentEncoder(string modelPath, int latentChannels, double scalingFactor, int imageSize, SessionOptions? options = null)
    {
        _path = modelPath;
        if (!(scalingFactor > 0) || !double.IsFinite(scalingFactor)) throw new ArgumentException($"The latent scaling factor must be positive (got {scalingFactor}).");
        var model = OnnxModel.Load(modelPath);
        var inputs = model.Graph.Input.Where(i => model.Graph.Initializer.All(t => t.Name != i.Name)).Select(v => TensorSpec.Of(v)).ToList();
        if (inputs.Count != 1 || inputs[0].Rank != 4 || !ModelSignature.IsFloat(inputs[0].ElementType))
            throw new OnnxModelException($"VAE encoder '{modelPath}' must take one image input [batch, 3, height, width]; it takes {string.Join(", ", inputs.Select(i => $"{i.Name} {i.TypeText}{i.ShapeText}"))}.");
        var input = inputs[0];
        if (input.FixedDim(1) is long c && c != 3) throw new OnnxModelException($"VAE encoder '{modelPath}' takes {c}-channel images; faces are RGB (3 channels).");
        (_input, _inputType) = (input.Name, input.ElementType);
        _output = model.Graph.Output[0].Name;
        Height = (int)(input.FixedDim(2) ?? imageSize);
        Width = (int)(input.FixedDim(3) ?? imageSize);
        int randomNodes = MakeDeterministic(model);
        ScalingFactor = scalingFactor;
        Sha256 = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(modelPath))).ToLowerInvariant();
        _session = OrtSessions.Create(model, options ?? new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR });

        // One probe image: the latent's shape, and whether the output is [mean, log-variance] or the mean (a zeroed draw).
        RunBatch(new float[3 * Height * Width], 1, out var shape);
        if (shape.Length != 4) throw new OnnxModelException($"VAE encoder '{modelPath}' outputs [{string.Join(", ", shape)}]; expected latents [batch, channels, h, w].");
        OutputChannels = (int)shape[1];
        if (OutputChannels != latentChannels && OutputChannels != 2 * latentChannels)
            throw new OnnxModelException($"VAE encoder '{modelPath}' outputs {OutputChannels} channels; the UNet takes {latentChannels} (expected {latentChannels}, or {2 * latentChannels} for mean and log-variance). Use the pipeline's own encoder.");
        (Channels, LatentHeight, LatentWidth) = (latentChannels, (int)shape[2], (int)shape[3]);
        Note = (OutputChannels == 2 * latentChannels ? $"the first {latentChannels} of {OutputChannels} output channels (the mean)" : "its output")
               + (randomNodes > 0 ? $", with {randomNodes} random node(s) set to zero so the draw is the mean" : "")
               + $", times {scalingFactor:G6}";
    }

    /// <summary>Image rows the encoder takes.</summary>
    public int Height { get; }
    /// <summary>Image columns the encoder takes.</summary>
    public int Width { get; }
    /// <summary>Latent channels C (the UNet's).</summary>
    public int Channels { get; }
    /// <summary>Latent rows h.</summary>
    public int LatentHeight { get; }
    /// <summary>Latent columns w.</summary>
    public int LatentWidth { get; }
    /// <summary>Channels the encoder outputs: C (the mean, or a draw made the mean) or 2C (mean and log-variance).</summary>
    public int OutputChannels { get; }
    /// <summary>The factor latents are multiplied by (the pipeline's <c>scaling_factor</c>, 0.18215 for Stable Diffusion 1.x and 2.x).</summary>
    public double ScalingFactor { get; }
    /// <summary>SHA-256 of the encoder file.</summary>
    public string Sha256 { get; }
    /// <summary>How latents are read from the encoder, in words.</summary>
    public string Note { get; }

    /// <summary>
    /// The images with <see cref="FaceImage.Latent"/> set, <paramref name="batchSize"/> at a time through the encoder (each
    /// image once); streams, in order. Images must have the encoder's size.
    /// </summary>
    public IEnumerable<FaceImage> Encode(IEnumerable<FaceImage> images, int batchSize = 8)
    {
        int pixels = 3 * Height * Width, latent = Channels * LatentHeight * LatentWidth;
        foreach (var batch in images.Chunk(batchSize))
        {
            var input = new float[batch.Length * pixels];
            for (int i = 0; i < batch.Length; i++)
            {
                var image = batch[i];
                if (image.Width != Width || image.Height != Height || image.RgbPlanes.Length != pixels)
                    throw new InvalidDataException($"Image '{image.Id}' is {image.Height}x{image.Width}; the VAE encoder '{_path}' takes {Height}x{Width} RGB images.");
                for (int j = 0; j < pixels; j++) input[i * pixels + j] = 2f * image.RgbPlanes[j] - 1f;
            }
            var output = RunBatch(input, batch.Length, out _);
            int perImage = OutputChannels * LatentHeight * LatentWidth;
            for (int i = 0; i < batch.Length; i++)
            {
                var z = new float[latent];
                for (int j = 0; j < latent; j++) z[j] = (float)(output[i * perImage + j] * ScalingFactor);
                if (!System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(z))
                    throw new InvalidDataException($"The VAE encoder '{_path}' produced NaN or infinite latents for image '{batch[i].Id}'.");
                yield return batch[i] with { Latent = z };
            }
        }
    }

    private float[] RunBatch(float[] pixels, int batch, out long[] shape)
    {
        var dims = new long[] { batch, 3, Height, Width };
        using var value = _inputType == DataType.Float
            ? OrtValue.CreateTensorValueFromMemory(pixels, dims)
            : ProbeInputs.CreateTensor(_inputType, dims, pixels.Length, k => pixels[k], _input);
        try
        {
            using var run = new RunOptions();
            using var results = _session.Run(run, new[] { _input }, new[] { value }, new[] { _output });
            var info = results[0].GetTensorTypeAndShape();
            shape = info.Shape;
            return info.ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16
                ? results[0].GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)h).ToArray()
                : results[0].GetTensorDataAsSpan<float>().ToArray();
        }
        catch (OnnxRuntimeException e) { throw new OnnxModelException($"ONNX Runtime failed running VAE encoder '{_path}' on {batch} image(s) of {Height}x{Width}: {e.Message}", e); }
    }

    /// <summary>Replaces each random node by zeros of its shape and type; returns how many there were.</summary>
    private static int MakeDeterministic(OnnxModel model)
    {
        var graph = model.Graph;
        int count = 0;
        for (int i = 0; i < graph.Node.Count; i++)
        {
            var node = graph.Node[i];
            if (!RandomOps.Contains(node.OpType) || !(string.IsNullOrEmpty(node.Domain) || node.Domain == "ai.onnx")) continue;
            long dtype = node.Attribute.FirstOrDefault(a => a.Name == "dtype")?.I ?? (long)DataType.Float;
            var zero = new TensorProto { DataType = (int)dtype, Dims = { 1 } };
            if (dtype == (long)DataType.Float16) zero.Int32Data.Add(0); else if (dtype == (long)DataType.Double) zero.DoubleData.Add(0); else zero.FloatData.Add(0);
            var valueAttribute = new AttributeProto { Name = "value", T = zero, Type = AttributeProto.Types.AttributeType.Tensor };
            NodeProto replacement;
            if (node.OpType.EndsWith("Like", StringComparison.Ordinal))
            {
                // Zeros shaped like the input: ConstantOfShape(Shape(input)).
                string shape = $"{node.Output[0]}/dc_shape";
                graph.Node.Insert(i, new NodeProto { OpType = "Shape", Name = $"{node.Name}/dc_shape", Input = { node.Input[0] }, Output = { shape } });
                i++;
                replacement = new NodeProto { OpType = "ConstantOfShape", Name = $"{node.Name}/dc_zeros", Input = { shape }, Output = { node.Output[0] }, Attribute = { valueAttribute } };
            }
            else
            {
                var dims = node.Attribute.First(a => a.Name == "shape").Ints;
                var zeros = new TensorProto { DataType = (int)dtype, Dims = { dims } };
                long n = dims.Aggregate(1L, (a, b) => a * b);
                if (dtype == (long)DataType.Float16) zeros.Int32Data.AddRange(Enumerable.Repeat(0, (int)n));
                else if (dtype == (long)DataType.Double) zeros.DoubleData.AddRange(Enumerable.Repeat(0.0, (int)n));
                else zeros.FloatData.AddRange(Enumerable.Repeat(0f, (int)n));
                replacement = new NodeProto { OpType = "Constant", Name = $"{node.Name}/dc_zeros", Output = { node.Output[0] },
                    Attribute = { new AttributeProto { Name = "value", T = zeros, Type = AttributeProto.Types.AttributeType.Tensor } } };
            }
            graph.Node[i] = replacement;
            count++;
        }
        return count;
    }

    /// <inheritdoc/>
    public void Dispose() => _session.Dispose();
}
