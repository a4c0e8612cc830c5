using DiffusionCircuits.Capture;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Groups heads into functional roles: z-score each probe over heads, cluster with ML.NET's KMeans trainer
/// (k-means++, several seeded restarts, best inertia), and name each cluster by the signed probe its centroid
/// stands out on most: edge (+edge alignment), texture (+texture alignment), semantic (+semantic affinity),
/// symmetry (+symmetry), local (-distance), global (+distance), positional (-entropy), low-importance (-importance).
/// Self- and cross-attention heads are clustered separately (their keys are different things); cross-attention roles
/// are named by their own probes, with the prefix <c>cross-</c>: cross-sink (+start-token mass), cross-prompt (+mass on
/// the prompt's tokens), cross-padding (+end-token and padding mass), cross-focused (-entropy), cross-diffuse
/// (+entropy), cross-low-importance (-importance). Repeated names get a numbered suffix; no label is ever assigned
/// without its probe.
/// </summary>
public static class HeadRoles
{
    /// <summary>The probes' names, in the column order of the feature matrix (<see cref="RoleProbe"/>).</summary>
    public static readonly string[] Probes = Enum.GetNames<RoleProbe>();

    /// <summary>The head feature a probe averages, or null for importance (it comes from ablation).</summary>
    public static HeadFeature? FeatureOf(RoleProbe probe) => probe switch
    {
        RoleProbe.NormalizedEntropy => HeadFeature.NormalizedEntropy,
        RoleProbe.DistanceImageUnits => HeadFeature.DistanceImageUnits,
        RoleProbe.EdgeAlignment => HeadFeature.EdgeAlignment,
        RoleProbe.TextureAlignment => HeadFeature.TextureAlignment,
        RoleProbe.SemanticAffinity => HeadFeature.SemanticAffinity,
        RoleProbe.Symmetry => HeadFeature.Symmetry,
        RoleProbe.StartTokenMass => HeadFeature.StartTokenMass,
        RoleProbe.PromptTokenMass => HeadFeature.PromptTokenMass,
        RoleProbe.PaddingMass => HeadFeature.PaddingMass,
        _ => null,
    };

    private static readonly (string Name, RoleProbe Probe, int Sign)[] Names =
    {
        ("edge", RoleProbe.EdgeAlignment, 1), ("texture", RoleProbe.TextureAlignment, 1), ("semantic", RoleProbe.SemanticAffinity, 1),
        ("symmetry", RoleProbe.Symmetry, 1), ("local", RoleProbe.DistanceImageUnits, -1), ("global", RoleProbe.DistanceImageUnits, 1),
        ("positional", RoleProbe.NormalizedEntropy, -1), ("low-importance", RoleProbe.Importance, -1),
    };

    private static readonly (string Name, RoleProbe Probe, int Sign)[] CrossNames =
    {
        ("cross-sink", RoleProbe.StartTokenMass, 1), ("cross-prompt", RoleProbe.PromptTokenMass, 1), ("cross-padding", RoleProbe.PaddingMass, 1),
        ("cross-focused", RoleProbe.NormalizedEntropy, -1), ("cross-diffuse", RoleProbe.NormalizedEntropy, 1), ("cross-low-importance", RoleProbe.Importance, -1),
    };

    /// <summary>
    /// Clusters heads (rows of <paramref name="features"/>, columns = <see cref="Probes"/> or its first 7; NaN = not measured) into
    /// <paramref name="k"/> roles. With <paramref name="crossAttention"/> (true for a cross-attention head), self- and
    /// cross-attention heads are clustered apart, k split between them in proportion to their counts (at least one each).
    /// </summary>
    public static RoleClustering Cluster(IReadOnlyList<string> headNames, double[][] features, int k = 8, int seed = 0, int restarts = DefaultRestarts,
        IReadOnlyList<bool>? crossAttention = null)
    {
        int n = headNames.Count, p = Probes.Length;
        // Rows of the self-attention probes alone (columns 0 .. Importance) have no cross-attention probes.
        const int selfProbes = (int)RoleProbe.Importance + 1;
        features = features.Select(f => f.Length == selfProbes ? f.Concat(Enumerable.Repeat(double.NaN, p - selfProbes)).ToArray() : f).ToArray();
        if (features.Length != n || features.Any(f => f.Length != p)) throw new ArgumentException($"Need {n} rows of {p} probes (or of the first {selfProbes}).");
        if (crossAttention != null && crossAttention.Count != n) throw new ArgumentException($"Need {n} cross-attention flags.");
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "At least one role.");
        var notes = new List<string>();
        if (k > n)
        {
            notes.Add($"k = {k} capped at the number of heads ({n}).");
            k = n;
        }
        var self = Enumerable.Range(0, n).Where(h => crossAttention?[h] != true).ToArray();
        var cross = Enumerable.Range(0, n).Where(h => crossAttention?[h] == true).ToArray();
        int kCross = cross.Length == 0 ? 0 : self.Length == 0 ? k : Math.Clamp((int)Math.Round((double)k * cross.Length / n), 1, Math.Max(1, k - 1));
        int kSelf = k - kCross;
        if (cross.Length > 0 && self.Length > 0)
            notes.Add($"{kSelf} role(s) for {self.Length} self-attention heads and {kCross} for {cross.Length} cross-attention heads, clustered apart.");

        var labels = new int[n];
        var silhouettes = new double[n];
        var roles = new List<HeadRole>();
        double inertia = 0;
        foreach (var (members, kGroup, names) in new[] { (self, kSelf, Names), (cross, kCross, CrossNames) })
        {
            if (members.Length == 0) continue;
            var group = ClusterGroup(members.Select(h => features[h]).ToArray(), Math.Min(kGroup, members.Length), seed, restarts, names);
            inertia += group.Inertia;
            for (int i = 0; i < members.Length; i++)
            {
                labels[members[i]] = roles.Count + group.Labels[i];
                silhouettes[members[i]] = group.Silhouettes[i];
            }
            var used = new Dictionary<string, int>();
            for (int c = 0; c < group.Centroids.Length; c++)
            {
                var naming = group.Naming[c];
                used[naming.Name] = used.GetValueOrDefault(naming.Name) + 1;
                var inCluster = Enumerable.Range(0, members.Length).Where(i => group.Labels[i] == c).ToList();
                roles.Add(new HeadRole(used[naming.Name] == 1 ? naming.Name : $"{naming.Name}-{used[naming.Name]}", inCluster.Select(i => headNames[members[i]]).ToList(),
                    group.Centroids[c].Select(v => (double)v).ToList(), inCluster.Average(i => group.Silhouettes[i]))
                    { NamedBy = naming.Probe, NamingSign = naming.Sign, NamingMarginZ = naming.MarginZ });
            }
            // A repeated name is said to be one: those roles are not distinct by the probe they are named after.
            foreach (var (name, count) in used.Where(u => u.Value > 1))
                notes.Add(name.EndsWith("mixed", StringComparison.Ordinal)
                    ? $"{count} roles are '{name}': no probe leads their centroids by {NamingMarginZ} z."
                    : $"{count} roles are named '{name}' ({name}, {string.Join(", ", Enumerable.Range(2, count - 1).Select(i => $"{name}-{i}"))}): they are not distinct by the probe they are named after, only by others.");
        }
        return new RoleClustering(roles, labels, inertia, silhouettes.Average(), roles.Count, notes.Count > 0 ? string.Join(" ", notes) : null);
    }

    /// <summary>
    /// One group's clustering on the probes measured for it (z-scores within the group), the best of the restarts,
    /// clusters ordered by their first head, named from <paramref name="names"/>; centroids over every probe (NaN where not measured, so never named after it).
    /// </summary>
    private static (int[] Labels, float[][] Centroids, double Inertia, double[] Silhouettes, RoleNaming[] Naming) ClusterGroup(double[][] features, int k, int seed, int restarts,
        (string Name, RoleProbe Probe, int Sign)[] names)
    {
        int p = Probes.Length;
        var measured = Enumerable.Range(0, p).Where(j => features.Any(f => double.IsFinite(f[j]))).ToArray();
        var z = Standardise(features.Select(f => measured.Select(j => f[j]).ToArray()).ToArray());
        var (labels, centroids, inertia) = Enumerable.Range(0, restarts).Select(r => KMeans(z, k, StableSeed.Of(seed, r, 0x4B)))
            .OrderBy(c => c.Inertia).First();
        // Stable cluster order: by the smallest head index in each cluster.
        var order = Enumerable.Range(0, k).Where(c => labels.Contains(c)).OrderBy(c => Array.IndexOf(labels, c)).ToArray();
        var remap = order.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i);
        labels = labels.Select(l => remap[l]).ToArray();
        centroids = order.Select(c =>
        {
            var full = Enumerable.Repeat(float.NaN, p).ToArray();
            for (int i = 0; i < measured.Length; i++) full[measured[i]] = centroids[c][i];
            return full;
        }).ToArray();
        var naming = centroids.Select(centroid => Name(centroid, names)).ToArray();
        return (labels, centroids, inertia, Silhouettes(z, labels), naming);
    }

    /// <summary>
    /// k-means++ restarts per clustering, best inertia kept: enough on matrices of tens to hundreds of heads that the
    /// best inertia is reproducible (METHOD.md 4); <see cref="RestartAgreement"/> measures what is left of restart noise.
    /// </summary>
    public const int DefaultRestarts = 100;

    /// <summary>A role's name and why: the naming entry its centroid stands out on most, and by how much over the next probe.</summary>
    private sealed record RoleNaming(string Name, RoleProbe? Probe, int Sign, double MarginZ);

    /// <summary>
    /// The name a centroid earns (METHOD.md 4): the naming entry with the largest signed z (importance is one of the naming
    /// probes); its margin is the lead over the best entry of another probe; below <see cref="NamingMarginZ"/> the role is "mixed".
    /// </summary>
    private static RoleNaming Name(float[] centroid, (string Name, RoleProbe Probe, int Sign)[] names)
    {
        var scored = names.Select((x, i) => (Entry: x, Order: i, Value: x.Sign * (double)centroid[(int)x.Probe])).Where(v => !double.IsNaN(v.Value))
            .OrderByDescending(v => v.Value).ThenBy(v => v.Order).ToList();
        if (scored.Count == 0) return new RoleNaming(names[0].Name.StartsWith("cross-", StringComparison.Ordinal) ? "cross-mixed" : "mixed", null, 0, 0);
        var best = scored[0];
        var second = scored.Skip(1).FirstOrDefault(v => v.Entry.Probe != best.Entry.Probe);
        double margin = best.Value - (second.Entry.Name == null ? 0 : second.Value);
        string mixed = best.Entry.Name.StartsWith("cross-", StringComparison.Ordinal) ? "cross-mixed" : "mixed";
        return margin < NamingMarginZ ? new RoleNaming(mixed, null, 0, margin) : new RoleNaming(best.Entry.Name, best.Entry.Probe, best.Entry.Sign, margin);
    }

    /// <summary>A role is named after a probe only when its centroid leads the next probe by this many z (METHOD.md 4).</summary>
    public const double NamingMarginZ = 0.25;

    /// <summary>Z-scores per probe over heads; constant or unmeasured probes become 0.</summary>
    public static float[][] Standardise(double[][] features)
    {
        int n = features.Length, p = features[0].Length;
        var z = Enumerable.Range(0, n).Select(_ => new float[p]).ToArray();
        for (int j = 0; j < p; j++)
        {
            var col = features.Select(f => f[j]).Where(double.IsFinite).ToArray();
            if (col.Length < 2) continue;
            double mean = col.Average(), sd = Math.Sqrt(col.Sum(v => (v - mean) * (v - mean)) / (col.Length - 1));
            if (sd <= 1e-12 * Math.Max(1, Math.Abs(mean))) continue;
            for (int i = 0; i < n; i++) z[i][j] = double.IsFinite(features[i][j]) ? (float)((features[i][j] - mean) / sd) : 0f;
        }
        return z;
    }

    private sealed class Point
    {
        [VectorType]
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    private static (int[] Labels, float[][] Centroids, double Inertia) KMeans(float[][] z, int k, int seed)
    {
        var ml = new MLContext(seed);
        int p = z[0].Length;
        var schema = SchemaDefinition.Create(typeof(Point));
        schema[nameof(Point.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, p);
        var data = ml.Data.LoadFromEnumerable(z.Select(v => new Point { Features = v }), schema);
        var trainer = ml.Clustering.Trainers.KMeans(new KMeansTrainer.Options
        {
            FeatureColumnName = nameof(Point.Features), NumberOfClusters = k, NumberOfThreads = 1,
            InitializationAlgorithm = KMeansTrainer.InitializationAlgorithm.KMeansPlusPlus,
            MaximumNumberOfIterations = 1000, OptimizationTolerance = 1e-7f,
        });
        var model = trainer.Fit(data).Model;
        VBuffer<float>[] centroids = default!;
        model.GetClusterCentroids(ref centroids, out int count);
        var c = centroids.Take(count).Select(v => v.DenseValues().ToArray()).ToArray();
        var labels = new int[z.Length];
        double inertia = 0;
        for (int i = 0; i < z.Length; i++)
        {
            double best = double.MaxValue;
            for (int j = 0; j < c.Length; j++)
            {
                double d = Distance2(z[i], c[j]);
                if (d < best) { best = d; labels[i] = j; }
            }
            inertia += best;
        }
        return (labels, c, inertia);
    }

    private static double Distance2(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
        return s;
    }

    /// <summary>Silhouette of each point (0 for points alone in their cluster), Euclidean distance.</summary>
    public static double[] Silhouettes(float[][] z, int[] labels)
    {
        int n = z.Length;
        var s = new double[n];
        var clusters = labels.Distinct().ToArray();
        if (clusters.Length < 2) return s;
        for (int i = 0; i < n; i++)
        {
            double a = 0, b = double.MaxValue;
            foreach (var c in clusters)
            {
                var members = Enumerable.Range(0, n).Where(j => labels[j] == c && j != i).ToList();
                if (members.Count == 0) continue;
                double mean = members.Average(j => Math.Sqrt(Distance2(z[i], z[j])));
                if (c == labels[i]) a = mean;
                else b = Math.Min(b, mean);
            }
            bool alone = labels.Count(l => l == labels[i]) == 1;
            s[i] = alone || b == double.MaxValue ? 0 : (b - a) / Math.Max(a, b);
        }
        return s;
    }

    /// <summary>Adjusted Rand index of two labelings of the same items (1 = identical partitions, ~0 = chance).</summary>
    public static double AdjustedRandIndex(IReadOnlyList<int> a, IReadOnlyList<int> b)
    {
        if (a.Count != b.Count) throw new ArgumentException("Labelings differ in length.");
        static double C2(double x) => x * (x - 1) / 2;
        var table = a.Zip(b).GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        double index = table.Values.Sum(v => C2(v));
        double rows = a.GroupBy(x => x).Sum(g => C2(g.Count())), cols = b.GroupBy(x => x).Sum(g => C2(g.Count()));
        double expected = rows * cols / C2(a.Count), max = (rows + cols) / 2;
        return max == expected ? 1.0 : (index - expected) / (max - expected);
    }

    /// <summary>
    /// Stability: mean adjusted Rand index between the clustering and clusterings (best of <paramref name="restarts"/>) of
    /// features recomputed on bootstrap resamples of images (<paramref name="featuresForImages"/> maps an image sample, with
    /// repeats, to a feature matrix). It includes restart noise; <see cref="RestartAgreement"/> measures that alone.
    /// </summary>
    public static double Stability(RoleClustering clustering, IReadOnlyList<string> headNames, Func<int[], double[][]> featuresForImages, int imageCount,
        int resamples = 50, int seed = 0, IReadOnlyList<bool>? crossAttention = null, int restarts = 20)
    {
        var rng = new Random(StableSeed.Of(seed, 0x57AB));
        double total = 0;
        for (int r = 0; r < resamples; r++)
        {
            var sample = Enumerable.Range(0, imageCount).Select(_ => rng.Next(imageCount)).ToArray();
            var again = Cluster(headNames, featuresForImages(sample), clustering.K, StableSeed.Of(seed, r), restarts, crossAttention);
            total += AdjustedRandIndex(clustering.Labels, again.Labels);
        }
        return total / resamples;
    }

    /// <summary>
    /// Restart noise alone: the mean adjusted Rand index between <paramref name="clustering"/> and the clusterings of the
    /// same matrix, k and restarts with <paramref name="repeats"/> other seeds (1: the best of the restarts is reproducible).
    /// </summary>
    public static double RestartAgreement(RoleClustering clustering, IReadOnlyList<string> headNames, double[][] features, int seed = 0, int repeats = 5,
        int restarts = DefaultRestarts, IReadOnlyList<bool>? crossAttention = null) =>
        Enumerable.Range(1, repeats).Average(r =>
            AdjustedRandIndex(clustering.Labels, Cluster(headNames, features, clustering.K, StableSeed.Of(seed, r, 0x5EED), restarts, crossAttention).Labels));

    /// <summary>
    /// How well the data support each number of roles k = 2 .. min(<paramref name="maxK"/>, heads - 1): the mean silhouette
    /// of the clustering and its stability over <paramref name="resamples"/> bootstrap resamples of images, with the roles
    /// of one head and of silhouette &lt;= 0 counted (METHOD.md 4).
    /// </summary>
    public static IReadOnlyList<RoleCountScore> RoleCountSelection(IReadOnlyList<string> headNames, double[][] features, Func<int[], double[][]> featuresForImages,
        int imageCount, int seed = 0, IReadOnlyList<bool>? crossAttention = null, int maxK = 12, int restarts = 10, int resamples = 10)
    {
        var scores = new List<RoleCountScore>();
        for (int k = 2; k <= Math.Min(maxK, headNames.Count - 1); k++)
        {
            var c = Cluster(headNames, features, k, StableSeed.Of(seed, k, 0xC0), restarts, crossAttention);
            double stability = Stability(c, headNames, featuresForImages, imageCount, resamples, StableSeed.Of(seed, k, 0x5C), crossAttention, restarts);
            scores.Add(new RoleCountScore(k, c.MeanSilhouette, stability, c.Roles.Count(r => r.Heads.Count == 1), c.Roles.Count(r => r.Silhouette <= 0)));
        }
        return scores;
    }

    /// <summary>The k the data favour: the largest mean silhouette (the smaller k on a tie), or null with fewer than three heads.</summary>
    public static int? FavouredRoleCount(IReadOnlyList<RoleCountScore> scores) =>
        scores.Count == 0 ? null : scores.OrderByDescending(s => Math.Round(s.MeanSilhouette, 9)).ThenBy(s => s.K).First().K;
}
