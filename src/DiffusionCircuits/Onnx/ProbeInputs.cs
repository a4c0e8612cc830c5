using Microsoft.ML.OnnxRuntime;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>Inputs for one run of a denoiser: the sample, the timestep and the conditioning, shaped from the model.</summary>
internal sealed class ProbeInputs : IDisposable
{
    private ProbeInputs(string[] names, OrtValue[] values, long batch, long[] sampleShape)
    {
        Names = names;
        Values = values;
        Batch = batch;
        SampleShape = sampleShape;
    }

    public string[] Names { get; }
    public OrtValue[] Values { get; }
    public long Batch { get; }
    public long[] SampleShape { get; }

    /// <summary>Tokens a text-embedding input gets in a probe run when its length is dynamic and no conditioning is given: CLIP's context.</summary>
    public const int DefaultTextTokens = 77;

    /// <summary>
    /// Sample of N(0,1) values (seeded), timestep 500; dynamic sizes from the arguments. Conditioning: row 0 of
    /// <paramref name="conditioning"/> when given, else zeros of <see cref="DefaultTextTokens"/> tokens; an attention mask
    /// is all ones. Only for measuring a graph (discovery's probe run, checks), never for an analysis: there,
    /// conditioning is bound (<see cref="ModelConditioning.Bind"/>).
    /// </summary>
    public static ProbeInputs Create(ModelSignature signature, long batch, int sampleSize, int seed = 1, ModelConditioning? conditioning = null)
    {
        var sample = signature.Sample;
        batch = sample.FixedDim(0) ?? batch;
        var sampleShape = new[]
        {
            batch, sample.FixedDim(1) ?? 3, sample.FixedDim(2) ?? sampleSize, sample.FixedDim(3) ?? sampleSize,
        };
        long tokens = conditioning?.Tokens ?? DefaultTextTokens;
        var names = new List<string>();
        var values = new List<OrtValue>();
        var rng = new Random(seed);
        foreach (var input in signature.Inputs)
        {
            bool text = input.Role == TensorRole.Conditioning && input.Rank is 2 or 3;
            long[] shape = input.Role == TensorRole.NoisySample ? sampleShape
                : input.Dims.Select((d, i) => input.FixedDim(i) ?? (d == signature.BatchDim || (i == 0 && text) ? batch
                    : input.Role == TensorRole.Timestep ? batch : text && i == 1 ? tokens : 4)).ToArray();
            long count = shape.Aggregate(1L, (a, b) => a * b);
            bool mask = input.Role == TensorRole.Conditioning && input.Rank == 2 && input.Name.Contains("mask", StringComparison.OrdinalIgnoreCase);
            bool embeddings = conditioning != null && input.Role == TensorRole.Conditioning && input.Rank == 3 && shape[1] == conditioning.Tokens && shape[2] == conditioning.Dim;
            double fill(int k) => input.Role switch
            {
                TensorRole.NoisySample => Gaussian(rng),
                TensorRole.Timestep => 500,
                _ when mask => 1,
                _ when embeddings => conditioning!.Embeddings[k % (conditioning.Tokens * conditioning.Dim)],
                _ => 0,
            };
            names.Add(input.Name);
            values.Add(CreateTensor(input.ElementType, shape, count, fill, input.Name));
        }
        return new ProbeInputs(names.ToArray(), values.ToArray(), batch, sampleShape);
    }

    /// <summary>
    /// A denoiser's inputs for one batch: the noisy sample [B, C, H, W] (fed without copying when float32), the
    /// timestep in the model's own type and rank, and the conditioning inputs from <paramref name="conditioning"/> (row
    /// r of the batch conditioned by row <paramref name="conditioningRow"/>(r) of the embeddings; row 0 when null).
    /// Dispose the values after the run.
    /// </summary>
    public static (List<string> Names, List<OrtValue> Values) ForBatch(ModelSignature signature, float[] noisy, int[] timesteps,
        int channels, int height, int width, ConditioningBinding? conditioning = null, Func<int, int>? conditioningRow = null)
    {
        int batch = timesteps.Length;
        var names = new List<string>();
        var values = new List<OrtValue>();
        try
        {
            foreach (var input in signature.Inputs)
            {
                names.Add(input.Name);
                var sampleShape = new long[] { batch, channels, height, width };
                values.Add(input.Role switch
                {
                    TensorRole.NoisySample => input.ElementType == DataType.Float
                        ? OrtValue.CreateTensorValueFromMemory(noisy, sampleShape)
                        : CreateTensor(input.ElementType, sampleShape, noisy.Length, k => noisy[k], input.Name),
                    TensorRole.Timestep => Timestep(input, timesteps),
                    _ => (conditioning ?? throw new InvalidOperationException($"Input '{input.Name}' is conditioning, and the model was not bound to any (ModelConditioning.Bind)."))
                        .ValueFor(input, batch, conditioningRow ?? (_ => 0)),
                });
            }
            return (names, values);
        }
        catch
        {
            foreach (var v in values) v.Dispose();
            throw;
        }
    }

    private static OrtValue Timestep(TensorSpec input, int[] timesteps)
    {
        bool scalar = input.Rank == 0;
        if (scalar && timesteps.Distinct().Count() > 1)
            throw new ArgumentException($"Input '{input.Name}' is a scalar timestep: every sample of a batch must share one timestep.");
        return CreateTensor(input.ElementType, scalar ? Array.Empty<long>() : new long[] { timesteps.Length }, scalar ? 1 : timesteps.Length, k => timesteps[k], input.Name);
    }

    internal static OrtValue CreateTensor(DataType type, long[] shape, long count, Func<int, double> fill, string name) => type switch
    {
        DataType.Float => OrtValue.CreateTensorValueFromMemory(Fill(count, k => (float)fill(k)), shape),
        DataType.Double => OrtValue.CreateTensorValueFromMemory(Fill(count, fill), shape),
        DataType.Float16 => OrtValue.CreateTensorValueFromMemory(Fill(count, k => (Float16)(float)fill(k)), shape),
        DataType.Int64 => OrtValue.CreateTensorValueFromMemory(Fill(count, k => (long)fill(k)), shape),
        DataType.Int32 => OrtValue.CreateTensorValueFromMemory(Fill(count, k => (int)fill(k)), shape),
        _ => throw new OnnxModelException($"Input '{name}' has element type {type.ToString().ToLowerInvariant()}, which DiffusionCircuits cannot feed " +
                                          "(supported: float, float16, double, int64, int32)."),
    };

    private static T[] Fill<T>(long count, Func<int, T> f)
    {
        var a = new T[count];
        for (int i = 0; i < a.Length; i++) a[i] = f(i);
        return a;
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    public void Dispose()
    {
        foreach (var v in Values) v.Dispose();
    }
}
