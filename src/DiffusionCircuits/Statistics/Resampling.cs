namespace DiffusionCircuits.Statistics;

/// <summary>A statistic with its percentile bootstrap confidence interval.</summary>
public sealed record BootstrapInterval(double Estimate, double Low, double High, int Resamples, double Confidence);

/// <summary>
/// A permutation test: observed statistic, p-value (NaN when the observed statistic is undefined: no permutation can be
/// compared with it), and the smallest p-value the permutations can show.
/// </summary>
public sealed record PermutationResult(double Observed, double PValue, int Permutations, bool AtResolution)
{
    /// <summary>Whether the observed statistic, and so the p-value, is defined.</summary>
    public bool Defined => !double.IsNaN(PValue);

    /// <summary>1 / (permutations + 1): report "p &lt; resolution" when <see cref="AtResolution"/>.</summary>
    public double Resolution => 1.0 / (Permutations + 1);
}

/// <summary>
/// Seeded bootstrap and permutation tests (METHOD.md section 7): same seed, same numbers. Two cores resample indices
/// (<see cref="BootstrapIndices(int, int, Func{int[], int[], double}, int, int, double)"/>, <see cref="PermutationTestIndices"/>);
/// the value-based functions gather values through them, so every resampling in the tool shares one generator
/// stream convention, one interval rule and one rule for what counts as extreme.
/// </summary>
public static class Resampling
{
    /// <summary>Percentile bootstrap CI of a one-sample statistic (resampling with replacement).</summary>
    public static BootstrapInterval Bootstrap(IReadOnlyList<double> sample, Func<double[], double> statistic, int resamples = 2000, int seed = 0, double confidence = 0.95)
    {
        if (sample.Count == 0) throw new ArgumentException("Cannot bootstrap an empty sample.");
        var values = sample.ToArray();   // read through an array, not the interface: this loop runs resamples x n times
        Checks.Finite(values, "sample");
        var buffer = new double[values.Length];
        // The point estimate gets a copy: a statistic may sort its input, and the resamples read values.
        return Interval(statistic(values.ToArray()), Resample(OneSampleGenerator(seed), values.Length, 0, resamples, (ix, _) =>
        {
            for (int i = 0; i < buffer.Length; i++) buffer[i] = values[ix[i]];
            return statistic(buffer);
        }), resamples, confidence);
    }

    /// <summary>
    /// Percentile bootstrap CI of the mean: the same numbers as <see cref="Bootstrap(IReadOnlyList{double}, Func{double[], double}, int, int, double)"/>
    /// with the sample mean as the statistic (the same generator stream, the values summed in the same order), without
    /// copying each resample: the report summarises thousands of (head, feature, timestep) means this way.
    /// </summary>
    public static BootstrapInterval BootstrapMean(IReadOnlyList<double> sample, int resamples = 2000, int seed = 0, double confidence = 0.95)
    {
        if (sample.Count == 0) throw new ArgumentException("Cannot bootstrap an empty sample.");
        var values = sample.ToArray();
        Checks.Finite(values, "sample");
        var rng = OneSampleGenerator(seed);
        int n = values.Length;
        var stats = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += values[rng.Next(n)];
            stats[b] = sum / n;
        }
        return Interval(values.Average(), stats, resamples, confidence);
    }

    /// <summary>The generator of a one-sample bootstrap: <see cref="BootstrapMean"/> draws what <see cref="Bootstrap(IReadOnlyList{double}, Func{double[], double}, int, int, double)"/> draws.</summary>
    private static Random OneSampleGenerator(int seed) => new(StableSeed.Of(seed, 0xB0075));

    /// <summary>
    /// Percentile bootstrap CI of a two-sample statistic, resampling within each sample (e.g. a ratio of means,
    /// or the complexity ratio C(real) / C(synthetic)).
    /// </summary>
    public static BootstrapInterval Bootstrap(IReadOnlyList<double> x, IReadOnlyList<double> y, Func<double[], double[], double> statistic,
        int resamples = 2000, int seed = 0, double confidence = 0.95)
    {
        if (x.Count == 0 || y.Count == 0) throw new ArgumentException("Cannot bootstrap an empty sample.");
        var (xs, ys) = (x.ToArray(), y.ToArray());
        var bx = new double[xs.Length];
        var by = new double[ys.Length];
        return BootstrapIndices(xs.Length, ys.Length, (ix, iy) =>
        {
            for (int i = 0; i < bx.Length; i++) bx[i] = xs[ix[i]];
            for (int i = 0; i < by.Length; i++) by[i] = ys[iy[i]];
            return statistic(bx, by);
        }, resamples, StableSeed.Of(seed, 0xB0076), confidence);
    }

    /// <summary>Bootstrap over indices, for statistics of paired or structured data (resample rows, keep each row whole).</summary>
    public static BootstrapInterval BootstrapIndices(int count, Func<int[], double> statistic, int resamples = 2000, int seed = 0, double confidence = 0.95) =>
        Interval(statistic(Enumerable.Range(0, count).ToArray()),
            Resample(new Random(StableSeed.Of(seed, 0xB0077)), count, 0, resamples, (ix, _) => statistic(ix)), resamples, confidence);

    /// <summary>
    /// Two-sample bootstrap over indices: each resample draws <paramref name="countX"/> indices into the first sample and
    /// then <paramref name="countY"/> into the second, with replacement. <paramref name="generatorSeed"/> seeds the
    /// generator as given (derive it with <see cref="StableSeed"/>). The estimate is the statistic of all indices.
    /// </summary>
    public static BootstrapInterval BootstrapIndices(int countX, int countY, Func<int[], int[], double> statistic, int resamples, int generatorSeed,
        double confidence = 0.95) =>
        Interval(statistic(Enumerable.Range(0, countX).ToArray(), Enumerable.Range(0, countY).ToArray()),
            Resample(new Random(generatorSeed), countX, countY, resamples, statistic), resamples, confidence);

    private static double[] Resample(Random rng, int countX, int countY, int resamples, Func<int[], int[], double> statistic)
    {
        var ix = new int[countX];
        var iy = new int[countY];
        var stats = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < countX; i++) ix[i] = rng.Next(countX);
            for (int i = 0; i < countY; i++) iy[i] = rng.Next(countY);
            stats[b] = statistic(ix, iy);
        }
        return stats;
    }

    private static BootstrapInterval Interval(double estimate, double[] stats, int resamples, double confidence)
    {
        // An undefined estimate has no interval (the finite resamples alone would describe another statistic).
        if (!double.IsFinite(estimate)) return new BootstrapInterval(estimate, double.NaN, double.NaN, resamples, confidence);
        var finite = stats.Where(double.IsFinite).ToArray();
        Array.Sort(finite);
        double alpha = (1 - confidence) / 2;
        return new BootstrapInterval(estimate, Descriptive.QuantileSorted(finite, alpha), Descriptive.QuantileSorted(finite, 1 - alpha), resamples, confidence);
    }

    /// <summary>
    /// Two-sided permutation test of a two-sample statistic by shuffling the pooled labels. Deviation from the null
    /// is |T - null| (differences) or |ln T| (ratios, <paramref name="ratio"/> = true). p = (1 + #{perm >= observed}) / (n + 1),
    /// so p is never 0; when no permutation reaches the observed value, p equals the resolution 1 / (n + 1). An undefined
    /// observed statistic gives p = NaN (no p-value).
    /// </summary>
    public static PermutationResult PermutationTest(IReadOnlyList<double> x, IReadOnlyList<double> y, Func<double[], double[], double> statistic,
        int permutations = 2000, int seed = 0, bool ratio = false)
    {
        var pooled = x.Concat(y).ToArray();
        var bx = new double[x.Count];
        var by = new double[y.Count];
        return PermutationTestIndices(x.Count, y.Count, (ix, iy) =>
        {
            for (int i = 0; i < bx.Length; i++) bx[i] = pooled[ix[i]];
            for (int i = 0; i < by.Length; i++) by[i] = pooled[iy[i]];
            return statistic(bx, by);
        }, permutations, StableSeed.Of(seed, 0x9E7), ratio);
    }

    /// <summary>
    /// The permutation test over pooled indices 0..countX+countY-1: the observed statistic takes the first
    /// <paramref name="countX"/> as the first sample; each permutation shuffles the labels (Fisher-Yates) and splits them
    /// the same way. A permutation counts as extreme when its deviation is defined (finite) and reaches the observed one
    /// up to rounding. <paramref name="generatorSeed"/> seeds the generator as given.
    /// </summary>
    public static PermutationResult PermutationTestIndices(int countX, int countY, Func<int[], int[], double> statistic, int permutations, int generatorSeed,
        bool ratio = false)
    {
        if (permutations < 1) throw new ArgumentOutOfRangeException(nameof(permutations), "At least one permutation.");
        var labels = Enumerable.Range(0, countX + countY).ToArray();
        double observed = statistic(labels[..countX], labels[countX..]);
        double Deviation(double t) => ratio ? Math.Abs(Math.Log(t)) : Math.Abs(t);
        double obsDev = Deviation(observed);
        // An undefined observed statistic (a 0/0 ratio) has no p: every comparison with it would be false.
        if (!double.IsFinite(obsDev)) return new PermutationResult(observed, double.NaN, permutations, false);
        var rng = new Random(generatorSeed);
        var ix = new int[countX];
        var iy = new int[countY];
        int extreme = 0;
        for (int p = 0; p < permutations; p++)
        {
            for (int i = labels.Length - 1; i > 0; i--)
            {
                int j = rng.Next(i + 1);
                (labels[i], labels[j]) = (labels[j], labels[i]);
            }
            Array.Copy(labels, 0, ix, 0, countX);
            Array.Copy(labels, countX, iy, 0, countY);
            double deviation = Deviation(statistic(ix, iy));
            // A tolerance keeps permutations equal to the observed value (up to rounding) counted as extreme.
            if (double.IsFinite(deviation) && deviation >= obsDev - 1e-12 * Math.Max(1, obsDev)) extreme++;
        }
        return new PermutationResult(observed, (extreme + 1.0) / (permutations + 1), permutations, extreme == 0);
    }
}
