using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Analysis;

/// <summary>The circuit a data set needs: which heads, and how complex it is by both measures of METHOD.md section 6.</summary>
public sealed record Circuit(string DataSet, double TolerancePercent, IReadOnlyList<string> Heads, int Size, double EffectiveHeads,
    IReadOnlyList<string> AblatedInOrder, IReadOnlyList<double> PrefixDegradationPercent);

/// <summary>C(real) / C(synthetic) for one complexity measure, with its bootstrap CI and permutation p-value.</summary>
public sealed record ComplexityRatio(string Measure, double Real, double Synthetic, double Ratio, BootstrapInterval Ci, PermutationResult Permutation, string Note);

/// <summary>
/// Circuits from ablation results. Importance w_k = max(0, degradation of head k alone). Circuit size at tolerance
/// tau: ablate heads in ascending importance while the re-measured joint ablation of all of them stays within tau;
/// the heads left form the circuit. Each joint ablation is a "prefix" condition measured by the sweep, never a sum.
/// Effective number of heads: exp(-sum q ln q), q = w / sum w.
/// </summary>
public static class Circuits
{
    public const string PrefixPrefix = "prefix.";

    /// <summary>w_k for each head, from the single-head conditions (named by head).</summary>
    public static double[] Importance(AblationResult singles, IReadOnlyList<string> headNames, IReadOnlyList<int>? images = null) =>
        headNames.Select(name => Math.Max(0, singles.DegradationPercent(singles.IndexOf(name), null, images))).ToArray();

    public static double EffectiveHeads(IReadOnlyList<double> importance)
    {
        double total = importance.Sum();
        if (total <= 0) return 0;
        double h = 0;
        foreach (var w in importance)
            if (w > 0) h -= w / total * Math.Log(w / total);
        return Math.Exp(h);
    }

    /// <summary>Heads in ascending importance (ties by head index, so the order is deterministic).</summary>
    public static int[] AscendingOrder(IReadOnlyList<double> importance) =>
        Enumerable.Range(0, importance.Count).OrderBy(k => importance[k]).ThenBy(k => k).ToArray();

    /// <summary>Joint ablations of the first 1..n heads of an order, named <c>prefix.{tag}.{m}</c>.</summary>
    public static IReadOnlyList<AblationCondition> PrefixConditions(IReadOnlyList<int> order, string tag) =>
        Enumerable.Range(1, order.Count).Select(m => new AblationCondition($"{PrefixPrefix}{tag}.{m}", order.Take(m).ToArray())).ToList();

    /// <summary>Heads left when ablating the prefixes in order stops at the first joint degradation above tau.</summary>
    public static int Size(AblationResult result, string tag, int heads, double tauPercent, IReadOnlyList<int>? images = null)
    {
        int ablated = 0;
        for (int m = 1; m <= heads; m++)
        {
            if (result.DegradationPercent(result.IndexOf($"{PrefixPrefix}{tag}.{m}"), null, images) > tauPercent) break;
            ablated = m;
        }
        return heads - ablated;
    }

    public static Circuit Find(AblationResult result, IReadOnlyList<string> headNames, IReadOnlyList<int> order, string tag, double tauPercent)
    {
        int heads = headNames.Count;
        int size = Size(result, tag, heads, tauPercent);
        var ablated = order.Take(heads - size).ToHashSet();
        return new Circuit(result.DataSet, tauPercent,
            Enumerable.Range(0, heads).Where(k => !ablated.Contains(k)).Select(k => headNames[k]).ToList(), size,
            EffectiveHeads(Importance(result, headNames)),
            order.Select(k => headNames[k]).ToList(),
            Enumerable.Range(1, heads).Select(m => result.DegradationPercent(result.IndexOf($"{PrefixPrefix}{tag}.{m}"))).ToList());
    }

    /// <summary>
    /// Complexity ratio real / synthetic for the effective number of heads and for circuit size, with 95% bootstrap CIs
    /// (images resampled within each data set) and permutation p-values (data-set labels shuffled over pooled images).
    /// Both come from stored per-image losses. Circuit size keeps each data set's full-data ablation order (measured on
    /// both data sets, tags "real" and "synthetic") inside resamples: re-ranking heads per resample would need new
    /// forward passes.
    /// </summary>
    public static IReadOnlyList<ComplexityRatio> Ratios(AblationResult real, AblationResult synthetic, IReadOnlyList<string> headNames, double tauPercent,
        int resamples = 2000, int permutations = 2000, int seed = 0)
    {
        int heads = headNames.Count;
        // Pool both data sets' images into one index space: 0..nR-1 real, nR.. synthetic.
        int nR = real.ImageIds.Count, nS = synthetic.ImageIds.Count;
        var pooled = new PooledLosses(real, synthetic);
        var single = headNames.Select(pooled.Condition).ToArray();
        double NeffPooled(IReadOnlyList<int> idx) => EffectiveHeads(single.Select(c => Math.Max(0, pooled.Degradation(c, idx))).ToArray());
        int SizePooled(IReadOnlyList<int> idx, string tag)
        {
            int ablated = 0;
            for (int m = 1; m <= heads; m++)
            {
                if (pooled.Degradation(pooled.Condition($"{PrefixPrefix}{tag}.{m}"), idx) > tauPercent) break;
                ablated = m;
            }
            return heads - ablated;
        }

        var realIdx = Enumerable.Range(0, nR).ToArray();
        var synIdx = Enumerable.Range(nR, nS).ToArray();
        var list = new List<ComplexityRatio>();
        foreach (var measure in new[] { "effective number of heads", $"circuit size at tau = {tauPercent:G3}%" })
        {
            bool isNeff = measure.StartsWith("effective", StringComparison.Ordinal);
            double C(IReadOnlyList<int> idx, string tag) => isNeff ? NeffPooled(idx) : SizePooled(idx, tag);
            double cReal = C(realIdx, "real"), cSyn = C(synIdx, "synthetic");
            var rng = new Random(StableSeed.Of(seed, isNeff ? 1 : 2, 0xC1));
            var stats = new double[resamples];
            var bR = new int[nR];
            var bS = new int[nS];
            for (int b = 0; b < resamples; b++)
            {
                for (int i = 0; i < nR; i++) bR[i] = rng.Next(nR);
                for (int i = 0; i < nS; i++) bS[i] = nR + rng.Next(nS);
                stats[b] = C(bR, "real") / C(bS, "synthetic");
            }
            var finite = stats.Where(double.IsFinite).OrderBy(v => v).ToArray();
            var ci = new BootstrapInterval(cReal / cSyn, Descriptive.QuantileSorted(finite, 0.025), Descriptive.QuantileSorted(finite, 0.975), resamples, 0.95);

            var labels = Enumerable.Range(0, nR + nS).ToArray();
            var prng = new Random(StableSeed.Of(seed, isNeff ? 1 : 2, 0x9E7));
            double observed = cReal / cSyn, obsDev = Math.Abs(Math.Log(observed));
            int extreme = 0;
            for (int p = 0; p < permutations; p++)
            {
                for (int i = labels.Length - 1; i > 0; i--)
                {
                    int j = prng.Next(i + 1);
                    (labels[i], labels[j]) = (labels[j], labels[i]);
                }
                double r = C(labels[..nR], "real") / C(labels[nR..], "synthetic");
                if (double.IsFinite(r) && r > 0 && Math.Abs(Math.Log(r)) >= obsDev - 1e-12) extreme++;
            }
            var perm = new PermutationResult(observed, (extreme + 1.0) / (permutations + 1), permutations, extreme == 0);
            list.Add(new ComplexityRatio(measure, cReal, cSyn, observed, ci, perm,
                isNeff ? "from single-head zero ablations" : "joint ablations in each data set's own ascending-importance order, measured on both data sets"));
        }
        return list;
    }

    /// <summary>Per-image losses of two ablation results under one index space, summed over timesteps.</summary>
    private sealed class PooledLosses
    {
        private readonly double[] _base;
        private readonly Dictionary<string, int> _conditions = new();
        private readonly double[][] _ablated;

        public PooledLosses(AblationResult a, AblationResult b)
        {
            int n = a.ImageIds.Count + b.ImageIds.Count;
            _base = new double[n];
            var names = a.Conditions.Select(c => c.Name).Where(name => b.Conditions.Any(c => c.Name == name)).ToList();
            _ablated = names.Select(_ => new double[n]).ToArray();
            for (int c = 0; c < names.Count; c++) _conditions[names[c]] = c;
            int offset = 0;
            foreach (var r in new[] { a, b })
            {
                for (int i = 0; i < r.ImageIds.Count; i++)
                {
                    for (int k = 0; k < r.Timesteps.Count; k++) _base[offset + i] += r.BaseLoss[k][i];
                    for (int c = 0; c < names.Count; c++)
                    {
                        int rc = r.IndexOf(names[c]);
                        for (int k = 0; k < r.Timesteps.Count; k++) _ablated[c][offset + i] += r.AblatedLoss[rc][k][i];
                    }
                }
                offset += r.ImageIds.Count;
            }
        }

        public int Condition(string name) => _conditions.TryGetValue(name, out var c) ? c
            : throw new InvalidOperationException($"Condition '{name}' was not measured on both data sets.");

        public double Degradation(int condition, IReadOnlyList<int> images)
        {
            double a = 0, b = 0;
            foreach (int i in images) { a += _ablated[condition][i]; b += _base[i]; }
            return 100 * (a - b) / b;
        }
    }
}
