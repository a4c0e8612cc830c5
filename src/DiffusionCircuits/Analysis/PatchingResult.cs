using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// What activation patching measured (METHOD.md 5b), per head, timestep and pair: the mean squared difference of the
/// patched run's eps_hat from its own intact eps_hat, and the pair's output gap ||eps_hat(real) - eps_hat(synthetic)||^2
/// (both as means over values, so their ratio is the ratio of squared norms).
/// </summary>
public sealed class PatchingResult
{
    /// <summary>Empty arrays for <paramref name="headNames"/> x <paramref name="timesteps"/> x the pairs of the two id lists.</summary>
    public PatchingResult(IReadOnlyList<string> headNames, IReadOnlyList<int> timesteps, IReadOnlyList<string> syntheticIds, IReadOnlyList<string> realIds)
    {
        if (syntheticIds.Count != realIds.Count) throw new ArgumentException("Every pair needs one synthetic and one real image.");
        (HeadNames, Timesteps, SyntheticIds, RealIds) = (headNames, timesteps, syntheticIds, realIds);
        int n = syntheticIds.Count;
        OutputGap = timesteps.Select(_ => new float[n]).ToArray();
        float[][][] PerHead() => headNames.Select(_ => timesteps.Select(_ => new float[n]).ToArray()).ToArray();
        SyntheticPatched = PerHead();
        RealPatched = PerHead();
    }

    /// <summary>Heads in layer order.</summary>
    public IReadOnlyList<string> HeadNames { get; }

    /// <summary>Timesteps measured.</summary>
    public IReadOnlyList<int> Timesteps { get; }

    /// <summary>Each pair's synthetic image.</summary>
    public IReadOnlyList<string> SyntheticIds { get; }

    /// <summary>Each pair's real image.</summary>
    public IReadOnlyList<string> RealIds { get; }

    /// <summary>Pairs measured.</summary>
    public int Pairs => SyntheticIds.Count;

    /// <summary>[timestep][pair] mean over values of (eps_hat(real) - eps_hat(synthetic))^2 with the pair's shared noise.</summary>
    public float[][] OutputGap { get; }

    /// <summary>[head][timestep][pair] mean over values of (eps_hat(synthetic; z_head from real) - eps_hat(synthetic))^2.</summary>
    public float[][][] SyntheticPatched { get; }

    /// <summary>[head][timestep][pair] mean over values of (eps_hat(real; z_head from synthetic) - eps_hat(real))^2.</summary>
    public float[][][] RealPatched { get; }

    /// <summary>Rows run through the model.</summary>
    public long ForwardPasses { get; internal set; }

    /// <summary>FLOPs of the runs.</summary>
    public double ForwardFlops { get; internal set; }

    /// <summary>Wall-clock seconds.</summary>
    public double Seconds { get; internal set; }

    private float[][] Patched(int head, PatchDirection direction) =>
        (direction == PatchDirection.RealIntoSynthetic ? SyntheticPatched : RealPatched)[head];

    /// <summary>
    /// The share of one pair at timestep index <paramref name="k"/>: patched difference over output gap, NaN when the
    /// two images' outputs do not differ (0/0 or x/0 is undefined, not large).
    /// </summary>
    public double PairShare(int head, PatchDirection direction, int k, int pair)
    {
        double gap = OutputGap[k][pair];
        return gap > 0 ? Patched(head, direction)[k][pair] / gap : double.NaN;
    }

    /// <summary>
    /// The patching share of a head: at timestep index <paramref name="k"/>, the mean over pairs (those of
    /// <paramref name="pairs"/>, with repeats, when given) of the pair shares; without k, the mean over timesteps of
    /// those means (each timestep weighs the same). Pairs with an undefined share are left out; NaN when none is left.
    /// </summary>
    public double Share(int head, PatchDirection direction, int? k = null, IReadOnlyList<int>? pairs = null)
    {
        if (k is not int t) return Enumerable.Range(0, Timesteps.Count).Average(tk => Share(head, direction, tk, pairs));
        double sum = 0;
        int count = 0;
        foreach (int p in pairs ?? Enumerable.Range(0, Pairs))
        {
            double s = PairShare(head, direction, t, p);
            if (double.IsNaN(s)) continue;
            (sum, count) = (sum + s, count + 1);
        }
        return count == 0 ? double.NaN : sum / count;
    }

    /// <summary>
    /// Every head's share in both directions with percentile bootstrap CIs over pairs, and per timestep: the rows of
    /// results.json's <c>patching</c> section, in layer order.
    /// </summary>
    public IReadOnlyList<PatchingRow> Summary(int bootstrap = 2000, int seed = 0) => Enumerable.Range(0, HeadNames.Count).Select(h =>
    {
        PatchingShare Of(PatchDirection d)
        {
            var ci = Resampling.BootstrapIndices(Pairs, idx => Share(h, d, null, idx), bootstrap, StableSeed.Of(seed, h, (int)d, 0x9A7));
            return new PatchingShare(ci.Estimate, ci.Low, ci.High, Enumerable.Range(0, Timesteps.Count).Select(k => Share(h, d, k)).ToList());
        }
        return new PatchingRow(HeadNames[h], Of(PatchDirection.RealIntoSynthetic), Of(PatchDirection.SyntheticIntoReal));
    }).ToList();

    /// <summary>The pairs of several parts (checkpoint chunks of one run) in order.</summary>
    public static PatchingResult Concat(IReadOnlyList<PatchingResult> parts)
    {
        var first = parts[0];
        var all = new PatchingResult(first.HeadNames, first.Timesteps, parts.SelectMany(p => p.SyntheticIds).ToList(), parts.SelectMany(p => p.RealIds).ToList())
        {
            ForwardPasses = parts.Sum(p => p.ForwardPasses), ForwardFlops = parts.Sum(p => p.ForwardFlops), Seconds = parts.Sum(p => p.Seconds),
        };
        for (int k = 0; k < first.Timesteps.Count; k++)
        {
            all.OutputGap[k] = parts.SelectMany(p => p.OutputGap[k]).ToArray();
            for (int h = 0; h < first.HeadNames.Count; h++)
            {
                all.SyntheticPatched[h][k] = parts.SelectMany(p => p.SyntheticPatched[h][k]).ToArray();
                all.RealPatched[h][k] = parts.SelectMany(p => p.RealPatched[h][k]).ToArray();
            }
        }
        return all;
    }
}

/// <summary>A head's patching share in one direction: over timesteps (with its CI over pairs) and at each timestep.</summary>
public sealed record PatchingShare(double Share, double CiLow, double CiHigh, IReadOnlyList<double> PerTimestep);

/// <summary>A head's patching shares in both directions (METHOD.md 5b).</summary>
/// <param name="RealIntoSynthetic">The synthetic run with the head's z from the real image.</param>
/// <param name="SyntheticIntoReal">The real run with the head's z from the synthetic image.</param>
public sealed record PatchingRow(string Head, PatchingShare RealIntoSynthetic, PatchingShare SyntheticIntoReal);
