using DiffusionCircuits.Data;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Per-image losses of a data set without ablation and under each condition, at each timestep (METHOD.md section 5):
/// L = mean over pixels of (eps_hat - eps)^2 with the paired noise. Everything later (degradations, tests, circuits,
/// complexity ratios and their resampling) is computed from these numbers without another forward pass.
/// </summary>
public sealed class AblationResult
{
    /// <summary>Empty losses for these images, timesteps and conditions.</summary>
    public AblationResult(DataSetId dataSet, IReadOnlyList<int> timesteps, IReadOnlyList<string> imageIds, IReadOnlyList<AblationCondition> conditions)
    {
        (DataSet, Timesteps, ImageIds, Conditions) = (dataSet, timesteps, imageIds, conditions);
        BaseLoss = timesteps.Select(_ => new float[imageIds.Count]).ToArray();
        AblatedLoss = conditions.Select(_ => timesteps.Select(_ => new float[imageIds.Count]).ToArray()).ToArray();
    }

    /// <summary>The data set measured.</summary>
    public DataSetId DataSet { get; }
    /// <summary>The timesteps, in the order of the loss arrays.</summary>
    public IReadOnlyList<int> Timesteps { get; }
    /// <summary>The images, in the order of the loss arrays.</summary>
    public IReadOnlyList<string> ImageIds { get; }
    /// <summary>The conditions, in the order of <see cref="AblatedLoss"/>.</summary>
    public IReadOnlyList<AblationCondition> Conditions { get; }
    /// <summary>[timestep index][image]</summary>
    public float[][] BaseLoss { get; }
    /// <summary>[condition][timestep index][image]</summary>
    public float[][][] AblatedLoss { get; }
    /// <summary>Rows run through the model.</summary>
    public long ForwardPasses { get; internal set; }
    /// <summary>ONNX Runtime Run calls.</summary>
    public long RunCalls { get; internal set; }
    /// <summary>Seconds the sweep took.</summary>
    public double Seconds { get; internal set; }
    /// <summary>FLOPs of the forward passes run (convolutions and matrix products; a pass of a suffix counts its part).</summary>
    public double ForwardFlops { get; internal set; }
    /// <summary>FLOPs of one full forward pass per sample: <see cref="NaiveRunCalls"/> times this is the naive cost.</summary>
    public double FullPassFlops { get; internal set; }

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
            joined.ForwardFlops += p.ForwardFlops;
            joined.FullPassFlops = p.FullPassFlops;
        }
        return joined;
    }

    /// <summary>The naive cost: one Run per ablated condition, image and timestep (plus the baselines).</summary>
    public long NaiveRunCalls => (long)ImageIds.Count * Timesteps.Count * (Conditions.Count + 1);

    /// <summary>The index of the condition of this name.</summary>
    public int IndexOf(string condition) => Conditions.Select((c, i) => (c, i)).First(x => x.c.Name == condition).i;

    /// <summary>The index of the prefix of <paramref name="order"/>'s importance order of length <paramref name="length"/>.</summary>
    public int PrefixIndex(DataSetId order, int length)
    {
        for (int c = 0; c < Conditions.Count; c++)
            if (Conditions[c].IsPrefix(order, length)) return c;
        throw new InvalidOperationException($"The sweep of {DataSet} measured no prefix of length {length} of the {order} order.");
    }

    /// <summary>
    /// Degradation % (METHOD.md section 5): at each timestep D_t = 100 (sum_i L_ablated - sum_i L_base) / sum_i L_base over
    /// the given images (with multiplicity, for resampling; all images when null); the mean of D_t over timesteps, every
    /// timestep weighing the same, or D_k alone for timestep index <paramref name="k"/>.
    /// </summary>
    public double DegradationPercent(int condition, int? k = null, IReadOnlyList<int>? images = null)
    {
        if (k is int only) return TimestepDegradationPercent(condition, only, images);
        double sum = 0;
        for (int kk = 0; kk < Timesteps.Count; kk++) sum += TimestepDegradationPercent(condition, kk, images);
        return sum / Timesteps.Count;
    }

    /// <summary>
    /// The pooled degradation, kept for comparison: 100 (L_ablated - L_base) / L_base with L summed over images and
    /// timesteps together, which lets the timestep with the largest loss (the smallest t) dominate.
    /// </summary>
    public double PooledDegradationPercent(int condition, IReadOnlyList<int>? images = null)
    {
        double ablated = 0, baseline = 0;
        for (int k = 0; k < Timesteps.Count; k++)
        {
            var (a, b) = Sums(condition, k, images);
            ablated += a;
            baseline += b;
        }
        return 100 * (ablated - baseline) / baseline;
    }

    private double TimestepDegradationPercent(int condition, int k, IReadOnlyList<int>? images)
    {
        var (ablated, baseline) = Sums(condition, k, images);
        return 100 * (ablated - baseline) / baseline;
    }

    /// <summary>Ablated and baseline losses at timestep index <paramref name="k"/>, summed over the images (all when null).</summary>
    private (double Ablated, double Baseline) Sums(int condition, int k, IReadOnlyList<int>? images)
    {
        double ablated = 0, baseline = 0;
        var a = AblatedLoss[condition][k];
        var b = BaseLoss[k];
        if (images == null)
            for (int i = 0; i < b.Length; i++) { ablated += a[i]; baseline += b[i]; }
        else
            foreach (int i in images) { ablated += a[i]; baseline += b[i]; }
        return (ablated, baseline);
    }

    /// <summary>
    /// Per image, the paired statistic of the tests: the mean over timesteps of the relative loss change
    /// (L_ablated,t,i - L_base,t,i) / mean_i L_base,t,i, in percent (each timestep weighs the same, as in <see cref="DegradationPercent"/>).
    /// </summary>
    public double[] PerImageDifferences(int condition)
    {
        var meanBase = BaseLoss.Select(b => b.Average(v => (double)v)).ToArray();
        return Enumerable.Range(0, ImageIds.Count)
            .Select(i => Enumerable.Range(0, Timesteps.Count).Average(k => 100 * ((double)AblatedLoss[condition][k][i] - BaseLoss[k][i]) / meanBase[k])).ToArray();
    }
}
