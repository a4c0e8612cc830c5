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
    public static RoleClustering Cluster(IReadOnlyList<string> headNames, double[][] features, int k = 8, int seed = 0, int restarts = 5,
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
            for (int c = 0; c < group.Centroids.Length; c++)
            {
                var inCluster = Enumerable.Range(0, members.Length).Where(i => group.Labels[i] == c).ToList();
                roles.Add(new HeadRole(group.RoleNames[c], inCluster.Select(i => headNames[members[i]]).ToList(),
                    group.Centroids[c].Select(v => (double)v).ToList(), inCluster.Average(i => group.Silhouettes[i])));
            }
        }
        return new RoleClustering(roles, labels, inertia, silhouettes.Average(), roles.Count, notes.Count > 0 ? string.Join(" ", notes) : null);
    }

    /// <summary>
    /// One group's clustering on the probes measured for it (z-scores within the group), the best of the restarts,
    /// clusters ordered by their first head, named from <paramref name="names"/>; centroids over every probe (NaN where not measured, so never named after it).
    /// </summary>
    private static (int[] Labels, float[][] Centroids, double Inertia, double[] Silhouettes, string[] RoleNames) ClusterGroup(double[][] features, int k, int seed, int restarts,
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
        var used = new Dictionary<string, int>();
        var roleNames = centroids.Select(centroid =>
        {
            var best = names.OrderByDescending(x => x.Sign * centroid[(int)x.Probe]).ThenBy(x => Array.IndexOf(names, x)).First().Name;
            used[best] = used.GetValueOrDefault(best) + 1;
            return used[best] == 1 ? best : $"{best}-{used[best]}";
        }).ToArray();
        return (labels, centroids, inertia, Silhouettes(z, labels), roleNames);
    }

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
    /// Stability: mean adjusted Rand index between the clustering and clusterings of features recomputed on bootstrap
    /// resamples of images (<paramref name="featuresForImages"/> maps an image sample, with repeats, to a feature matrix).
    /// </summary>
    public static double Stability(RoleClustering clustering, IReadOnlyList<string> headNames, Func<int[], double[][]> featuresForImages, int imageCount,
        int resamples = 50, int seed = 0, IReadOnlyList<bool>? crossAttention = null)
    {
        var rng = new Random(StableSeed.Of(seed, 0x57AB));
        double total = 0;
        for (int r = 0; r < resamples; r++)
        {
            var sample = Enumerable.Range(0, imageCount).Select(_ => rng.Next(imageCount)).ToArray();
            var again = Cluster(headNames, featuresForImages(sample), clustering.K, StableSeed.Of(seed, r), restarts: 3, crossAttention);
            total += AdjustedRandIndex(clustering.Labels, again.Labels);
        }
        return total / resamples;
    }
}
