using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// A role as the report shows it: its heads, their entropy (mean of both data sets over images and timesteps) as mean
/// +/- SD over the role's heads, mean importance, silhouette, centroid (z-scores of the probes measured on its heads) and the heads' 2-D PCA coordinates.
/// </summary>
public sealed record RoleSummary(string Name, IReadOnlyList<string> Heads, double EntropyMeanNats, double EntropySdNats, double ImportancePercent,
    double Silhouette, IReadOnlyDictionary<string, double> CentroidZ, double[] ProjectionX, double[] ProjectionY)
{
    /// <summary>What the name rests on: "+EdgeAlignment leads by 0.84 z", or why the role is "mixed".</summary>
    public string Naming { get; init; } = "";

    /// <summary>What the reader should doubt about this role: one head, silhouette &lt;= 0 (empty when nothing).</summary>
    public string Flags { get; init; } = "";

    /// <summary>Every role of an analysis.</summary>
    public static List<RoleSummary> Of(CircuitAnalysisResult a)
    {
        var heads = a.HeadNames;
        var real = a.FeaturesOf(DataSetId.Real);
        var synthetic = a.FeaturesOf(DataSetId.Synthetic);
        var headEntropy = Enumerable.Range(0, heads.Count)
            .Select(h => (real.PerImageMeans(h, HeadFeature.EntropyNats).Average() + synthetic.PerImageMeans(h, HeadFeature.EntropyNats).Average()) / 2).ToArray();
        var projection = Project2D(HeadRoles.Standardise(a.ProbeMatrix));
        var index = heads.Select((h, i) => (h, i)).ToDictionary(x => x.h, x => x.i);
        return a.Roles.Roles.Select(r =>
        {
            var idx = r.Heads.Select(h => index.TryGetValue(h, out var i) ? i : throw new ArgumentException($"Unknown head '{h}'.")).ToList();
            var e = idx.Select(h => headEntropy[h]).ToArray();
            var flags = new List<string>();
            if (r.Heads.Count == 1) flags.Add("one head");
            if (r.Silhouette <= 0) flags.Add("silhouette <= 0");
            string margin = r.NamingMarginZ.ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
            return new RoleSummary(r.Name, r.Heads, e.Average(), e.Length > 1 ? Descriptive.StandardDeviation(e) : 0, idx.Average(h => a.ImportancePercent[h]), r.Silhouette,
                new SortedDictionary<string, double>(HeadRoles.Probes.Zip(r.CentroidZ).Where(p => double.IsFinite(p.Second)).ToDictionary(p => p.First, p => Math.Round(p.Second, 12)), StringComparer.Ordinal),
                idx.Select(h => projection[h].X).ToArray(), idx.Select(h => projection[h].Y).ToArray())
            {
                Naming = r.NamedBy is RoleProbe probe ? $"{(r.NamingSign > 0 ? "+" : "-")}{probe} leads by {margin} z" : $"no probe leads by {HeadRoles.NamingMarginZ} z (lead {margin} z)",
                Flags = string.Join(", ", flags),
            };
        }).ToList();
    }

    /// <summary>
    /// First two principal components of the standardised head features (sign fixed so the largest loading is positive);
    /// probes no head has (all zero) are left out.
    /// </summary>
    public static (double X, double Y)[] Project2D(float[][] z)
    {
        var varying = Enumerable.Range(0, z[0].Length).Where(j => z.Any(row => row[j] != 0)).ToArray();
        if (varying.Length > 0 && varying.Length < z[0].Length) z = z.Select(row => varying.Select(j => row[j]).ToArray()).ToArray();
        int n = z.Length, p = z[0].Length;
        var m = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(n, p, (i, j) => z[i][j]);
        if (n < 2) return z.Select(_ => (0.0, 0.0)).ToArray();
        var svd = m.Svd(true);
        var v = svd.VT.Transpose();
        var result = new (double X, double Y)[n];
        for (int c = 0; c < Math.Min(2, v.ColumnCount); c++)
        {
            var col = v.Column(c);
            double sign = col.AbsoluteMaximum() == col.Maximum() ? 1 : -1;
            for (int i = 0; i < n; i++)
            {
                double score = sign * m.Row(i).DotProduct(col);
                score = Math.Round(score, 10);   // SVD sign/rounding noise must not leak into results.json
                result[i] = c == 0 ? (score, result[i].Y) : (result[i].X, score);
            }
        }
        return result;
    }
}
