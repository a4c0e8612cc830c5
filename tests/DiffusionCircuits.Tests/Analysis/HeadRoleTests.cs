using DiffusionCircuits.Capture;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;
using DiffusionCircuits.Transforms;

namespace DiffusionCircuits.Tests.Analysis;

public class HeadRoleTests
{
    [Theory]
    // scikit-learn's documented values of adjusted_rand_score
    [InlineData(new[] { 0, 0, 1, 1 }, new[] { 0, 0, 1, 1 }, 1.0)]
    [InlineData(new[] { 0, 0, 1, 1 }, new[] { 1, 1, 0, 0 }, 1.0)]
    [InlineData(new[] { 0, 0, 1, 2 }, new[] { 0, 0, 1, 1 }, 0.5714285714285714)]
    [InlineData(new[] { 0, 0, 0, 0 }, new[] { 0, 1, 2, 3 }, 0.0)]
    public void Adjusted_rand_index_matches_scikit_learn(int[] a, int[] b, double expected) =>
        Assert.Equal(expected, HeadRoles.AdjustedRandIndex(a, b), 12);

    [Fact]
    public void Silhouette_matches_a_hand_computation()
    {
        // Points 0, 1 (cluster 0) and 4 (cluster 1): s(0) = (4 - 1)/4, s(1) = (3 - 1)/3, s(4) = 0 (alone).
        var z = new[] { new[] { 0f }, new[] { 1f }, new[] { 4f } };
        var s = HeadRoles.Silhouettes(z, new[] { 0, 0, 1 });
        Assert.Equal(0.75, s[0], 12);
        Assert.Equal(2.0 / 3, s[1], 12);
        Assert.Equal(0, s[2]);
    }

    [Fact]
    public void Roles_are_named_from_centroid_probes_and_k_is_capped_at_the_head_count()
    {
        var names = new[] { "a.h0", "a.h1", "a.h2" };
        var features = new[]
        {
            new double[] { 0.9, 0.2, 0.8, 0, 0, 0.1, 5 },     // strongly edge-aligned
            new double[] { 0.9, 0.6, 0.0, 0, 0, 0.1, 5 },     // far-reaching
            new double[] { 0.9, 0.1, 0.1, 0, 0, 0.1, 0 },     // near and unimportant
        };
        var roles = HeadRoles.Cluster(names, features, k: 8, seed: 1);
        Assert.Equal(3, roles.K);
        Assert.Contains("capped", roles.Note);
        Assert.Equal("edge", roles.RoleOf(0));
        Assert.Equal("global", roles.RoleOf(1));
        Assert.Contains(roles.RoleOf(2), new[] { "local", "low-importance" });
    }

    [Fact]
    public void Cross_attention_heads_are_clustered_apart_and_named_by_their_token_masses()
    {
        double N = double.NaN;
        var names = new[] { "s.h0", "s.h1", "s.h2", "s.h3", "s.h4", "s.h5", "c.h0", "c.h1", "c.h2", "c.h3" };
        //                         entropy distance edge texture semantic symmetry importance start prompt padding
        var features = new[]
        {
            new[] { 0.9, 0.40, 0.80, 0, 0, 0.1, 5, N, N, N },        // edge-aligned
            new[] { 0.9, 0.41, 0.79, 0, 0, 0.1, 5, N, N, N },
            new[] { 0.9, 0.80, 0.10, 0, 0, 0.1, 5, N, N, N },        // far-reaching
            new[] { 0.9, 0.81, 0.11, 0, 0, 0.1, 5, N, N, N },
            new[] { 0.9, 0.40, 0.10, 0, 0, 0.1, 5, N, N, N },        // near, not edge-aligned
            new[] { 0.9, 0.39, 0.11, 0, 0, 0.1, 5, N, N, N },
            new[] { 0.5, N, N, N, N, N, 2, 0.90, 0.05, 0.05 },       // parks attention on the start token
            new[] { 0.5, N, N, N, N, N, 2, 0.89, 0.06, 0.05 },
            new[] { 0.5, N, N, N, N, N, 2, 0.15, 0.80, 0.05 },       // reads the prompt's words
            new[] { 0.5, N, N, N, N, N, 2, 0.14, 0.81, 0.05 },
        };
        var cross = names.Select(n => n.StartsWith('c')).ToArray();
        var roles = HeadRoles.Cluster(names, features, k: 5, seed: 1, crossAttention: cross);
        Assert.Equal(5, roles.K);     // 3 for 6 self-attention heads, 2 for 4 cross-attention heads
        Assert.Equal(new[] { "edge", "edge", "global", "global", "local", "local", "cross-sink", "cross-sink", "cross-prompt", "cross-prompt" }, names.Select((_, h) => roles.RoleOf(h)));
        Assert.All(roles.Roles, r => Assert.True(r.NamingMarginZ >= HeadRoles.NamingMarginZ));
        // A self-attention role is never named after a probe it has no values of, and the other way round.
        Assert.All(roles.Roles.Where(r => !r.Name.StartsWith("cross-")), r => Assert.True(double.IsNaN(r.CentroidZ[(int)RoleProbe.StartTokenMass])));
        Assert.All(roles.Roles.Where(r => r.Name.StartsWith("cross-")), r => Assert.True(double.IsNaN(r.CentroidZ[(int)RoleProbe.EdgeAlignment])));
        Assert.Contains("clustered apart", roles.Note);
    }

    [Fact]
    public void A_centroid_that_no_probe_leads_is_mixed_and_a_repeated_name_is_explained()
    {
        double N = double.NaN;
        var names = new[] { "a.h0", "a.h1", "a.h2", "a.h3" };
        // h0, h1 stand out on edge and texture alignment alike; h2, h3 are below on both and equal elsewhere: no probe leads either centroid.
        var features = new[]
        {
            new[] { 0.5, 0.5, 0.9, 0.9, 0, 0, 1, N, N, N },
            new[] { 0.5, 0.5, 0.9, 0.9, 0, 0, 1, N, N, N },
            new[] { 0.5, 0.5, 0.0, 0.0, 0, 0, 1, N, N, N },
            new[] { 0.5, 0.5, 0.0, 0.0, 0, 0, 1, N, N, N },
        };
        var roles = HeadRoles.Cluster(names, features, k: 2, seed: 2);
        Assert.Equal(new[] { "mixed", "mixed-2" }, roles.Roles.Select(r => r.Name));
        Assert.All(roles.Roles, r => Assert.Null(r.NamedBy));
        Assert.All(roles.Roles, r => Assert.True(r.NamingMarginZ < HeadRoles.NamingMarginZ));
        Assert.Contains("2 roles are 'mixed'", roles.Note);
    }

    [Fact]
    public void Three_planted_groups_make_the_data_favour_three_roles_reproducibly()
    {
        // 12 heads in three tight groups (edge, far-reaching, near), each head a little apart from its group.
        var rng = new Random(5);
        var centres = new[] { new[] { 0.5, 0.4, 0.8 }, new[] { 0.5, 0.9, 0.1 }, new[] { 0.5, 0.1, 0.1 } };
        var features = Enumerable.Range(0, 12).Select(h => centres[h % 3].Select((v, j) => j == 0 ? v : v + 0.02 * rng.NextDouble()).Concat(new[] { 0.0, 0, 0, 1 }).ToArray()).ToArray();
        var names = Enumerable.Range(0, 12).Select(h => $"a.h{h}").ToList();
        // Resampling images barely moves these probes: each resample adds a little noise.
        var resample = new Random(6);
        double[][] Resampled(int[] _) => features.Select(f => f.Select((v, j) => j is 1 or 2 ? v + 0.01 * resample.NextDouble() : v).ToArray()).ToArray();
        var scores = HeadRoles.RoleCountSelection(names, features, Resampled, imageCount: 10, seed: 1);
        Assert.Equal(Enumerable.Range(2, 10), scores.Select(x => x.K));         // k = 2 .. min(12, heads - 1)
        Assert.Equal(3, HeadRoles.FavouredRoleCount(scores));
        var three = scores.Single(x => x.K == 3);
        Assert.True(three.MeanSilhouette > 0.8 && three.StabilityAri > 0.99, $"{three}");
        Assert.True(scores.Single(x => x.K == 8).OneHeadRoles > 0);
        var roles = HeadRoles.Cluster(names, features, k: 3, seed: 1);
        Assert.Equal(1.0, HeadRoles.RestartAgreement(roles, names, features, seed: 1, repeats: 3), 9);
    }

    [Fact]
    public void Planted_global_local_and_edge_heads_fall_into_separate_roles()
    {
        var heads = new[]
        {
            new PlantedHead(PlantedPattern.Uniform), new(PlantedPattern.Local3x3), new(PlantedPattern.EdgeColumns),
            new(PlantedPattern.Uniform), new(PlantedPattern.Local3x3), new(PlantedPattern.EdgeColumns),
        };
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "roles.onnx");
        PlantedCircuit.Build(AttentionLayout.Heads4D, heads).Save(path);
        using var session = new AttentionCaptureSession(path, new CaptureOptions { SampleSize = 6 });
        // Dark left half, bright right half (edge between columns 2 and 3), plus mild noise.
        var images = Enumerable.Range(0, 12).Select(k =>
        {
            var rng = new Random(k);
            var px = new float[3 * 36];
            for (int c = 0; c < 3; c++) for (int i = 0; i < 36; i++) px[c * 36 + i] = (i % 6 < 3 ? 0.1f : 0.9f) + (float)(rng.NextDouble() * 0.05);
            return new FaceImage($"stripe{k}", 6, 6, px, null);
        }).ToList();
        var data = new FeatureExtractor(session, new[] { 200, 600 }, seed: 1).Run(new DataSetId("stripes"), images);
        var names = session.Discovery.HeadNames.ToList();
        HeadFeature[] probeIndex = HeadFeatures.All.Skip(1).ToArray();   // NormalizedEntropy .. Symmetry, the probes before Importance
        var features = Enumerable.Range(0, names.Count).Select(h =>
            probeIndex.Select(f => data.PerImageMeans(h, f).Average()).Append(1.0).ToArray()).ToArray();
        var roles = HeadRoles.Cluster(names, features, k: 3, seed: 2);
        Assert.Equal(roles.Labels[0], roles.Labels[3]);
        Assert.Equal(roles.Labels[1], roles.Labels[4]);
        Assert.Equal(roles.Labels[2], roles.Labels[5]);
        Assert.Equal(3, roles.Labels.Distinct().Count());
        Assert.Equal("edge", roles.RoleOf(2));
        Assert.Equal("global", roles.RoleOf(0));
        Assert.Contains(roles.RoleOf(1), new[] { "local", "positional" });
        Assert.True(roles.MeanSilhouette > 0.5);
        double stability = HeadRoles.Stability(roles, names, sample =>
            Enumerable.Range(0, names.Count).Select(h => probeIndex.Select(f => sample.Average(i => data.PerImageMeans(h, f)[i])).Append(1.0).ToArray()).ToArray(),
            images.Count, resamples: 10, seed: 3);
        Assert.Equal(1.0, stability, 6);
    }
}
