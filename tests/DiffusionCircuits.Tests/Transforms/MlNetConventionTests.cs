using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Tests.Transforms;

/// <summary>The stages as an ML.NET developer uses them: trainers on top, column names, seeds, prediction engines, saving.</summary>
public class MlNetConventionTests
{
    private static string Model => Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");

    /// <summary>A row a prediction engine reads: x_t of the bundled model and its timestep.</summary>
    public sealed class NoisyRow
    {
        [VectorType(3, 32, 32)] public float[] Noisy { get; set; } = Array.Empty<float>();
        public int Timestep { get; set; }
    }

    /// <summary>What a prediction engine writes: the entropy of every head.</summary>
    public sealed class EntropyRow
    {
        [VectorType(24)] public float[] EntropyNats { get; set; } = Array.Empty<float>();
    }

    [Fact]
    public void Feature_columns_are_known_size_vectors_so_a_normaliser_and_a_trainer_can_follow()
    {
        var ml = new MLContext(seed: 1);
        var faces = ml.Data.SyntheticFaces(count: 2, seed: 1, size: 32);
        var features = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 100, 700 })
            .Append(ml.Transforms.CaptureAttention(Model))
            .Append(ml.Transforms.AttentionEntropy())
            .Append(ml.Transforms.AttentionProbes());
        var shape = features.GetOutputSchema(SchemaShapes.From(faces.Schema));
        foreach (var column in new[] { "EntropyNats", "NormalizedEntropy", "Symmetry", "Noisy", "Noise", "Attention.mid.attn" })
            Assert.Equal(SchemaShape.Column.VectorKind.Vector, shape.Single(c => c.Name == column).Kind);
        var ablation = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 100 }).Append(ml.Transforms.ScoreHeadAblation(Model)).GetOutputSchema(SchemaShapes.From(faces.Schema));
        Assert.Equal(SchemaShape.Column.VectorKind.Vector, ablation.Single(c => c.Name == "DegradationPercent").Kind);
        // What failed at Fit before: a normaliser needs known-size vectors.
        var normalised = features.Append(ml.Transforms.Concatenate("Features", "EntropyNats")).Append(ml.Transforms.NormalizeMinMax("Features")).Fit(faces).Transform(faces);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 24), normalised.Schema["Features"].Type);
        Assert.All(normalised.GetColumn<VBuffer<float>>("Features").SelectMany(v => v.DenseValues()), v => Assert.InRange(v, 0f, 1f));
    }

    [Fact]
    public void The_stages_use_the_column_names_they_are_given()
    {
        var ml = new MLContext(seed: 1);
        var faces = ml.Data.SyntheticFaces(count: 2, seed: 1, size: 32);
        var rows = ml.Transforms.AddDiffusionNoise(outputColumnName: "Xt", timesteps: new[] { 300 })
            .Append(ml.Transforms.CaptureAttention(Model, noisyColumnName: "Xt"))
            .Append(ml.Transforms.AttentionEntropy(outputColumnName: "H", normalizedEntropyColumnName: "HNorm"))
            .Append(ml.Transforms.AttentionProbes(outputColumnNamePrefix: "Probe."))
            .Append(ml.Transforms.ScoreHeadAblation(Model, noisyColumnName: "Xt"))
            .Fit(faces).Transform(faces);
        foreach (var column in new[] { "Xt", "H", "HNorm", "Probe.Symmetry", "Probe.DistanceImageUnits", "DegradationPercent" })
            Assert.NotNull(rows.Schema.GetColumnOrNull(column));
        Assert.Null(rows.Schema.GetColumnOrNull("Noisy"));
        Assert.Null(rows.Schema.GetColumnOrNull("EntropyNats"));
        Assert.Equal(2, rows.GetColumn<float>("BaseLossMse").Count());
    }

    [Fact]
    public void Without_a_seed_of_their_own_the_stages_take_it_from_the_ml_context()
    {
        float[] FirstNoise(MLContext ml, int? seed = null)
        {
            var faces = ml.Data.SyntheticFaces(count: 1, seed: 1, size: 32);
            return ml.Transforms.AddDiffusionNoise(timesteps: new[] { 500 }, seed: seed).Fit(faces).Transform(faces).GetColumn<VBuffer<float>>("Noise").First().DenseValues().ToArray();
        }
        Assert.Equal(FirstNoise(new MLContext(seed: 3)), FirstNoise(new MLContext(seed: 3)));
        Assert.NotEqual(FirstNoise(new MLContext(seed: 3)), FirstNoise(new MLContext(seed: 4)));
        Assert.Equal(FirstNoise(new MLContext(seed: 3), seed: 9), FirstNoise(new MLContext(seed: 4), seed: 9));
    }

    [Fact]
    public void A_prediction_engine_maps_single_rows_through_capture_and_entropy_as_transform_does()
    {
        var ml = new MLContext(seed: 1);
        var faces = ml.Data.SyntheticFaces(count: 2, seed: 5, size: 32);
        var noised = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 200, 800 }, seed: 2).Fit(faces).Transform(faces);
        var model = ml.Transforms.CaptureAttention(Model).Append(ml.Transforms.AttentionEntropy()).Fit(noised);
        var expected = model.Transform(noised).GetColumn<VBuffer<float>>("EntropyNats").Select(v => v.DenseValues().ToArray()).ToList();
        var inputs = ml.Data.CreateEnumerable<NoisyRow>(noised, reuseRowObject: false).ToList();
        var engine = ml.Model.CreatePredictionEngine<NoisyRow, EntropyRow>(model);
        for (int i = 0; i < inputs.Count; i++)
        {
            var predicted = engine.Predict(inputs[i]).EntropyNats;
            for (int h = 0; h < 24; h++) Assert.Equal(expected[i][h], predicted[h], 5);
        }
        Assert.NotEqual(expected[0], expected[1]);   // so a stale row would have failed above

        // Row expansion cannot be a row-to-row mapping: the stage says what to do instead.
        var noise = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 200 }).Fit(faces);
        Assert.False(noise.IsRowToRowMapper);
        var e = Assert.Throws<NotSupportedException>(() => noise.GetRowToRowMapper(faces.Schema));
        Assert.Contains("start its pipeline at CaptureAttention", e.Message);
    }

    [Fact]
    public void Saving_in_ml_nets_model_format_is_refused_naming_the_internal_api_that_blocks_it()
    {
        var ml = new MLContext(seed: 1);
        var faces = ml.Data.SyntheticFaces(count: 1, seed: 1, size: 32);
        var model = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 200 }).Fit(faces);
        var e = Assert.ThrowsAny<Exception>(() => ml.Model.Save(model, faces.Schema, Path.Combine(Directory.CreateTempSubdirectory().FullName, "model.zip")));
        var inner = e as NotSupportedException ?? e.InnerException as NotSupportedException;
        Assert.NotNull(inner);
        Assert.Contains("ModelSaveContext exposes no public member", inner!.Message);
        Assert.Contains("timesteps, seed and schedule", inner.Message);
    }

    [Fact]
    public void SummarizeHeads_gives_one_row_per_head_with_the_sweeps_importance_and_roles_cluster_from_it()
    {
        var ml = new MLContext(seed: 1);
        var faces = ml.Data.SyntheticFaces(count: 3, seed: 7, size: 32);
        int[] timesteps = { 100, 600 };
        var rows = ml.Transforms.AddDiffusionNoise(timesteps: timesteps, seed: 4)
            .Append(ml.Transforms.CaptureAttention(Model))
            .Append(ml.Transforms.AttentionEntropy())
            .Append(ml.Transforms.AttentionProbes())
            .Append(ml.Transforms.ScoreHeadAblation(Model))
            .Fit(faces).Transform(faces);
        var table = ml.Analysis().SummarizeHeads().Fit(rows).Transform(rows);
        var heads = table.GetColumn<ReadOnlyMemory<char>>("Head").Select(h => h.ToString()).ToList();
        var probes = table.GetColumn<VBuffer<float>>("Probes").Select(v => v.DenseValues().ToArray()).ToList();
        Assert.Equal(24, heads.Count);
        Assert.Equal("down.1.attn.h0", heads[0]);
        Assert.All(probes, p => Assert.Equal(HeadRoles.Probes.Length, p.Length));
        Assert.All(table.GetColumn<bool>("IsCrossAttention"), Assert.False);

        // Importance is METHOD.md 5's single-head degradation: the same as the analysis' own sweep on the same x_t.
        using var session = new AttentionCaptureSession(Model, new CaptureOptions { ExposeMaps = false });
        var images = new SyntheticFaceGenerator(7, 32).GenerateMany(3).ToList();
        var sweep = new AblationSweep(session, timesteps, seed: 4).Run(new DataSetId("x"), images, AblationSweep.SingleHeads(session));
        for (int h = 0; h < 24; h++)
            Assert.Equal(sweep.DegradationPercent(h), probes[h][(int)RoleProbe.Importance], 2);
        // The entropy probe is the mean of the rows' normalised entropy.
        var normalized = rows.GetColumn<VBuffer<float>>("NormalizedEntropy").Select(v => v.DenseValues().ToArray()).ToList();
        Assert.Equal(normalized.Average(r => r[5]), probes[5][(int)RoleProbe.NormalizedEntropy], 5);

        var roles = ml.Analysis().ClusterHeadRoles(roles: 4).Fit(table);
        Assert.Equal(4, roles.Clustering.K);
        Assert.Equal(24, roles.Transform(table).GetColumn<ReadOnlyMemory<char>>("Role").Count());
        var preview = table.Preview(3);
        Assert.Equal(3, preview.RowView.Length);
    }
}
