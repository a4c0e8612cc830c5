using DiffusionCircuits.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Diffusion;

/// <summary>
/// Runs a denoiser eps_theta(x_t, t) in batches through ONNX Runtime: feeds the timestep in the model's own type and
/// rank, the conditioning (<see cref="ModelConditioning"/>, required when the model takes one), and reads the model's
/// output. Safe to call from one thread at a time.
/// </summary>
public sealed class DenoiserSession : IDisposable
{
    private readonly InferenceSession _session;
    // Held for the session's life: a RunOptions collected during a native Run call corrupts its flags.
    private readonly RunOptions _runOptions = new();

    /// <summary>
    /// A session on the model as it is (no instrumentation); <paramref name="sampleSize"/> for dynamic spatial sizes;
    /// <paramref name="conditioning"/> for a text-conditioned model.
    /// </summary>
    public DenoiserSession(OnnxModel model, int sampleSize = 32, SessionOptions? options = null, ModelConditioning? conditioning = null)
    {
        Signature = new ModelSignature(model);
        Conditioning = ModelConditioning.Bind(Signature, conditioning, model.SourcePath ?? "model");
        var s = Signature.Sample;
        Channels = (int)(s.FixedDim(1) ?? 3);
        Height = (int)(s.FixedDim(2) ?? sampleSize);
        Width = (int)(s.FixedDim(3) ?? sampleSize);
        FixedBatch = (int?)s.FixedDim(0);
        _session = OrtSessions.Create(model, options ?? new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR });
    }

    /// <summary>The model's inputs and outputs with their roles.</summary>
    public ModelSignature Signature { get; }
    /// <summary>What the conditioning inputs are fed.</summary>
    public ConditioningBinding Conditioning { get; }
    /// <summary>Channels of the noisy sample.</summary>
    public int Channels { get; }
    /// <summary>Height of the noisy sample.</summary>
    public int Height { get; }
    /// <summary>Width of the noisy sample.</summary>
    public int Width { get; }
    /// <summary>The batch size the model requires, or null when dynamic.</summary>
    public int? FixedBatch { get; }
    /// <summary>Values per sample.</summary>
    public int SampleLength => Channels * Height * Width;

    /// <summary>
    /// The model's output for a batch (eps for an eps-model; see <see cref="NoiseSchedule.Prediction"/>): <paramref name="noisy"/>
    /// is [B, C, H, W]; returns [B, C, H, W]. <paramref name="imageIds"/> pick conditioning rows when there is one per image.
    /// </summary>
    public float[] PredictNoise(float[] noisy, int[] timesteps, IReadOnlyList<string>? imageIds = null)
    {
        int batch = timesteps.Length;
        if (noisy.Length != batch * SampleLength)
            throw new ArgumentException($"Expected {batch} x {SampleLength} values, got {noisy.Length}.");
        if (FixedBatch is int fb && fb != batch)
            throw new ArgumentException($"The model takes batches of exactly {fb}; got {batch}.");
        var conditioning = Conditioning.Conditioning;
        var (names, values) = ProbeInputs.ForBatch(Signature, noisy, timesteps, Channels, Height, Width, Conditioning, r => conditioning?.RowOf(imageIds?[r]) ?? 0);
        try
        {
            using var results = _session.Run(_runOptions, names, values, new[] { Signature.NoiseOutput.Name });
            var output = results[0];
            if (output.GetTensorTypeAndShape().ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16)
                return output.GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)h).ToArray();
            return output.GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _session.Dispose();
        _runOptions.Dispose();
    }
}
