using System.Globalization;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Analysis;

/// <summary>A feature of one head summarised over images: mean, SD and a bootstrap CI of the mean.</summary>
public sealed record HeadSummary(string DataSet, string Head, int? Timestep, string Feature, int N, double Mean, double StandardDeviation, double CiLow, double CiHigh);

/// <summary>Divergence between two data sets' attention at one timestep (METHOD.md section 2).</summary>
public sealed record TimestepDivergence(int Timestep, double[] JsdNatsPerHead, double MeanJsdNats, double MinJsdNats, double MaxJsdNats, double MeanAbsEntropyGapNats);

/// <summary>Aggregates and compares <see cref="DataSetFeatures"/>.</summary>
public static class FeatureAggregation
{
    /// <summary>Summary rows of this name hold the entropy slope (nats per 1,000 steps); see <see cref="EntropySlopesPer1000Steps"/>.</summary>
    public const string EntropySlopeFeature = "EntropySlopePer1000Steps";

    /// <summary>Mean, SD and 95% percentile-bootstrap CI over images, per head and feature, per timestep and over all timesteps.</summary>
    public static List<HeadSummary> Summarise(DataSetFeatures data, IReadOnlyList<string> headNames, int bootstrap = 2000, int seed = 0)
    {
        // Each head's bootstraps are seeded by (head, feature, timestep): the heads run on every core, in head order in the list.
        var list = IndependentPieces.Map(headNames.Count, h =>
        {
            var rows = new List<HeadSummary>();
            foreach (var f in HeadFeatures.All)
            {
                for (int k = -1; k < data.Timesteps.Count; k++)
                {
                    var values = k < 0 ? data.PerImageMeans(h, f) : data.Values(h, f, k);
                    if (values.Any(double.IsNaN)) continue;    // cross-attention or image-free probes
                    var ci = Resampling.BootstrapMean(values, bootstrap, StableSeed.Of(seed, h, (int)f, k));
                    rows.Add(new HeadSummary(data.DataSet.Name, headNames[h], k < 0 ? null : data.Timesteps[k], f.ToString(), values.Length,
                        values.Average(), Descriptive.StandardDeviation(values), ci.Low, ci.High));
                }
            }
            return rows;
        }).SelectMany(rows => rows).ToList();
        var slopes = EntropySlopesPer1000Steps(data, headNames.Count);
        for (int h = 0; h < headNames.Count; h++)
            list.Add(new HeadSummary(data.DataSet.Name, headNames[h], null, EntropySlopeFeature, data.Timesteps.Count, slopes[h], double.NaN, double.NaN, double.NaN));
        return list;
    }

    /// <summary>
    /// Slope of each head's mean entropy against t (least squares over the analysed timesteps), in nats per 1,000
    /// steps: negative when attention sharpens as noise grows. NaN with fewer than two timesteps.
    /// </summary>
    public static double[] EntropySlopesPer1000Steps(DataSetFeatures data, int heads)
    {
        var t = data.Timesteps.Select(x => (double)x).ToArray();
        var slopes = new double[heads];
        if (t.Length < 2) return slopes.Select(_ => double.NaN).ToArray();
        double tMean = t.Average(), sxx = t.Sum(x => (x - tMean) * (x - tMean));
        for (int h = 0; h < heads; h++)
        {
            var y = Enumerable.Range(0, t.Length).Select(k => data.Values(h, HeadFeature.EntropyNats, k).Average()).ToArray();
            double yMean = y.Average(), sxy = 0;
            for (int k = 0; k < t.Length; k++) sxy += (t[k] - tMean) * (y[k] - yMean);
            slopes[h] = 1000 * sxy / sxx;
        }
        return slopes;
    }

    /// <summary>
    /// JSD_t(l, h) = (1/S) sum_i JS(Pbar_A[i,:] || Pbar_B[i,:]) of the image-averaged maps, per head; its mean and range
    /// over heads; and the mean over heads of |Hbar_A - Hbar_B| (entropies averaged over images).
    /// </summary>
    public static List<TimestepDivergence> Divergence(DataSetFeatures a, DataSetFeatures b, IReadOnlyList<Onnx.AttentionLayer> layers)
    {
        var result = new List<TimestepDivergence>();
        for (int k = 0; k < a.Timesteps.Count; k++)
        {
            var jsd = new List<double>();
            for (int l = 0; l < layers.Count; l++)
            {
                var layer = layers[l];
                int sq = layer.QueryTokens, sk = layer.KeyTokens;
                for (int h = 0; h < layer.Heads; h++)
                {
                    double sum = 0;
                    for (int i = 0; i < sq; i++)
                    {
                        int at = (h * sq + i) * sk;
                        sum += Statistics.Divergence.JensenShannonNats(a.MeanMaps[k][l].AsSpan(at, sk), b.MeanMaps[k][l].AsSpan(at, sk));
                    }
                    jsd.Add(sum / sq);
                }
            }
            int heads = jsd.Count;
            double gap = Enumerable.Range(0, heads).Average(h => Math.Abs(a.Values(h, HeadFeature.EntropyNats, k).Average() - b.Values(h, HeadFeature.EntropyNats, k).Average()));
            result.Add(new TimestepDivergence(a.Timesteps[k], jsd.ToArray(), jsd.Average(), jsd.Min(), jsd.Max(), gap));
        }
        return result;
    }

    /// <summary>Writes features.csv: one row per data set x image x timestep x head.</summary>
    public static void WriteFeaturesCsv(string path, IEnumerable<DataSetFeatures> sets, IReadOnlyList<string> headNames) =>
        CsvFile.Write(path, "dataset,image,timestep,head," + string.Join(",", HeadFeatures.All.Select(f => CsvFile.SnakeCase(f.ToString()))) + ",loss_mse",
            from set in sets
            from k in Enumerable.Range(0, set.Timesteps.Count)
            from i in Enumerable.Range(0, set.ImageCount)
            from h in Enumerable.Range(0, headNames.Count)
            select $"{set.DataSet.Name},{CsvFile.Text(set.ImageIds[i])},{set.Timesteps[k]},{headNames[h]}," +
                   string.Join(",", HeadFeatures.All.Select(f => CsvFile.Number(set.Features[k][i][h][f]))) + "," + CsvFile.Number(set.LossMse[k][i]));

    /// <summary>
    /// Writes summary.csv: one row per data set x head x timestep x feature, and per data set x head x feature over all
    /// timesteps (timestep empty: a missing value, so the column stays numeric).
    /// </summary>
    public static void WriteSummaryCsv(string path, IEnumerable<HeadSummary> rows) =>
        CsvFile.Write(path, "dataset,head,timestep,feature,n,mean,sd,ci_low,ci_high", rows.Select(r =>
            $"{r.DataSet},{r.Head},{r.Timestep?.ToString(CultureInfo.InvariantCulture) ?? ""},{CsvFile.SnakeCase(r.Feature)},{r.N}," +
            $"{CsvFile.Number(r.Mean)},{CsvFile.Number(r.StandardDeviation)},{CsvFile.Number(r.CiLow)},{CsvFile.Number(r.CiHigh)}"));

    /// <summary>Writes divergence.csv: one row per timestep x head.</summary>
    public static void WriteDivergenceCsv(string path, IEnumerable<TimestepDivergence> rows, IReadOnlyList<string> headNames) =>
        CsvFile.Write(path, "timestep,head,jsd_nats", rows.SelectMany(r => headNames.Select((h, i) => $"{r.Timestep},{h},{CsvFile.Number(r.JsdNatsPerHead[i])}")));
}
