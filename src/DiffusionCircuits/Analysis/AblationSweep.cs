using System.Diagnostics;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Analysis;

/// <summary>What an ablated head's output z becomes (METHOD.md section 5).</summary>
public enum AblationKind
{
    /// <summary>z[l,h] = 0.</summary>
    Zero,

    /// <summary>z[l,h] = its mean over the data set at the same timestep and position.</summary>
    Mean,
}

/// <summary>A set of heads ablated together (global head indices in layer order), with a readable name.</summary>
public sealed record AblationCondition(string Name, IReadOnlyList<int> Heads);

/// <summary>
/// Per-image losses of a data set without ablation and under each condition, at each timestep (METHOD.md section 5):
/// L = mean over pixels of (eps_hat - eps)^2 with the paired noise. Everything later (degradations, tests, circuits,
/// complexity ratios and their resampling) is computed from these numbers without another forward pass.
/// </summary>
public sealed class AblationResult
{
    public AblationResult(string dataSet, IReadOnlyList<int> timesteps, IReadOnlyList<string> imageIds, IReadOnlyList<AblationCondition> conditions)
    {
        (DataSet, Timesteps, ImageIds, Conditions) = (dataSet, timesteps, imageIds, conditions);
        BaseLoss = timesteps.Select(_ => new float[imageIds.Count]).ToArray();
        AblatedLoss = conditions.Select(_ => timesteps.Select(_ => new float[imageIds.Count]).ToArray()).ToArray();
    }

    public string DataSet { get; }
    public IReadOnlyList<int> Timesteps { get; }
    public IReadOnlyList<string> ImageIds { get; }
    public IReadOnlyList<AblationCondition> Conditions { get; }
    /// <summary>[timestep index][image]</summary>
    public float[][] BaseLoss { get; }
    /// <summary>[condition][timestep index][image]</summary>
    public float[][][] AblatedLoss { get; }
    public long ForwardPasses { get; internal set; }
    public long RunCalls { get; internal set; }
    public double Seconds { get; internal set; }

    /// <summary>Joins results of consecutive chunks of one data set's images (same conditions and timesteps), in order.</summary>
    public static AblationResult Concat(IReadOnlyList<AblationResult> parts)
    {
        var first = parts[0];
        var joined = new AblationResult(first.DataSet, first.Timesteps, parts.SelectMany(p => p.ImageIds).ToList(), first.Conditions);
        int at = 0;
        foreach (var p in parts)
        {
            if (p.Conditions.Count != first.Conditions.Count || p.Timesteps.Count != first.Timesteps.Count)
                throw new ArgumentException("Chunks of an ablation result must share conditions and timesteps.", nameof(parts));
            for (int k = 0; k < first.Timesteps.Count; k++)
            {
                p.BaseLoss[k].CopyTo(joined.BaseLoss[k], at);
                for (int c = 0; c < first.Conditions.Count; c++) p.AblatedLoss[c][k].CopyTo(joined.AblatedLoss[c][k], at);
            }
            at += p.ImageIds.Count;
            joined.ForwardPasses += p.ForwardPasses;
            joined.RunCalls += p.RunCalls;
            joined.Seconds += p.Seconds;
        }
        return joined;
    }

    /// <summary>The naive cost: one Run per ablated condition, image and timestep (plus the baselines).</summary>
    public long NaiveRunCalls => (long)ImageIds.Count * Timesteps.Count * (Conditions.Count + 1);

    public int IndexOf(string condition) => Conditions.Select((c, i) => (c, i)).First(x => x.c.Name == condition).i;

    /// <summary>
    /// Degradation % = 100 (L_ablated - L_base) / L_base, L summed over the given images (with multiplicity, for
    /// resampling; all images when null) and over timestep <paramref name="k"/> (all timesteps when null).
    /// </summary>
    public double DegradationPercent(int condition, int? k = null, IReadOnlyList<int>? images = null)
    {
        double ablated = 0, baseline = 0;
        foreach (int kk in k is int only ? new[] { only } : Enumerable.Range(0, Timesteps.Count))
        {
            var a = AblatedLoss[condition][kk];
            var b = BaseLoss[kk];
            if (images == null)
                for (int i = 0; i < b.Length; i++) { ablated += a[i]; baseline += b[i]; }
            else
                foreach (int i in images) { ablated += a[i]; baseline += b[i]; }
        }
        return 100 * (ablated - baseline) / baseline;
    }

    /// <summary>Per image, L_ablated - L_base averaged over timesteps: the paired differences the tests use.</summary>
    public double[] PerImageDifferences(int condition) =>
        Enumerable.Range(0, ImageIds.Count).Select(i => Enumerable.Range(0, Timesteps.Count).Average(k => (double)AblatedLoss[condition][k][i] - BaseLoss[k][i])).ToArray();
}

/// <summary>
/// Zero or mean ablation of heads (z[l,h] before the output projection) through the instrumented model's per-sample
/// masks: each batch row carries its own condition, so a sweep over C conditions costs
/// images x timesteps x (C + 1) / batch Run calls instead of one Run per condition, image and timestep.
/// Mean ablation needs a session created with <see cref="CaptureOptions.ExposeHeadOutputs"/>: one extra pass over the
/// data set computes the means per timestep and position (the data set is its own reference).
/// </summary>
public sealed class AblationSweep
{
    private readonly AttentionCaptureSession _session;
    private readonly IReadOnlyList<int> _timesteps;
    private readonly int _seed, _batchSize;
    private readonly int[] _layerOfHead, _headInLayer;

    public AblationSweep(AttentionCaptureSession session, IReadOnlyList<int> timesteps, int seed, int batchSize = 64, AblationKind kind = AblationKind.Zero)
    {
        (_session, _timesteps, _seed, _batchSize, Kind) = (session, timesteps, seed, session.RowsPerRun(batchSize), kind);
        if (kind == AblationKind.Mean && !session.ExposesHeadOutputs)
            throw new ArgumentException("Mean ablation needs a capture session created with ExposeHeadOutputs = true.", nameof(session));
        _layerOfHead = session.Layers.SelectMany((l, li) => Enumerable.Repeat(li, l.Heads)).ToArray();
        _headInLayer = session.Layers.SelectMany(l => Enumerable.Range(0, l.Heads)).ToArray();
    }

    public AblationKind Kind { get; }

    /// <summary>
    /// Mean head outputs over the images at each timestep: [timestep index][layer] of [H, S_q, d], with each image's
    /// paired noise. Costs images x timesteps forward passes.
    /// </summary>
    public float[][][] MeanHeadOutputs(IReadOnlyList<FaceImage> images)
    {
        int len = _session.SampleLength;
        var sums = _timesteps.Select(_ => _session.Layers.Select(l => new double[l.Heads * l.QueryTokens * l.HeadDim]).ToArray()).ToArray();
        var noisy = new float[_batchSize * len];
        var eps = new float[len];
        var rows = new List<(int Image, int K)>();
        void Flush()
        {
            if (rows.Count == 0) return;
            int b = rows.Count;
            var ts = new int[b];
            for (int r = 0; r < b; r++)
            {
                ts[r] = _timesteps[rows[r].K];
                PairedNoise.Fill(eps, _seed, images[rows[r].Image].Id, ts[r]);
                ForwardNoising.Apply(images[rows[r].Image].RgbPlanes, eps, _session.Schedule, ts[r], noisy.AsSpan(r * len, len));
            }
            using var batch = _session.Run(b == _batchSize ? noisy : noisy[..(b * len)], ts);
            for (int r = 0; r < b; r++)
                for (int l = 0; l < _session.Layers.Count; l++)
                {
                    var z = batch.HeadOutputs(l, r);
                    var sum = sums[rows[r].K][l];
                    for (int i = 0; i < z.Length; i++) sum[i] += z[i];
                }
            rows.Clear();
        }
        for (int i = 0; i < images.Count; i++)
            for (int k = 0; k < _timesteps.Count; k++)
            {
                rows.Add((i, k));
                if (rows.Count == _batchSize) Flush();
            }
        Flush();
        return sums.Select(perT => perT.Select(s => s.Select(v => (float)(v / images.Count)).ToArray()).ToArray()).ToArray();
    }

    /// <summary>
    /// Losses of given noisy rows without ablation (column 0) and under each condition (columns 1..C), for callers that
    /// bring their own x_t and eps (the ML.NET stage). Zero ablation; rows and conditions share batches.
    /// </summary>
    public float[][] ScoreRows(float[] noisy, float[] eps, int[] timesteps, IReadOnlyList<AblationCondition> conditions)
    {
        if (Kind != AblationKind.Zero) throw new NotSupportedException("ScoreRows does zero ablation; use Run for mean ablation.");
        int len = _session.SampleLength, count = timesteps.Length;
        var losses = Enumerable.Range(0, count).Select(_ => new float[conditions.Count + 1]).ToArray();
        var masks = _session.Layers.Select(l => new float[_batchSize * l.Heads]).ToArray();
        var batchNoisy = new float[_batchSize * len];
        var rows = new List<(int Row, int Condition)>(_batchSize);
        void Flush()
        {
            int b = rows.Count;
            if (b == 0) return;
            var ts = new int[b];
            foreach (var m in masks) Array.Fill(m, 1f);
            for (int r = 0; r < b; r++)
            {
                var (row, c) = rows[r];
                ts[r] = timesteps[row];
                noisy.AsSpan(row * len, len).CopyTo(batchNoisy.AsSpan(r * len, len));
                if (c >= 0)
                    foreach (int h in conditions[c].Heads)
                        masks[_layerOfHead[h]][r * _session.Layers[_layerOfHead[h]].Heads + _headInLayer[h]] = 0f;
            }
            var batchMasks = b == _batchSize ? masks : masks.Select((m, l) => m[..(b * _session.Layers[l].Heads)]).ToArray();
            using var batch = _session.Run(b == _batchSize ? batchNoisy : batchNoisy[..(b * len)], ts, batchMasks);
            for (int r = 0; r < b; r++)
            {
                var (row, c) = rows[r];
                losses[row][c + 1] = Loss(batch.PredictedNoise(r), eps.AsSpan(row * len, len));
            }
            rows.Clear();
        }
        for (int row = 0; row < count; row++)
            for (int c = -1; c < conditions.Count; c++)
            {
                rows.Add((row, c));
                if (rows.Count == _batchSize) Flush();
            }
        Flush();
        return losses;
    }

    private static float Loss(ReadOnlySpan<float> predicted, ReadOnlySpan<float> eps)
    {
        double se = 0;
        for (int j = 0; j < eps.Length; j++) se += (predicted[j] - eps[j]) * (predicted[j] - eps[j]);
        return (float)(se / eps.Length);
    }

    /// <summary>One condition per head: <c>down.1.attn.h3</c> ablates that head alone.</summary>
    public static IReadOnlyList<AblationCondition> SingleHeads(AttentionCaptureSession session) =>
        session.Discovery.HeadNames.Select((name, k) => new AblationCondition(name, new[] { k })).ToList();

    /// <param name="meanHeadOutputs">For mean ablation over a subset of a data set (a checkpointed chunk): the whole data set's
    /// means from <see cref="MeanHeadOutputs"/>; computed from <paramref name="images"/> when null.</param>
    public AblationResult Run(string dataSet, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions, IProgress<double>? progress = null,
        float[][][]? meanHeadOutputs = null)
    {
        foreach (var c in conditions)
            foreach (var h in c.Heads)
                if (h < 0 || h >= _layerOfHead.Length) throw new ArgumentOutOfRangeException(nameof(conditions), $"Condition '{c.Name}' names head {h}; the model has {_layerOfHead.Length} heads.");
        var result = new AblationResult(dataSet, _timesteps, images.Select(i => i.Id).ToList(), conditions);
        int len = _session.SampleLength;
        var meanZ = Kind == AblationKind.Mean ? meanHeadOutputs ?? MeanHeadOutputs(images) : null;
        var means = meanZ == null ? null : _session.Layers.Select(l => new float[_batchSize * l.Heads * l.QueryTokens * l.HeadDim]).ToArray();
        var noisy = new float[_batchSize * len];
        var eps = new float[_batchSize * len];
        var masks = _session.Layers.Select(l => new float[_batchSize * l.Heads]).ToArray();
        var rows = new List<(int Image, int K, int Condition)>(_batchSize);
        long total = (long)images.Count * _timesteps.Count * (conditions.Count + 1), done = 0;
        var watch = Stopwatch.StartNew();
        long callsBefore = _session.RunCalls;

        void Flush()
        {
            int b = rows.Count;
            if (b == 0) return;
            var timesteps = new int[b];
            foreach (var m in masks) Array.Fill(m, 1f);
            for (int r = 0; r < b; r++)
            {
                var (i, k, c) = rows[r];
                timesteps[r] = _timesteps[k];
                PairedNoise.Fill(eps.AsSpan(r * len, len), _seed, images[i].Id, timesteps[r]);
                ForwardNoising.Apply(images[i].RgbPlanes, eps.AsSpan(r * len, len), _session.Schedule, timesteps[r], noisy.AsSpan(r * len, len));
                if (c >= 0)
                    foreach (int h in conditions[c].Heads)
                        masks[_layerOfHead[h]][r * _session.Layers[_layerOfHead[h]].Heads + _headInLayer[h]] = 0f;
            }
            var batchMasks = b == _batchSize ? masks : masks.Select((m, l) => m[..(b * _session.Layers[l].Heads)]).ToArray();
            float[]?[]? batchMeans = null;
            if (meanZ != null)
            {
                // Each row's mean input is the data set's mean z at that row's timestep (only ablated heads read it).
                for (int r = 0; r < b; r++)
                    for (int l = 0; l < means!.Length; l++)
                    {
                        var m = meanZ[rows[r].K][l];
                        m.CopyTo(means[l].AsSpan(r * m.Length, m.Length));
                    }
                batchMeans = means!.Select((m, l) => b == _batchSize ? m : m[..(b * meanZ[0][l].Length)]).ToArray();
            }
            using var batch = _session.Run(b == _batchSize ? noisy : noisy[..(b * len)], timesteps, batchMasks, batchMeans);
            for (int r = 0; r < b; r++)
            {
                var (i, k, c) = rows[r];
                float loss = Loss(batch.PredictedNoise(r), eps.AsSpan(r * len, len));
                if (!float.IsFinite(loss))
                    throw new InvalidDataException($"The model produced NaN or infinite noise for image '{images[i].Id}' at t = {timesteps[r]}" +
                                                   (c >= 0 ? $" with {conditions[c].Name} ablated." : "."));
                if (c < 0) result.BaseLoss[k][i] = loss;
                else result.AblatedLoss[c][k][i] = loss;
            }
            done += b;
            progress?.Report((double)done / total);
            rows.Clear();
        }

        for (int i = 0; i < images.Count; i++)
        {
            DenoiserEvaluation.CheckSize(images[i], _session.Height, _session.Width, len, _session.Discovery.Signature.Sample.Name);
            for (int k = 0; k < _timesteps.Count; k++)
                for (int c = -1; c < conditions.Count; c++)
                {
                    rows.Add((i, k, c));
                    if (rows.Count == _batchSize) Flush();
                }
        }
        Flush();
        result.ForwardPasses = total;
        result.RunCalls = _session.RunCalls - callsBefore;
        result.Seconds = watch.Elapsed.TotalSeconds;
        return result;
    }
}

/// <summary>A condition's degradation with its uncertainty and paired test (METHOD.md section 5).</summary>
public sealed record Degradation(string Condition, double DegradationPercent, double CiLow, double CiHigh, double[] PerTimestepPercent, HypothesisTest Test);

public static class AblationStatistics
{
    /// <summary>Degradation %, a bootstrap CI over images, per-timestep values and a Wilcoxon signed-rank test on the per-image differences.</summary>
    public static List<Degradation> Degradations(AblationResult result, int bootstrap = 2000, int seed = 0)
    {
        var list = new List<Degradation>();
        for (int c = 0; c < result.Conditions.Count; c++)
        {
            int cc = c;
            var ci = Resampling.BootstrapIndices(result.ImageIds.Count, idx => result.DegradationPercent(cc, null, idx), bootstrap, StableSeed.Of(seed, c));
            var perT = Enumerable.Range(0, result.Timesteps.Count).Select(k => result.DegradationPercent(cc, k)).ToArray();
            var test = RankTests.Wilcoxon(result.PerImageDifferences(c)) with { Test = $"Wilcoxon signed-rank: {result.Conditions[c].Name} ablated vs intact ({result.DataSet})" };
            list.Add(new Degradation(result.Conditions[c].Name, result.DegradationPercent(c), ci.Low, ci.High, perT, test));
        }
        return list;
    }
}
