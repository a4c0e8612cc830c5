using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Tests.Analysis;

/// <summary>
/// The sweep's shared computation: a condition runs only the model from its first ablated layer on, fed the intact
/// model's tensors at the cut (UNet skip connections included), and gets the losses of the full model.
/// </summary>
public class SharedPrefixTests
{
    private static string ReferenceModel => Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");

    private static List<FaceImage> Images(int count, int side, int seed) => Enumerable.Range(0, count).Select(k =>
    {
        var rng = new Random(seed * 100 + k);
        return new FaceImage($"img{k}", side, side, Enumerable.Range(0, 3 * side * side).Select(_ => (float)rng.NextDouble()).ToArray(), null);
    }).ToList();

    /// <summary>One head of each layer alone, a head set spanning the last two layers, and every head.</summary>
    private static List<AblationCondition> Conditions(AttentionCaptureSession session)
    {
        var firstOfLayer = session.Layers.Select((l, i) => session.Layers.Take(i).Sum(x => x.Heads)).ToArray();
        var list = firstOfLayer.Select(h => AblationCondition.ForHead(session.Discovery.Heads[h + 1 < session.TotalHeads ? h + 1 : h])).ToList();
        if (firstOfLayer.Length > 1) list.Add(new AblationCondition("late", new[] { firstOfLayer[^2], firstOfLayer[^1] + 2 }));
        list.Add(new AblationCondition("all", Enumerable.Range(0, session.TotalHeads).ToArray()));
        return list;
    }

    private static void AssertSameLosses(AblationResult full, AblationResult shared)
    {
        double worst = 0;
        for (int k = 0; k < full.Timesteps.Count; k++)
        {
            for (int i = 0; i < full.ImageIds.Count; i++) worst = Math.Max(worst, Math.Abs(full.BaseLoss[k][i] - shared.BaseLoss[k][i]) / full.BaseLoss[k][i]);
            for (int c = 0; c < full.Conditions.Count; c++)
                for (int i = 0; i < full.ImageIds.Count; i++)
                    worst = Math.Max(worst, Math.Abs(full.AblatedLoss[c][k][i] - shared.AblatedLoss[c][k][i]) / full.AblatedLoss[c][k][i]);
        }
        Assert.True(worst < 1e-5, $"largest relative loss difference {worst:G3}");
    }

    [Fact]
    public void Each_condition_run_from_its_first_ablated_layer_gives_the_full_models_losses_on_the_bundled_unet()
    {
        using var session = new AttentionCaptureSession(ReferenceModel, new CaptureOptions { ExposeMaps = false });
        var images = Images(3, 32, 1);
        var conditions = Conditions(session);
        using var fullSweep = new AblationSweep(session, new[] { 200, 800 }, seed: 3, sharePrefix: false);
        using var sharedSweep = new AblationSweep(session, new[] { 200, 800 }, seed: 3);
        var full = fullSweep.Run(new DataSetId("x"), images, conditions);
        var shared = sharedSweep.Run(new DataSetId("x"), images, conditions);
        Assert.StartsWith("suffixes from layers down.1.attn", sharedSweep.SharingNote);
        Assert.Contains("up.1.attn", sharedSweep.SharingNote);
        AssertSameLosses(full, shared);
        // Every condition moves the loss by far more than the tolerance: a suffix that ignored its masks would fail.
        for (int c = 0; c < conditions.Count; c++)
            Assert.True(Math.Abs(shared.DegradationPercent(c)) > 0.05, $"{conditions[c].Name}: {shared.DegradationPercent(c):G3}%");
    }

    [Theory]
    [InlineData("heads4d")]
    [InlineData("bmm3d")]
    [InlineData("sdpa4d")]
    [InlineData("cross3d")]
    public void Each_condition_run_from_its_first_ablated_layer_gives_the_full_models_losses_on_torch_exports(string fixture)
    {
        using var session = new AttentionCaptureSession(ModelRunner.Fixture($"exports/{fixture}.onnx"),
            new CaptureOptions { SampleSize = 16, ExposeMaps = false, Conditioning = ModelRunner.ExportConditioning(fixture, firstRowOnly: true) });
        var images = Images(2, session.Height, 2);
        var conditions = Conditions(session);
        using var fullSweep = new AblationSweep(session, new[] { 500 }, seed: 3, sharePrefix: false);
        using var sharedSweep = new AblationSweep(session, new[] { 500 }, seed: 3);
        AssertSameLosses(fullSweep.Run(new DataSetId("x"), images, conditions), sharedSweep.Run(new DataSetId("x"), images, conditions));
        Assert.StartsWith("suffixes from", sharedSweep.SharingNote);
        Assert.DoesNotContain("did not reproduce", sharedSweep.SharingNote);
    }

    [Fact]
    public void A_later_first_ablated_layer_costs_fewer_flops_and_the_sweep_counts_each_pass_at_its_part()
    {
        using var session = new AttentionCaptureSession(ReferenceModel, new CaptureOptions { ExposeMaps = false });
        using var sweep = new AblationSweep(session, new[] { 500 }, seed: 3);
        var conditions = Conditions(session);                      // down.1, mid, up.1, mid+up.1, all
        var result = sweep.Run(new DataSetId("x"), Images(2, 32, 4), conditions);
        double full = FlopCounter.Count(OnnxModel.Load(ReferenceModel), 32).FlopsPerSample;
        // The instrumented model adds no matrix product: a full pass is the original model's count.
        Assert.Equal(full, result.FullPassFlops, full * 1e-12);
        using var suffixes = AblationSuffixes.TryCreate(session, out _)!;
        double down = suffixes.FlopsPerSample(0), mid = suffixes.FlopsPerSample(1), up = suffixes.FlopsPerSample(2);
        Assert.True(full > down && down > mid && mid > up && up > 0, $"full {full:G4}, from down.1 {down:G4}, mid {mid:G4}, up.1 {up:G4}");
        // 2 images x 1 timestep: the intact pass, then each condition at its part (the head set from mid on runs the mid suffix).
        double expected = 2 * (full + down + mid + up + mid + down);
        Assert.Equal(expected, result.ForwardFlops, expected * 1e-12);
        Assert.True(result.ForwardFlops < result.NaiveRunCalls * result.FullPassFlops * 0.8);
    }

    [Fact]
    public void The_intact_run_through_its_io_binding_predicts_the_plain_runs_noise_and_keeps_its_cuts_where_the_model_ran()
    {
        using var session = new AttentionCaptureSession(ReferenceModel, new CaptureOptions { ExposeMaps = false });
        using var suffixes = AblationSuffixes.TryCreate(session, out _)!;
        var rows = new NoisedRows(session, 3, seed: 5);
        foreach (var (image, t) in Images(3, 32, 6).Zip(new[] { 50, 400, 900 })) rows.Add(image, t);
        using var plain = rows.Run();
        using var intact = suffixes.RunIntact(rows);
        for (int r = 0; r < rows.Count; r++)
            Assert.Equal(plain.PredictedNoise(r).ToArray(), intact.Noise.Slice(r * session.SampleLength, session.SampleLength).ToArray());
        // No CUDA here: the cuts' memory is the host's, the same memory the conditions' runs read them from.
        Assert.Null(session.CudaDevice);
        Assert.Equal("Cpu", suffixes.CutMemory.Name);
        Assert.NotEmpty(suffixes.CutTensors);
        foreach (var cut in suffixes.CutTensors)
            Assert.Equal(suffixes.CutMemory.Name, intact.Value(cut).GetTensorMemoryInfo().Name);
    }

    [Fact]
    public void The_suffix_reads_skip_connections_from_the_cut_and_computes_its_own_constants()
    {
        var b = new OnnxGraphBuilder();
        var x = b.Input("x", DataType.Float, "batch", 4);
        var mask = b.Input("mask", DataType.Float, "batch", 4);
        var a = b.Add("Relu", new[] { x }, name: "relu", output: "a");
        var h = b.Add("Mul", new[] { a, mask }, name: "masked", output: "h");
        var two = b.Add("Constant", Array.Empty<string>(), name: "two", output: "two", attributes: OnnxProtos.Attr("value_float", 2f));
        var skip = b.Add("Add", new[] { h, a }, name: "skip", output: "s");
        b.Add("Mul", new[] { skip, two }, name: "scale", output: "y");
        b.Output("y", DataType.Float, "batch", 4);
        var suffix = GraphSplit.Build(b.Build(), new HashSet<string> { "mask" }, "y");
        Assert.Equal(new[] { "a" }, suffix.Cut);
        Assert.Equal(new HashSet<string> { "masked", "two", "skip", "scale" }, suffix.Nodes);
        Assert.Equal(new[] { "mask" }, suffix.OriginalInputs);
    }
}
