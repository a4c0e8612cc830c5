using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Onnx;

public class FlopCounterTests
{
    [Fact]
    public void The_reference_model_costs_what_an_independent_pytorch_count_says()
    {
        // tools/train/flops.py (PyTorch hooks on the same network): conv 130.2 M, attention matmuls 17.3 M, linear 0.1 M MACs.
        var model = OnnxModel.Load(Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx"));
        var (flops, byOp) = FlopCounter.Count(model, 32);
        Assert.Equal(2 * 130.2e6, byOp["Conv"], 0.2e6);
        Assert.Equal(2 * 17.3e6, byOp["MatMul"], 0.2e6);
        Assert.Equal(295e6, flops, 1e6);
    }

    [Fact]
    public void Flops_are_per_sample_whatever_the_batch()
    {
        var model = OnnxModel.Load(Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx"));
        Assert.Equal(FlopCounter.Count(model, 32, batch: 1).FlopsPerSample, FlopCounter.Count(model, 32, batch: 4).FlopsPerSample, 1.0);
    }

    [Fact]
    public void The_matrix_product_probe_reports_a_finite_positive_rate()
    {
        double gflops = FlopCounter.MeasureMatMulGflops(256, runs: 2);
        Assert.InRange(gflops, 0.1, 10_000);
    }
}
