using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Tests.Transforms;

/// <summary>The README's ML.NET sample runs as written, on the bundled model, and the README shows exactly this code.</summary>
public class ReadmeSampleTests
{
    [Fact]
    public void The_readme_pipeline_sample_runs_and_matches_the_readme()
    {
        var root = ModelRunner.RepoRoot();
        var previous = Directory.GetCurrentDirectory();
        Directory.SetCurrentDirectory(root);
        try
        {
            // README sample begin
            var ml = new MLContext(seed: 1);
            var faces = ml.Data.SyntheticFaces(count: 4, seed: 1, size: 32);   // or ml.Data.LoadFaceImages("img_align_celeba", size: 32)
            var pipeline = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 50, 200, 400, 600, 800 }, seed: 1)
                .Append(ml.Transforms.CaptureAttention("models/reference-ddpm-32.onnx"))
                .Append(ml.Transforms.AttentionEntropy())
                .Append(ml.Transforms.AttentionProbes());
            IDataView rows = pipeline.Fit(faces).Transform(faces);            // one row per (image, timestep)
            var entropy = rows.GetColumn<VBuffer<float>>("EntropyNats").First(); // one value per head: down.1.attn.h0 ...
            // README sample end
            Assert.Equal(24, entropy.Length);
            Assert.All(entropy.DenseValues(), h => Assert.InRange(h, 0f, (float)Math.Log(256) + 1e-4f));
            Assert.Equal(20, rows.GetColumn<int>("Timestep").Count());
        }
        finally
        {
            Directory.SetCurrentDirectory(previous);
        }

        var source = File.ReadAllLines(Path.Combine(root, "tests", "DiffusionCircuits.Tests", "Transforms", "ReadmeSampleTests.cs"));
        var sample = source.SkipWhile(l => !l.Contains("// README sample begin")).Skip(1).TakeWhile(l => !l.Contains("// README sample end")).Select(l => l.Trim()).ToList();
        var readme = File.ReadAllLines(Path.Combine(root, "README.md")).Select(l => l.Trim()).ToList();
        int at = readme.IndexOf(sample[0]);
        Assert.True(at >= 0, "README.md does not contain the pipeline sample; copy it from ReadmeSampleTests.cs.");
        Assert.Equal(sample, readme.Skip(at).Take(sample.Count).ToList());
    }
}
