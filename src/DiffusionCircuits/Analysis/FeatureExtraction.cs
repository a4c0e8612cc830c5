using System.Globalization;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Analysis;

/// <summary>Per-head features of every (image, timestep) of one data set, and its mean attention maps per timestep.</summary>
public sealed class DataSetFeatures
{
    /// <param name="mapSizes">Per layer, H x S_q x S_k (the size of the mean maps kept); empty when maps are not averaged.</param>
    public DataSetFeatures(string name, IReadOnlyList<int> timesteps, IReadOnlyList<int> headsPerLayer, IReadOnlyList<int> mapSizes)
    {
        Name = name;
        Timesteps = timesteps;
        HeadsPerLayer = headsPerLayer;
        MeanMaps = timesteps.Select(_ => mapSizes.Select(n => new double[n]).ToArray()).ToArray();
        Features = timesteps.Select(_ => new List<HeadFeatures[]>()).ToArray();
        LossMse = timesteps.Select(_ => new List<float>()).ToArray();
    }

    public string Name { get; }
    public IReadOnlyList<int> Timesteps { get; }
    internal IReadOnlyList<int> HeadsPerLayer { get; }
    public List<string> ImageIds { get; } = new();
    /// <summary>[timestep index][image][head]: features.</summary>
    public List<HeadFeatures[]>[] Features { get; }
    /// <summary>[timestep index][image]: mean squared error of the predicted noise.</summary>
    public List<float>[] LossMse { get; }
    /// <summary>[timestep index][layer]: sum, then mean, of the maps [H, S_q, S_k] over images.</summary>
    public double[][][] MeanMaps { get; }
    public int ImageCount => ImageIds.Count;

    /// <summary>Values of one feature of one head over images at timestep index <paramref name="k"/> (or all timesteps).</summary>
    public double[] Values(int head, int feature, int? k = null) =>
        (k is int kk ? Features[kk] : Features.SelectMany(x => x)).Select(row => (double)row[head][feature]).ToArray();

    /// <summary>Per image, the feature averaged over timesteps (the unit of resampling is the image).</summary>
    public double[] PerImageMeans(int head, int feature) =>
        Enumerable.Range(0, ImageCount).Select(i => Timesteps.Select((_, k) => (double)Features[k][i][head][feature]).Average()).ToArray();
}

/// <summary>
/// Streams images through an <see cref="AttentionCaptureSession"/> in batches of (image, timestep) rows with paired
/// seeded noise, computes each head's features from the maps in place, and accumulates mean maps. Memory grows only
/// with the number of feature values (a few floats per image, timestep and head), never with the maps.
/// </summary>
public sealed class FeatureExtractor
{
    private readonly AttentionCaptureSession _session;
    private readonly IReadOnlyList<int> _timesteps;
    private readonly int _seed, _batchSize;
    private readonly AttentionFeatureCalculator _calculator = new();

    public FeatureExtractor(AttentionCaptureSession session, IReadOnlyList<int> timesteps, int seed, int batchSize = 32)
    {
        (_session, _timesteps, _seed, _batchSize) = (session, timesteps, seed, session.RowsPerRun(batchSize));
        foreach (var t in timesteps)
            if (t < 0 || t >= session.Schedule.Timesteps) throw new ArgumentOutOfRangeException(nameof(timesteps), t, $"Timesteps must be in 0..{session.Schedule.Timesteps - 1}.");
    }

    /// <summary>Seconds spent computing features (not running the model), for the performance report.</summary>
    public double FeatureSeconds { get; private set; }
    public double ModelSeconds { get; private set; }

    public DataSetFeatures Run(string name, IEnumerable<FaceImage> images, Action<string, int, HeadFeatures[], float>? onRow = null, IProgress<int>? progress = null)
    {
        var layers = _session.Layers;
        var result = new DataSetFeatures(name, _timesteps, layers.Select(l => l.Heads).ToList(),
            layers.Select(l => l.Heads * l.QueryTokens * l.KeyTokens).ToList());
        int len = _session.SampleLength, heads = _session.TotalHeads;
        var pending = new List<(FaceImage Image, int K)>(_batchSize);
        var noisy = new float[_batchSize * len];
        var eps = new float[_batchSize * len];
        var timer = new System.Diagnostics.Stopwatch();

        void Flush()
        {
            if (pending.Count == 0) return;
            int b = pending.Count;
            var timesteps = new int[b];
            for (int r = 0; r < b; r++)
            {
                var (image, k) = pending[r];
                DenoiserEvaluation.CheckSize(image, _session.Height, _session.Width, len, _session.Discovery.Signature.Sample.Name);
                timesteps[r] = _timesteps[k];
                PairedNoise.Fill(eps.AsSpan(r * len, len), _seed, image.Id, timesteps[r]);
                ForwardNoising.Apply(image.RgbPlanes, eps.AsSpan(r * len, len), _session.Schedule, timesteps[r], noisy.AsSpan(r * len, len));
            }
            timer.Restart();
            using var batch = _session.Run(b == _batchSize ? noisy : noisy[..(b * len)], timesteps);
            ModelSeconds += timer.Elapsed.TotalSeconds;
            timer.Restart();
            ImageTokenMaps?[] tokens = new ImageTokenMaps?[layers.Count];
            FaceImage? tokensFor = null;
            for (int r = 0; r < b; r++)
            {
                var (image, k) = pending[r];
                if (!ReferenceEquals(tokensFor, image))
                {
                    for (int l = 0; l < layers.Count; l++)
                        tokens[l] = _session.Geometries[l] is { } g ? ImageTokenMaps.Create(image, g) : null;
                    tokensFor = image;
                }
                var features = new HeadFeatures[heads];
                int offset = 0;
                for (int l = 0; l < layers.Count; l++)
                {
                    var layer = layers[l];
                    var maps = batch.Maps(l, r);
                    var sum = result.MeanMaps[k][l];
                    for (int i = 0; i < maps.Length; i++) sum[i] += maps[i];
                    int size = layer.QueryTokens * layer.KeyTokens;
                    for (int h = 0; h < layer.Heads; h++)
                        features[offset + h] = _calculator.Compute(maps.Slice(h * size, size), layer, _session.Geometries[l], tokens[l]);
                    offset += layer.Heads;
                }
                var predicted = batch.PredictedNoise(r);
                double se = 0;
                var e = eps.AsSpan(r * len, len);
                for (int i = 0; i < len; i++) se += (predicted[i] - e[i]) * (predicted[i] - e[i]);
                float loss = (float)(se / len);
                // NaN or infinities never reach the statistics: name where they appeared.
                for (int l = 0, first = 0; l < layers.Count; first += layers[l].Heads, l++)
                    for (int h = 0; h < layers[l].Heads; h++)
                        if (!float.IsFinite(features[first + h].EntropyNats))
                            throw new InvalidDataException($"The model produced NaN or infinite attention in layer '{layers[l].Name}' (head {layers[l].HeadName(h)}) " +
                                                           $"for image '{image.Id}' at t = {timesteps[r]}.");
                if (!float.IsFinite(loss))
                    throw new InvalidDataException($"The model produced NaN or infinite predicted noise (attention was finite) for image '{image.Id}' at t = {timesteps[r]}.");
                result.Features[k].Add(features);
                result.LossMse[k].Add(loss);
                onRow?.Invoke(image.Id, timesteps[r], features, loss);
            }
            FeatureSeconds += timer.Elapsed.TotalSeconds;
            pending.Clear();
        }

        foreach (var image in images)
        {
            result.ImageIds.Add(image.Id);
            for (int k = 0; k < _timesteps.Count; k++)
            {
                pending.Add((image, k));
                if (pending.Count == _batchSize) Flush();
            }
            progress?.Report(result.ImageIds.Count);
        }
        Flush();
        if (result.ImageCount == 0) throw new InvalidDataException($"Data set '{name}' has no usable images.");
        foreach (var perT in result.MeanMaps)
            foreach (var layer in perT)
                for (int i = 0; i < layer.Length; i++) layer[i] /= result.ImageCount;
        return result;
    }
}

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
        var list = new List<HeadSummary>();
        for (int h = 0; h < headNames.Count; h++)
            for (int f = 0; f < HeadFeatures.Names.Length; f++)
            {
                for (int k = -1; k < data.Timesteps.Count; k++)
                {
                    var values = k < 0 ? data.PerImageMeans(h, f) : data.Values(h, f, k);
                    if (values.Any(double.IsNaN)) continue;    // cross-attention or image-free probes
                    var ci = Resampling.Bootstrap(values, v => v.Average(), bootstrap, StableSeed.Of(seed, h, f, k));
                    list.Add(new HeadSummary(data.Name, headNames[h], k < 0 ? null : data.Timesteps[k], HeadFeatures.Names[f], values.Length,
                        values.Average(), Descriptive.StandardDeviation(values), ci.Low, ci.High));
                }
            }
        var slopes = EntropySlopesPer1000Steps(data, headNames.Count);
        for (int h = 0; h < headNames.Count; h++)
            list.Add(new HeadSummary(data.Name, headNames[h], null, EntropySlopeFeature, data.Timesteps.Count, slopes[h], double.NaN, double.NaN, double.NaN));
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
            var y = Enumerable.Range(0, t.Length).Select(k => data.Values(h, 0, k).Average()).ToArray();
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
            double gap = Enumerable.Range(0, heads).Average(h => Math.Abs(a.Values(h, 0, k).Average() - b.Values(h, 0, k).Average()));
            result.Add(new TimestepDivergence(a.Timesteps[k], jsd.ToArray(), jsd.Average(), jsd.Min(), jsd.Max(), gap));
        }
        return result;
    }

    /// <summary>Writes features.csv: one row per data set x image x timestep x head.</summary>
    public static void WriteFeaturesCsv(string path, IEnumerable<DataSetFeatures> sets, IReadOnlyList<string> headNames)
    {
        AtomicFile.Write(path, stream =>
        {
            using var w = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
            w.WriteLine("dataset,image,timestep,head," + string.Join(",", HeadFeatures.Names.Select(Snake)) + ",loss_mse");
            foreach (var set in sets)
                for (int k = 0; k < set.Timesteps.Count; k++)
                    for (int i = 0; i < set.ImageCount; i++)
                        for (int h = 0; h < headNames.Count; h++)
                        {
                            var f = set.Features[k][i][h];
                            w.Write($"{set.Name},{Csv(set.ImageIds[i])},{set.Timesteps[k]},{headNames[h]}");
                            for (int j = 0; j < HeadFeatures.Names.Length; j++) w.Write("," + Num(f[j]));
                            w.WriteLine("," + Num(set.LossMse[k][i]));
                        }
        });
    }

    public static void WriteSummaryCsv(string path, IEnumerable<HeadSummary> rows) =>
        AtomicFile.Write(path, stream =>
        {
            using var w = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
            w.WriteLine("dataset,head,timestep,feature,n,mean,sd,ci_low,ci_high");
            foreach (var r in rows)
                w.WriteLine($"{r.DataSet},{r.Head},{(r.Timestep?.ToString(CultureInfo.InvariantCulture) ?? "all")},{Snake(r.Feature)},{r.N},{Num(r.Mean)},{Num(r.StandardDeviation)},{Num(r.CiLow)},{Num(r.CiHigh)}");
        });

    public static void WriteDivergenceCsv(string path, IEnumerable<TimestepDivergence> rows, IReadOnlyList<string> headNames) =>
        AtomicFile.Write(path, stream =>
        {
            using var w = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
            w.WriteLine("timestep,head,jsd_nats");
            foreach (var r in rows)
                for (int h = 0; h < headNames.Count; h++) w.WriteLine($"{r.Timestep},{headNames[h]},{Num(r.JsdNatsPerHead[h])}");
        });

    /// <summary>Round-trip invariant formatting, so CSVs and JSON are byte-identical across runs and cultures.</summary>
    public static string Num(double v) => double.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture);

    private static string Num(float v) => float.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture);

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    public static string Snake(string name) => string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}
