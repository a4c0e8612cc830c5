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
/// Repeated names get a numbered suffix; no label is ever assigned without its probe.
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
        _ => null,
    };

    private static readonly (string Name, RoleProbe Probe, int Sign)[] Names =
    {
        ("edge", RoleProbe.EdgeAlignment, 1), ("texture", RoleProbe.TextureAlignment, 1), ("semantic", RoleProbe.SemanticAffinity, 1),
        ("symmetry", RoleProbe.Symmetry, 1), ("local", RoleProbe.DistanceImageUnits, -1), ("global", RoleProbe.DistanceImageUnits, 1),
        ("positional", RoleProbe.NormalizedEntropy, -1), ("low-importance", RoleProbe.Importance, -1),
    };

    /// <summary>Clusters heads (rows of <paramref name="features"/>, columns = <see cref="Probes"/>; NaN = not measured).</summary>
    public static RoleClustering Cluster(IReadOnlyList<string> headNames, double[][] features, int k = 8, int seed = 0, int restarts = 5)
    {
        int n = headNames.Count, p = Probes.Length;
        if (features.Length != n || features.Any(f => f.Length != p)) throw new ArgumentException($"Need {n} rows of {p} probes.");
        string? note = null;
        if (k > n)
        {
            note = $"k = {k} capped at the number of heads ({n}).";
            k = n;
        }
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "At least one role.");
        var z = Standardise(features);
        var (labels, centroids, inertia) = Enumerable.Range(0, restarts).Select(r => KMeans(z, k, StableSeed.Of(seed, r, 0x4B)))
            .OrderBy(c => c.Inertia).First();
        // Stable cluster order: by the smallest head index in each cluster.
        var order = Enumerable.Range(0, k).Where(c => labels.Contains(c)).OrderBy(c => Array.IndexOf(labels, c)).ToArray();
        var remap = order.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i);
        labels = labels.Select(l => remap[l]).ToArray();
        centroids = order.Select(c => centroids[c]).ToArray();
        var silhouettes = Silhouettes(z, labels);
        var used = new Dictionary<string, int>();
        var roles = new List<HeadRole>();
        for (int c = 0; c < centroids.Length; c++)
        {
            var best = Names.OrderByDescending(x => x.Sign * centroids[c][(int)x.Probe]).ThenBy(x => Array.IndexOf(Names, x)).First().Name;
            used[best] = used.GetValueOrDefault(best) + 1;
            string name = used[best] == 1 ? best : $"{best}-{used[best]}";
            var members = Enumerable.Range(0, n).Where(h => labels[h] == c).ToList();
            roles.Add(new HeadRole(name, members.Select(h => headNames[h]).ToList(), centroids[c].Select(v => (double)v).ToList(),
                members.Average(h => silhouettes[h])));
        }
        return new RoleClustering(roles, labels, inertia, silhouettes.Average(), centroids.Length, note);
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
        int resamples = 50, int seed = 0)
    {
        var rng = new Random(StableSeed.Of(seed, 0x57AB));
        double total = 0;
        for (int r = 0; r < resamples; r++)
        {
            var sample = Enumerable.Range(0, imageCount).Select(_ => rng.Next(imageCount)).ToArray();
            var again = Cluster(headNames, featuresForImages(sample), clustering.K, StableSeed.Of(seed, r), restarts: 3);
            total += AdjustedRandIndex(clustering.Labels, again.Labels);
        }
        return total / resamples;
    }
}
