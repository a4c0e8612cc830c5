using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Tests.Transforms;

/// <summary>docs/STAGES.md's trainer example runs as written and the page shows exactly this code.</summary>
public class StagesDocTests
{
    [Fact]
    public void The_trainer_example_of_the_stages_page_runs_predicts_the_timestep_on_held_out_faces_and_matches_the_page()
    {
        var root = ModelRunner.RepoRoot();
        var previous = Directory.GetCurrentDirectory();
        Directory.SetCurrentDirectory(root);
        double rSquared;
        try
        {
            // STAGES sample begin
            var ml = new MLContext(seed: 1);
            var train = ml.Data.SyntheticFaces(count: 12, seed: 1, size: 32);
            var test = ml.Data.SyntheticFaces(count: 6, seed: 2, size: 32, start: 12);
            // Predict the denoising timestep from how sharply each head attends.
            var pipeline = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 50, 200, 400, 600, 800 })
                .Append(ml.Transforms.CaptureAttention("models/reference-ddpm-32.onnx"))
                .Append(ml.Transforms.AttentionEntropy())
                .Append(ml.Transforms.Conversion.ConvertType("Label", "Timestep", DataKind.Single))
                .Append(ml.Transforms.Concatenate("Features", "EntropyNats"))
                .AppendCacheCheckpoint(ml)                  // the model runs once; the trainer's passes read the cache
                .Append(ml.Transforms.NormalizeMinMax("Features"))
                .Append(ml.Regression.Trainers.Sdca());
            var model = pipeline.Fit(train);
            var metrics = ml.Regression.Evaluate(model.Transform(test));
            Console.WriteLine($"R^2 on held-out faces: {metrics.RSquared:F2}");
            // STAGES sample end
            rSquared = metrics.RSquared;
        }
        finally
        {
            Directory.SetCurrentDirectory(previous);
        }
        // Entropy falls with noise level in every head, so it predicts t well on faces the model was not fitted on.
        Assert.True(rSquared > 0.8, $"R^2 {rSquared:F3}");

        var source = File.ReadAllLines(Path.Combine(root, "tests", "DiffusionCircuits.Tests", "Transforms", "StagesDocTests.cs"));
        var sample = source.SkipWhile(l => !l.Contains("// STAGES sample begin")).Skip(1).TakeWhile(l => !l.Contains("// STAGES sample end")).Select(l => l.Trim()).ToList();
        var page = File.ReadAllLines(Path.Combine(root, "docs", "STAGES.md")).Select(l => l.Trim()).ToList();
        int at = page.IndexOf(sample[0]);
        Assert.True(at >= 0, "docs/STAGES.md does not contain the trainer example; copy it from StagesDocTests.cs.");
        Assert.Equal(sample, page.Skip(at).Take(sample.Count).ToList());
    }
}
