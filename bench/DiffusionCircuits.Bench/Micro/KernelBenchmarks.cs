using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Bench;

/// <summary>
/// The engine's per-map kernels on one head's map of the reference model's largest layer (256 x 256 tokens): the
/// vectorised sum p ln p against TensorPrimitives' exact logarithm (the baseline), every feature of a head, and the loss.
/// Floor: a map is 65,536 floats = 256 KiB read once; at the ~20 GB/s one core streams, about 13 us.
/// </summary>
[MemoryDiagnoser]
public class KernelBenchmarks
{
    private float[] _map = Array.Empty<float>(), _scratch = Array.Empty<float>(), _predicted = Array.Empty<float>(), _eps = Array.Empty<float>();
    private readonly AttentionFeatureCalculator _calculator = new();
    private AttentionLayer _layer = null!;
    private TokenGeometry _geometry = null!;

    /// <summary>A random softmax map and noise of the reference model's sizes.</summary>
    [GlobalSetup]
    public void Setup()
    {
        const int s = 256;
        var rng = new Random(1);
        _map = new float[s * s];
        for (int i = 0; i < s; i++)
        {
            var row = _map.AsSpan(i * s, s);
            for (int j = 0; j < s; j++) row[j] = (float)Math.Exp(4 * rng.NextDouble());
            TensorPrimitives.Divide(row, TensorPrimitives.Sum(row), row);
        }
        _scratch = new float[s * s];
        _layer = new AttentionLayer
        {
            Name = "bench", Index = 0, SoftmaxNode = "", ProbabilitiesTensor = "", HeadOutputTensor = "", PvMatMulNode = "", IsCrossAttention = false,
            Heads = 1, QueryTokens = s, KeyTokens = s, GridHeight = 16, GridWidth = 16, HeadDim = 8,
        };
        _geometry = new TokenGeometry(16, 16);
        _predicted = Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)rng.NextDouble()).ToArray();
        _eps = Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    /// <summary>sum p ln p with TensorPrimitives.Log (exact to the last bit).</summary>
    [Benchmark(Baseline = true)]
    public float SumPLogPTensorPrimitives()
    {
        TensorPrimitives.Log(_map, _scratch);
        return TensorPrimitives.Dot(_map, _scratch);
    }

    /// <summary>sum p ln p with the fused vectorised kernel the engine uses.</summary>
    [Benchmark]
    public double SumPLogPFastEntropy() => FastEntropy.SumPLogP(_map);

    /// <summary>Entropy, distance and symmetry of one head (no image: the image probes need one).</summary>
    [Benchmark]
    public float HeadFeaturesWithoutImage() => _calculator.Compute(_map, _layer, _geometry, image: null).Symmetry;

    /// <summary>The eps-MSE of one 3 x 32 x 32 prediction.</summary>
    [Benchmark]
    public float LossMse() => NoiseLoss.MeanSquaredError(_predicted, _eps);
}
