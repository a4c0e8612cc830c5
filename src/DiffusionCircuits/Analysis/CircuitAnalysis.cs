using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Analysis;

/// <summary>Options of the causal analysis (METHOD.md sections 4-6).</summary>
public sealed record CircuitAnalysisOptions
{
    public IReadOnlyList<int> Timesteps { get; init; } = new[] { 50, 200, 400, 600, 800 };
    public int Seed { get; init; } = 1;
    public int Roles { get; init; } = 8;
    public double TolerancePercent { get; init; } = 10;
    public int Bootstrap { get; init; } = 2000;
    public int Permutations { get; init; } = 2000;
    public int StabilityResamples { get; init; } = 50;
    public int BatchSize { get; init; } = 64;
    /// <summary>Zero or mean ablation; mean needs the ablation session to expose head outputs.</summary>
    public AblationKind Ablation { get; init; } = AblationKind.Zero;
}

/// <summary>Everything the causal analysis found, ready to print or serialise.</summary>
public sealed record CircuitAnalysisResult(
    IReadOnlyList<string> HeadNames,
    IReadOnlyList<DataSetFeatures> Features,
    IReadOnlyList<AblationResult> Ablations,
    double[] ImportancePercent,
    RoleClustering Roles,
    double RoleStabilityAri,
    double[][] ProbeMatrix,
    IReadOnlyList<(string DataSet, Degradation Degradation)> Degradations,
    IReadOnlyList<Circuit> Circuits,
    IReadOnlyList<ComplexityRatio> Ratios,
    long ForwardPasses, long RunCalls, long NaiveRunCalls, double AblationSeconds);

/// <summary>
/// Where the analysis keeps finished work. A checkpoint may split a data set's images into chunks, compute each chunk
/// with the given function (or load it when an earlier, interrupted run finished it) and join them in order.
/// </summary>
public interface IAnalysisCheckpoint
{
    DataSetFeatures Features(string dataSet, IReadOnlyList<FaceImage> images, Func<IReadOnlyList<FaceImage>, IProgress<double>, DataSetFeatures> compute,
        IProgress<double>? progress);

    /// <param name="stage">Names the sweep (its conditions are part of what the stored work is valid for).</param>
    AblationResult Ablation(string stage, string dataSet, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions,
        Func<IReadOnlyList<FaceImage>, IProgress<double>, AblationResult> compute, IProgress<double>? progress);
}

/// <summary>Keeps nothing: every stage runs on the whole data set at once.</summary>
public sealed class NoCheckpoint : IAnalysisCheckpoint
{
    public static readonly NoCheckpoint Instance = new();

    public DataSetFeatures Features(string dataSet, IReadOnlyList<FaceImage> images, Func<IReadOnlyList<FaceImage>, IProgress<double>, DataSetFeatures> compute,
        IProgress<double>? progress) => compute(images, progress ?? SynchronousProgress<double>.None);

    public AblationResult Ablation(string stage, string dataSet, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions,
        Func<IReadOnlyList<FaceImage>, IProgress<double>, AblationResult> compute, IProgress<double>? progress) => compute(images, progress ?? SynchronousProgress<double>.None);
}

/// <summary>
/// Runs the causal analysis on two data sets: features (for roles), zero ablation of every head, importance, roles,
/// ablation of every role and of each data set's ascending-importance prefixes (on both data sets), circuits and the
/// complexity ratio of the first data set (real) to the second (synthetic).
/// </summary>
public sealed class CircuitAnalysis
{
    private readonly AttentionCaptureSession _maps, _ablation;
    private readonly CircuitAnalysisOptions _options;

    public CircuitAnalysis(AttentionCaptureSession withMaps, AttentionCaptureSession withoutMaps, CircuitAnalysisOptions options)
    {
        (_maps, _ablation, _options) = (withMaps, withoutMaps, options);
    }

    public CircuitAnalysisResult Run(IReadOnlyList<FaceImage> real, IReadOnlyList<FaceImage> synthetic, IProgress<(string Stage, double Fraction)>? progress = null,
        IAnalysisCheckpoint? checkpoint = null)
    {
        var o = _options;
        checkpoint ??= NoCheckpoint.Instance;
        var names = _maps.Discovery.HeadNames.ToList();
        int heads = names.Count;
        var extractor = new FeatureExtractor(_maps, o.Timesteps, o.Seed);
        var sets = new[] { ("real", real), ("synthetic", synthetic) };
        IProgress<double> Stage(string name) => new SynchronousProgress<double>(f => progress?.Report((name, f)));
        var features = sets.Select(s => checkpoint.Features(s.Item1, s.Item2,
            (chunk, p) => extractor.Run(s.Item1, chunk, progress: new SynchronousProgress<int>(c => p.Report(c / (double)chunk.Count))), Stage($"features {s.Item1}"))).ToList();

        // The maps session is done until the end: its arena (a batch of every layer's maps) need not sit beside the sweep's.
        if (!ReferenceEquals(_maps, _ablation)) _maps.ReleaseBuffers();
        var sweep = new AblationSweep(_ablation, o.Timesteps, o.Seed, o.BatchSize, o.Ablation);
        // Mean ablation uses the whole data set's means, also when a checkpoint runs it in chunks.
        var means = sets.Select(s => o.Ablation == AblationKind.Mean ? sweep.MeanHeadOutputs(s.Item2) : null).ToList();
        AblationResult Sweep(string stage, int set, IReadOnlyList<AblationCondition> conditions, string label) =>
            checkpoint.Ablation(stage, sets[set].Item1, sets[set].Item2, conditions,
                (chunk, p) => sweep.Run(sets[set].Item1, chunk, conditions, p, means[set]), Stage($"{label} {sets[set].Item1}"));
        var singleConditions = AblationSweep.SingleHeads(_ablation);
        var singles = new[] { 0, 1 }.Select(i => Sweep("single", i, singleConditions, "single-head ablation")).ToList();
        // Importance for roles: the mean of the two data sets' single-head degradations.
        var importance = Enumerable.Range(0, heads).Select(k => (singles[0].DegradationPercent(k) + singles[1].DegradationPercent(k)) / 2).ToArray();

        double[][] ProbeMatrix(int[]? realSample, int[]? synSample) => Enumerable.Range(0, heads).Select(h =>
        {
            var row = new double[HeadRoles.Probes.Length];
            for (int p = 0; p < 6; p++)
            {
                var a = features[0].PerImageMeans(h, p + 1);
                var b = features[1].PerImageMeans(h, p + 1);
                row[p] = ((realSample ?? Enumerable.Range(0, a.Length).ToArray()).Average(i => a[i]) + (synSample ?? Enumerable.Range(0, b.Length).ToArray()).Average(i => b[i])) / 2;
            }
            row[6] = realSample == null ? importance[h]
                : (singles[0].DegradationPercent(h, null, realSample) + singles[1].DegradationPercent(h, null, synSample)) / 2;
            return row;
        }).ToArray();
        var probeMatrix = ProbeMatrix(null, null);
        var roles = HeadRoles.Cluster(names, probeMatrix, o.Roles, o.Seed);
        var rng = new Random(StableSeed.Of(o.Seed, 0x5AB1));
        double stability = HeadRoles.Stability(roles, names, _ =>
        {
            // Resample each data set's images separately, keeping the pairing of features and ablations per image.
            var rs = Enumerable.Range(0, real.Count).Select(__ => rng.Next(real.Count)).ToArray();
            var ss = Enumerable.Range(0, synthetic.Count).Select(__ => rng.Next(synthetic.Count)).ToArray();
            return ProbeMatrix(rs, ss);
        }, real.Count, o.StabilityResamples, o.Seed);

        var roleConditions = roles.Roles.Select(r => new AblationCondition($"role.{r.Name}", r.Heads.Select(h => names.IndexOf(h)).ToArray())).ToList();
        var orders = singles.Select(s => Circuits.AscendingOrder(Circuits.Importance(s, names))).ToList();
        var joint = singleConditions.Concat(roleConditions)
            .Concat(Circuits.PrefixConditions(orders[0], "real")).Concat(Circuits.PrefixConditions(orders[1], "synthetic")).ToList();
        var ablations = new[] { 0, 1 }.Select(i => Sweep("joint", i, joint, "role and circuit ablation")).ToList();

        var degradations = ablations.SelectMany(a => AblationStatistics.Degradations(a, o.Bootstrap, o.Seed)
            .Where(d => !d.Condition.StartsWith(Circuits.PrefixPrefix, StringComparison.Ordinal)).Select(d => (a.DataSet, d))).ToList();
        var adjusted = MultipleComparisons.Adjust(degradations.Select(d => d.d.Test).ToList(), "ablation degradation (heads and roles, both data sets)");
        degradations = degradations.Select((d, i) => (d.DataSet, d.d with { Test = adjusted[i] })).ToList();
        var circuits = new[]
        {
            Circuits.Find(ablations[0], names, orders[0], "real", o.TolerancePercent),
            Circuits.Find(ablations[1], names, orders[1], "synthetic", o.TolerancePercent),
        };
        var ratios = Circuits.Ratios(ablations[0], ablations[1], names, o.TolerancePercent, o.Bootstrap, o.Permutations, o.Seed);
        var all = singles.Concat(ablations).ToList();
        return new CircuitAnalysisResult(names, features, ablations, importance, roles, stability, probeMatrix, degradations, circuits, ratios,
            all.Sum(a => a.ForwardPasses), all.Sum(a => a.RunCalls), (long)heads * (real.Count + synthetic.Count) * o.Timesteps.Count, all.Sum(a => a.Seconds));
    }
}
