using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;

namespace DiffusionCircuits.Capture;

/// <summary>
/// The inputs of one batch of rows for an <see cref="AttentionCaptureSession"/>: each row's x_t, timestep and noise
/// eps (for the loss), filled with paired noise or given by the caller. The one batching helper of the engine: stages
/// cut their rows with <see cref="Enumerable.Chunk{TSource}(IEnumerable{TSource}, int)"/> into batches of
/// <see cref="Capacity"/> and fill one of these per batch; buffers are reused from batch to batch.
/// </summary>
internal sealed class NoisedRows
{
    private readonly AttentionCaptureSession _session;
    private readonly float[] _noisy, _eps;
    private readonly int _seed;

    /// <summary>Buffers for up to <paramref name="capacity"/> rows; <paramref name="seed"/> seeds the paired noise.</summary>
    public NoisedRows(AttentionCaptureSession session, int capacity, int seed)
    {
        (_session, Capacity, _seed) = (session, capacity, seed);
        _noisy = new float[capacity * session.SampleLength];
        _eps = new float[capacity * session.SampleLength];
        Timesteps = new int[capacity];
        _imageIds = new string?[capacity];
    }

    // Each row's image (null for rows the caller brings): what conditions it when the conditioning has a row per image.
    private readonly string?[] _imageIds;

    /// <summary>Each filled row's image id, or null for rows the caller brought (the first <see cref="Count"/> entries count).</summary>
    public IReadOnlyList<string?> ImageIds => _imageIds;

    /// <summary>
    /// Cuts <paramref name="rows"/> into batches of at most <paramref name="size"/>. For a model with a scalar timestep
    /// every batch holds rows of one timestep: rows are regrouped by <paramref name="timestepOf"/>, keeping their order
    /// within a timestep (results are stored by row, so the order of computation does not change them).
    /// </summary>
    public static IEnumerable<T[]> Batches<T>(AttentionCaptureSession session, IEnumerable<T> rows, int size, Func<T, int> timestepOf) =>
        session.ScalarTimestep ? rows.GroupBy(timestepOf).SelectMany(g => g.Chunk(size)) : rows.Chunk(size);

    /// <summary>Rows a batch holds at most.</summary>
    public int Capacity { get; }

    /// <summary>Rows filled so far in this batch.</summary>
    public int Count { get; private set; }

    /// <summary>Each filled row's timestep (the first <see cref="Count"/> entries count).</summary>
    public int[] Timesteps { get; }

    private int Length => _session.SampleLength;

    /// <summary>Starts a new batch.</summary>
    public void Clear() => Count = 0;

    /// <summary>Adds a row: <paramref name="image"/> noised to timestep <paramref name="t"/> with its paired noise.</summary>
    public int Add(FaceImage image, int t)
    {
        DenoiserEvaluation.CheckSize(image, _session.Channels, _session.Height, _session.Width, _session.Discovery.Signature.Sample.Name);
        int row = Count++;
        Timesteps[row] = t;
        _imageIds[row] = image.Id;
        ForwardNoising.ApplyPaired(image, _seed, t, _session.Schedule, _eps.AsSpan(row * Length, Length), _noisy.AsSpan(row * Length, Length));
        return row;
    }

    /// <summary>Adds a row: <paramref name="image"/> noised to timestep <paramref name="t"/> with the caller's noise <paramref name="eps"/>.</summary>
    public int Add(FaceImage image, ReadOnlySpan<float> eps, int t)
    {
        DenoiserEvaluation.CheckSize(image, _session.Channels, _session.Height, _session.Width, _session.Discovery.Signature.Sample.Name);
        int row = Count++;
        Timesteps[row] = t;
        _imageIds[row] = image.Id;
        eps.CopyTo(_eps.AsSpan(row * Length, Length));
        if (image.Latent is { } latent) ForwardNoising.ApplyToClean(latent, eps, _session.Schedule, t, _noisy.AsSpan(row * Length, Length));
        else ForwardNoising.Apply(image.RgbPlanes, eps, _session.Schedule, t, _noisy.AsSpan(row * Length, Length));
        return row;
    }

    /// <summary>Adds a row whose x_t and eps the caller brings.</summary>
    public int Add(ReadOnlySpan<float> noisy, ReadOnlySpan<float> eps, int t)
    {
        int row = Count++;
        Timesteps[row] = t;
        _imageIds[row] = null;
        noisy.CopyTo(_noisy.AsSpan(row * Length, Length));
        eps.CopyTo(_eps.AsSpan(row * Length, Length));
        return row;
    }

    /// <summary>x_t of the filled rows, [Count, C, H, W].</summary>
    public float[] Noisy => Slice(_noisy, Length);

    /// <summary>The noise of row <paramref name="row"/>.</summary>
    public ReadOnlySpan<float> Eps(int row) => _eps.AsSpan(row * Length, Length);

    /// <summary>Runs the filled rows (with optional per-row masks and means, see <see cref="AttentionCaptureSession.Run"/>).</summary>
    public CaptureBatch Run(IReadOnlyList<float[]>? masks = null, IReadOnlyList<float[]?>? means = null, IReadOnlyList<float[]?>? parts = null) =>
        _session.Run(Noisy, Timesteps[..Count], masks, means, _imageIds, parts);

    /// <summary>The first <see cref="Count"/> rows of a per-row buffer of <paramref name="perRow"/> values each (the buffer itself when full).</summary>
    public T[] Slice<T>(T[] buffer, int perRow) => Count == Capacity ? buffer : buffer[..(Count * perRow)];

    /// <summary>Mean squared error of row <paramref name="row"/>'s predicted noise against its eps.</summary>
    public float LossMse(CaptureBatch batch, int row) => NoiseLoss.MeanSquaredError(NoiseOf(batch.PredictedNoise(row), row), Eps(row));

    /// <summary>Mean squared error of row <paramref name="row"/> of a batch's predicted noise [B, C, H, W] against its eps.</summary>
    public float LossMse(ReadOnlySpan<float> noise, int row) => NoiseLoss.MeanSquaredError(NoiseOf(noise.Slice(row * Length, Length), row), Eps(row));

    /// <summary>
    /// The noise eps_hat that row <paramref name="row"/> of a batch's model output [B, C, H, W] stands for (converted for
    /// v or x0 models), valid until the next call on this thread.
    /// </summary>
    public ReadOnlySpan<float> PredictedEps(ReadOnlySpan<float> output, int row) => NoiseOf(output.Slice(row * Length, Length), row);

    /// <summary>The noise eps_hat that row <paramref name="row"/> of a batch stands for, valid until the next call on this thread.</summary>
    public ReadOnlySpan<float> PredictedEps(CaptureBatch batch, int row) => NoiseOf(batch.PredictedNoise(row), row);

    // One per thread: conditions of one batch are scored on several threads at once (RunParallelism).
    [ThreadStatic] private static float[]? t_converted;

    /// <summary>The noise a row's model output stands for: the output itself for an eps-model, else converted (v or x0 models).</summary>
    private ReadOnlySpan<float> NoiseOf(ReadOnlySpan<float> output, int row)
    {
        var schedule = _session.Schedule;
        if (schedule.Prediction == PredictionType.Epsilon) return output;
        if (t_converted == null || t_converted.Length != Length) t_converted = new float[Length];
        ForwardNoising.NoiseFromPrediction(output, _noisy.AsSpan(row * Length, Length), schedule, Timesteps[row], t_converted);
        return t_converted;
    }
}

/// <summary>The denoising loss of METHOD.md section 5.</summary>
internal static class NoiseLoss
{
    /// <summary>L = mean over values of (eps_hat - eps)^2, summed in double.</summary>
    public static float MeanSquaredError(ReadOnlySpan<float> predicted, ReadOnlySpan<float> eps)
    {
        double se = 0;
        for (int i = 0; i < eps.Length; i++)
        {
            float d = predicted[i] - eps[i];
            se += d * d;
        }
        return (float)(se / eps.Length);
    }
}
