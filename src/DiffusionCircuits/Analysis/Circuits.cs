using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Circuits from ablation results. Importance w_k = max(0, degradation of head k alone). Circuit size at tolerance
/// tau: ablate heads in ascending importance while the re-measured joint ablation of all of them stays within tau;
/// the heads left form the circuit. Each joint ablation is a "prefix" condition measured by the sweep, never a sum.
/// Effective number of heads: exp(-sum q ln q), q = w / sum w.
/// </summary>
public static class Circuits
{
    /// <summary>w_k for each head, from the single-head conditions (named by head).</summary>
    public static double[] Importance(AblationResult singles, IReadOnlyList<string> headNames, IReadOnlyList<int>? images = null) =>
        headNames.Select(name => Math.Max(0, singles.DegradationPercent(singles.IndexOf(name), null, images))).ToArray();

    /// <summary>exp(-sum q ln q) with q = w / sum w; 0 when no head matters.</summary>
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

    /// <summary>Joint ablations of the first 1..n heads of <paramref name="orderOf"/>'s order.</summary>
    public static IReadOnlyList<AblationCondition> PrefixConditions(IReadOnlyList<int> order, DataSetId orderOf) =>
        Enumerable.Range(1, order.Count).Select(m => AblationCondition.ForPrefix(orderOf, order.Take(m).ToArray())).ToList();

    /// <summary>
    /// Heads left when ablating the prefixes in order stops at the first joint degradation above tau;
    /// <paramref name="prefixDegradation"/> gives the degradation % of the prefix of length m.
    /// </summary>
    public static int Size(int heads, double tauPercent, Func<int, double> prefixDegradation)
    {
        int ablated = 0;
        for (int m = 1; m <= heads; m++)
        {
            if (prefixDegradation(m) > tauPercent) break;
            ablated = m;
        }
        return heads - ablated;
    }

    /// <summary>The circuit of <paramref name="result"/>'s data set at tolerance tau, from the prefixes of <paramref name="orderOf"/>'s order.</summary>
    public static Circuit Find(AblationResult result, IReadOnlyList<string> headNames, IReadOnlyList<int> order, DataSetId orderOf, double tauPercent)
    {
        int heads = headNames.Count;
        var prefixes = Enumerable.Range(1, heads).Select(m => result.DegradationPercent(result.PrefixIndex(orderOf, m))).ToList();
        int size = Size(heads, tauPercent, m => prefixes[m - 1]);
        var ablated = order.Take(heads - size).ToHashSet();
        return new Circuit(result.DataSet, tauPercent, size, EffectiveHeads(Importance(result, headNames)),
            Enumerable.Range(0, heads).Where(k => !ablated.Contains(k)).Select(k => headNames[k]).ToList(),
            order.Select(k => headNames[k]).ToList(), prefixes);
    }

    /// <summary>
    /// Complexity ratio real / synthetic for the effective number of heads and for circuit size, with 95% bootstrap CIs
    /// (images resampled within each data set) and permutation p-values (data-set labels shuffled over pooled images).
    /// Both come from stored per-image losses. Circuit size keeps each data set's full-data ablation order (measured on
    /// both data sets) inside resamples: re-ranking heads per resample would need new forward passes.
    /// </summary>
    public static IReadOnlyList<ComplexityRatio> Ratios(AblationResult real, AblationResult synthetic, IReadOnlyList<string> headNames, double tauPercent,
        int resamples = 2000, int permutations = 2000, int seed = 0)
    {
        int heads = headNames.Count;
        // Pool both data sets' images into one index space: 0..nR-1 real, nR.. synthetic.
        int nR = real.ImageIds.Count, nS = synthetic.ImageIds.Count;
        var pooled = new PooledLosses(real, synthetic);
        var single = headNames.Select(pooled.Condition).ToArray();
        var prefixes = DataSetId.Compared.ToDictionary(d => d,
            d => Enumerable.Range(1, heads).Select(m => pooled.Condition(real.Conditions[real.PrefixIndex(d, m)].Name)).ToArray());
        double Complexity(ComplexityMeasure measure, IReadOnlyList<int> idx, DataSetId orderOf) => measure == ComplexityMeasure.EffectiveHeads
            ? EffectiveHeads(single.Select(c => Math.Max(0, pooled.Degradation(c, idx))).ToArray())
            : Size(heads, tauPercent, m => pooled.Degradation(prefixes[orderOf][m - 1], idx));
        double Ratio(ComplexityMeasure measure, IReadOnlyList<int> realIdx, IReadOnlyList<int> synIdx) =>
            Complexity(measure, realIdx, DataSetId.Real) / Complexity(measure, synIdx, DataSetId.Synthetic);
        int[] Offset(int[] idx) => idx.Select(i => nR + i).ToArray();

        var list = new List<ComplexityRatio>();
        foreach (var measure in new[] { ComplexityMeasure.EffectiveHeads, ComplexityMeasure.CircuitSize })
        {
            int stream = measure == ComplexityMeasure.EffectiveHeads ? 1 : 2;
            double cReal = Complexity(measure, Enumerable.Range(0, nR).ToArray(), DataSetId.Real);
            double cSyn = Complexity(measure, Enumerable.Range(nR, nS).ToArray(), DataSetId.Synthetic);
            var ci = Resampling.BootstrapIndices(nR, nS, (r, s) => Ratio(measure, r, Offset(s)), resamples, StableSeed.Of(seed, stream, 0xC1));
            // Pooled indices: the first nR labels play the real data set.
            var perm = Resampling.PermutationTestIndices(nR, nS, (r, s) => Ratio(measure, r, s), permutations, StableSeed.Of(seed, stream, 0x9E7), ratio: true);
            list.Add(measure == ComplexityMeasure.EffectiveHeads
                ? new ComplexityRatio(measure, "effective number of heads", cReal, cSyn, cReal / cSyn, ci, perm, "from single-head zero ablations")
                : new ComplexityRatio(measure, $"circuit size at tau = {tauPercent:G3}%", cReal, cSyn, cReal / cSyn, ci, perm,
                    "joint ablations in each data set's own ascending-importance order, measured on both data sets"));
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
