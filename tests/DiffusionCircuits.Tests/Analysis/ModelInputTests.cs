using DiffusionCircuits.Capture;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Reporting;
using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;
using Google.Protobuf;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Tests.Analysis;

/// <summary>Models differ in how they take the timestep; the analysis adapts, and bad outputs are named, never averaged.</summary>
public class ModelInputTests
{
    private static readonly PlantedHead[] Heads = { new(PlantedPattern.Self, 0.5f), new(PlantedPattern.Local3x3, 0.5f) };

    private static List<FaceImage> Images() => Enumerable.Range(0, 3).Select(k =>
    {
        var rng = new Random(k);
        return new FaceImage($"img{k}", 6, 6, Enumerable.Range(0, 3 * 36).Select(_ => (float)rng.NextDouble()).ToArray(), null);
    }).ToList();

    private static (DataSetFeatures Features, AblationResult Ablation) Analyse(DataType timestepType, bool scalar)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "m.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, Heads, denoiser: true, timestepType: timestepType, scalarTimestep: scalar).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        var ts = new[] { 100, 500 };
        var features = new FeatureExtractor(session, ts, seed: 3).Run(new DataSetId("x"), Images());
        var ablation = new AblationSweep(session, ts, 3).Run(new DataSetId("x"), Images(), AblationSweep.SingleHeads(session));
        return (features, ablation);
    }

    [Theory]
    [InlineData(DataType.Int32, false)]
    [InlineData(DataType.Float, false)]
    [InlineData(DataType.Int64, true)]
    [InlineData(DataType.Float, true)]
    public void Int32_float_and_scalar_timesteps_give_the_numbers_of_an_int64_batch_timestep(DataType type, bool scalar)
    {
        var (expectedF, expectedA) = Analyse(DataType.Int64, false);
        var (f, a) = Analyse(type, scalar);
        for (int k = 0; k < 2; k++)
        {
            Assert.Equal(expectedF.LossMse[k], f.LossMse[k]);
            for (int i = 0; i < 3; i++)
                for (int h = 0; h < 2; h++) Assert.Equal(expectedF.Features[k][i][h].EntropyNats, f.Features[k][i][h].EntropyNats, 5);
            Assert.Equal(expectedA.BaseLoss[k], a.BaseLoss[k]);
        }
    }

    [Fact]
    public void A_scalar_timestep_model_runs_one_batch_per_timestep_not_one_run_per_row()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "m.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, Heads, denoiser: true, scalarTimestep: true).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        Assert.True(session.ScalarTimestep);
        var ts = new[] { 100, 500 };
        new FeatureExtractor(session, ts, seed: 3).Run(new DataSetId("x"), Images());   // 3 images x 2 timesteps = 6 rows
        Assert.Equal(2, session.RunCalls);
        long before = session.RunCalls;
        var sweep = new AblationSweep(session, ts, 3).Run(new DataSetId("x"), Images(), AblationSweep.SingleHeads(session));   // 6 rows x 3 conditions
        Assert.Equal(2 * 3, session.RunCalls - before);      // per timestep: the intact pass, then one per ablated head on all its rows
        Assert.Equal(18, sweep.ForwardPasses);
    }

    [Fact]
    public void NaN_inside_the_model_is_reported_with_layer_timestep_and_image()
    {
        var model = OnnxModel.Load(Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx"));
        var weight = model.Graph.Initializer.Single(i => i.Name == "mid.attn.qkv.weight");
        var bytes = weight.RawData.ToByteArray();
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, 0);
        weight.RawData = ByteString.CopyFrom(bytes);
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "nan.onnx");
        model.Save(path);
        var e = Assert.Throws<InvalidDataException>(() => new ReportRunner(SmallReport.Options(Directory.CreateTempSubdirectory().FullName, path)).Run());
        Assert.Contains("layer 'mid.attn'", e.Message);
        Assert.Contains("at t = 200", e.Message);
        Assert.Contains("image 'naturalistic-000000'", e.Message);
    }
}

public class ModelInputSizeTests
{
    [Fact]
    public void Images_that_do_not_fit_the_model_input_are_refused_naming_the_image_and_the_input()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "m.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, denoiser: true).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        var big = new FaceImage("big-face", 8, 8, new float[3 * 64], null);
        var e = Assert.Throws<InvalidDataException>(() => new FeatureExtractor(session, new[] { 100 }, 1).Run(new DataSetId("x"), new[] { big }));
        Assert.Contains("'big-face' is 3x8x8", e.Message);
        Assert.Contains("input 'sample' takes 3x6x6", e.Message);
        var e2 = Assert.Throws<InvalidDataException>(() => new AblationSweep(session, new[] { 100 }, 1).Run(new DataSetId("x"), new[] { big }, AblationSweep.SingleHeads(session)));
        Assert.Contains("input 'sample'", e2.Message);
    }
}
