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
    /// <summary>w_k for each head, from the single-head conditions (named by head); at timestep index <paramref name="k"/> alone when given.</summary>
    public static double[] Importance(AblationResult singles, IReadOnlyList<string> headNames, IReadOnlyList<int>? images = null, int? k = null) =>
        headNames.Select(name => Math.Max(0, singles.DegradationPercent(singles.IndexOf(name), k, images))).ToArray();

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

    /// <summary>
    /// The circuit of <paramref name="result"/>'s data set at tolerance tau, from the prefixes of <paramref name="orderOf"/>'s
    /// order; with timestep index <paramref name="k"/>, from the degradations at that timestep alone (same measured prefixes).
    /// </summary>
    public static Circuit Find(AblationResult result, IReadOnlyList<string> headNames, IReadOnlyList<int> order, DataSetId orderOf, double tauPercent, int? k = null)
    {
        int heads = headNames.Count;
        var prefixes = Enumerable.Range(1, heads).Select(m => result.DegradationPercent(result.PrefixIndex(orderOf, m), k)).ToList();
        int size = Size(heads, tauPercent, m => prefixes[m - 1]);
        var ablated = order.Take(heads - size).ToHashSet();
        return new Circuit(result.DataSet, tauPercent, size, EffectiveHeads(Importance(result, headNames, null, k)),
            Enumerable.Range(0, heads).Where(h => !ablated.Contains(h)).Select(h => headNames[h]).ToList(),
            order.Select(h => headNames[h]).ToList(), prefixes) { Timestep = k is int kk ? result.Timesteps[kk] : null };
    }

    /// <summary>
    /// Complexity ratio real / synthetic for the effective number of heads (95% bootstrap CI, images resampled within each
    /// data set) and for circuit size (a point value: re-ranking heads per resample would need new forward passes), with
    /// permutation p-values (data-set labels shuffled over pooled images; circuit size keeps each data set's full-data
    /// ablation order). All from stored per-image losses. An undefined ratio (0/0) has no CI and no p.
    /// </summary>
    /// <remarks>With timestep index <paramref name="k"/>, the ratios of the degradations at that timestep alone.</remarks>
    public static IReadOnlyList<ComplexityRatio> Ratios(AblationResult real, AblationResult synthetic, IReadOnlyList<string> headNames, double tauPercent,
        int resamples = 2000, int permutations = 2000, int seed = 0, int? k = null)
    {
        int heads = headNames.Count;
        // Pool both data sets' images into one index space: 0..nR-1 real, nR.. synthetic.
        int nR = real.ImageIds.Count, nS = synthetic.ImageIds.Count;
        var pooled = new PooledLosses(real, synthetic);
        var single = headNames.Select(pooled.Condition).ToArray();
        var prefixes = DataSetId.Compared.ToDictionary(d => d,
            d => Enumerable.Range(1, heads).Select(m => pooled.Condition(real.Conditions[real.PrefixIndex(d, m)].Name)).ToArray());
        double Complexity(ComplexityMeasure measure, IReadOnlyList<int> idx, DataSetId orderOf) => measure == ComplexityMeasure.EffectiveHeads
            ? EffectiveHeads(single.Select(c => Math.Max(0, pooled.Degradation(c, idx, k))).ToArray())
            : Size(heads, tauPercent, m => pooled.Degradation(prefixes[orderOf][m - 1], idx, k));
        double Ratio(ComplexityMeasure measure, IReadOnlyList<int> realIdx, IReadOnlyList<int> synIdx) =>
            Complexity(measure, realIdx, DataSetId.Real) / Complexity(measure, synIdx, DataSetId.Synthetic);
        int[] Offset(int[] idx) => idx.Select(i => nR + i).ToArray();

        var list = new List<ComplexityRatio>();
        foreach (var measure in new[] { ComplexityMeasure.EffectiveHeads, ComplexityMeasure.CircuitSize })
        {
            int stream = measure == ComplexityMeasure.EffectiveHeads ? 1 : 2;
            if (k is int timestep) stream = StableSeed.Of(stream, timestep);
            double cReal = Complexity(measure, Enumerable.Range(0, nR).ToArray(), DataSetId.Real);
            double cSyn = Complexity(measure, Enumerable.Range(nR, nS).ToArray(), DataSetId.Synthetic);
            // Circuit size is a point value: a resample would need its heads re-ranked and its prefixes re-ablated (new forward
            // passes); keeping the full-data orders gives intervals that hide that uncertainty, often of zero width.
            var ci = measure == ComplexityMeasure.EffectiveHeads
                ? Resampling.BootstrapIndices(nR, nS, (r, s) => Ratio(measure, r, Offset(s)), resamples, StableSeed.Of(seed, stream, 0xC1))
                : new BootstrapInterval(cReal / cSyn, double.NaN, double.NaN, 0, 0.95);
            // Pooled indices: the first nR labels play the real data set.
            var perm = Resampling.PermutationTestIndices(nR, nS, (r, s) => Ratio(measure, r, s), permutations, StableSeed.Of(seed, stream, 0x9E7), ratio: true);
            var ratio = measure == ComplexityMeasure.EffectiveHeads
                ? new ComplexityRatio(measure, "effective number of heads", cReal, cSyn, cReal / cSyn, ci, perm, "from single-head ablations")
                : new ComplexityRatio(measure, $"circuit size at tau = {tauPercent:G3}%", cReal, cSyn, cReal / cSyn, ci, perm,
                    "joint ablations in each data set's own ascending-importance order, measured on both data sets; a point value without a CI " +
                    "(resampling images would need the heads re-ranked and re-ablated), its permutation p keeps the full-data orders");
            list.Add(ratio with { Timestep = k is int kk ? real.Timesteps[kk] : null });
        }
        return list;
    }

    /// <summary>Per-image losses of two ablation results under one index space, per timestep.</summary>
    private sealed class PooledLosses
    {
        private readonly double[][] _base;           // [timestep][image]
        private readonly Dictionary<string, int> _conditions = new();
        private readonly double[][][] _ablated;      // [condition][timestep][image]

        public PooledLosses(AblationResult a, AblationResult b)
        {
            int n = a.ImageIds.Count + b.ImageIds.Count, t = a.Timesteps.Count;
            if (!a.Timesteps.SequenceEqual(b.Timesteps)) throw new ArgumentException("Both data sets must be measured at the same timesteps.");
            _base = Enumerable.Range(0, t).Select(_ => new double[n]).ToArray();
            var names = a.Conditions.Select(c => c.Name).Where(name => b.Conditions.Any(c => c.Name == name)).ToList();
            _ablated = names.Select(_ => Enumerable.Range(0, t).Select(_ => new double[n]).ToArray()).ToArray();
            for (int c = 0; c < names.Count; c++) _conditions[names[c]] = c;
            int offset = 0;
            foreach (var r in new[] { a, b })
            {
                for (int k = 0; k < t; k++)
                    for (int i = 0; i < r.ImageIds.Count; i++) _base[k][offset + i] = r.BaseLoss[k][i];
                for (int c = 0; c < names.Count; c++)
                {
                    int rc = r.IndexOf(names[c]);
                    for (int k = 0; k < t; k++)
                        for (int i = 0; i < r.ImageIds.Count; i++) _ablated[c][k][offset + i] = r.AblatedLoss[rc][k][i];
                }
                offset += r.ImageIds.Count;
            }
        }

        public int Timesteps => _base.Length;

        public int Condition(string name) => _conditions.TryGetValue(name, out var c) ? c
            : throw new InvalidOperationException($"Condition '{name}' was not measured on both data sets.");

        /// <summary>The degradation of METHOD.md section 5 over <paramref name="images"/>: the mean of D_t over timesteps, or D_k.</summary>
        public double Degradation(int condition, IReadOnlyList<int> images, int? k = null)
        {
            if (k is int only) return At(condition, images, only);
            double sum = 0;
            for (int kk = 0; kk < _base.Length; kk++) sum += At(condition, images, kk);
            return sum / _base.Length;
        }

        private double At(int condition, IReadOnlyList<int> images, int k)
        {
            double a = 0, b = 0;
            var ablated = _ablated[condition][k];
            var baseline = _base[k];
            foreach (int i in images) { a += ablated[i]; b += baseline[i]; }
            return 100 * (a - b) / b;
        }
    }
}
