namespace DiffusionCircuits.Statistics;

/// <summary>A statistic with its percentile bootstrap confidence interval.</summary>
public sealed record BootstrapInterval(double Estimate, double Low, double High, int Resamples, double Confidence);

/// <summary>A permutation test: observed statistic, p-value, and the smallest p-value the permutations can show.</summary>
public sealed record PermutationResult(double Observed, double PValue, int Permutations, bool AtResolution)
{
    /// <summary>1 / (permutations + 1): report "p &lt; resolution" when <see cref="AtResolution"/>.</summary>
    public double Resolution => 1.0 / (Permutations + 1);
}

/// <summary>Seeded bootstrap and permutation tests (METHOD.md section 7): same seed, same numbers.</summary>
public static class Resampling
{
    /// <summary>Percentile bootstrap CI of a one-sample statistic (resampling with replacement).</summary>
    public static BootstrapInterval Bootstrap(IReadOnlyList<double> sample, Func<double[], double> statistic, int resamples = 2000, int seed = 0, double confidence = 0.95)
    {
        if (sample.Count == 0) throw new ArgumentException("Cannot bootstrap an empty sample.");
        Checks.Finite(sample.ToArray(), "sample");
        var rng = new Random(StableSeed.Of(seed, 0xB0075));
        var buffer = new double[sample.Count];
        var stats = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < buffer.Length; i++) buffer[i] = sample[rng.Next(sample.Count)];
            stats[b] = statistic(buffer);
        }
        return Interval(statistic(sample.ToArray()), stats, confidence);
    }

    /// <summary>
    /// Percentile bootstrap CI of a two-sample statistic, resampling within each sample (e.g. a ratio of means,
    /// or the complexity ratio C(real) / C(synthetic)).
    /// </summary>
    public static BootstrapInterval Bootstrap(IReadOnlyList<double> x, IReadOnlyList<double> y, Func<double[], double[], double> statistic,
        int resamples = 2000, int seed = 0, double confidence = 0.95)
    {
        if (x.Count == 0 || y.Count == 0) throw new ArgumentException("Cannot bootstrap an empty sample.");
        var rng = new Random(StableSeed.Of(seed, 0xB0076));
        var bx = new double[x.Count];
        var by = new double[y.Count];
        var stats = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < bx.Length; i++) bx[i] = x[rng.Next(x.Count)];
            for (int i = 0; i < by.Length; i++) by[i] = y[rng.Next(y.Count)];
            stats[b] = statistic(bx, by);
        }
        return Interval(statistic(x.ToArray(), y.ToArray()), stats, confidence);
    }

    /// <summary>Bootstrap over indices, for statistics of paired or structured data (resample rows, keep each row whole).</summary>
    public static BootstrapInterval BootstrapIndices(int count, Func<int[], double> statistic, int resamples = 2000, int seed = 0, double confidence = 0.95)
    {
        var rng = new Random(StableSeed.Of(seed, 0xB0077));
        var idx = new int[count];
        var stats = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < count; i++) idx[i] = rng.Next(count);
            stats[b] = statistic(idx);
        }
        return Interval(statistic(Enumerable.Range(0, count).ToArray()), stats, confidence);
    }

    private static BootstrapInterval Interval(double estimate, double[] stats, double confidence)
    {
        var finite = stats.Where(double.IsFinite).ToArray();
        Array.Sort(finite);
        double alpha = (1 - confidence) / 2;
        return new BootstrapInterval(estimate, Descriptive.QuantileSorted(finite, alpha), Descriptive.QuantileSorted(finite, 1 - alpha), stats.Length, confidence);
    }

    /// <summary>
    /// Two-sided permutation test of a two-sample statistic by shuffling the pooled labels. Deviation from the null
    /// is |T - null| (differences) or |ln T| (ratios, <paramref name="ratio"/> = true). p = (1 + #{perm >= observed}) / (n + 1),
    /// so p is never 0; when no permutation reaches the observed value, p equals the resolution 1 / (n + 1).
    /// </summary>
    public static PermutationResult PermutationTest(IReadOnlyList<double> x, IReadOnlyList<double> y, Func<double[], double[], double> statistic,
        int permutations = 2000, int seed = 0, bool ratio = false)
    {
        if (permutations < 1) throw new ArgumentOutOfRangeException(nameof(permutations), "At least one permutation.");
        var pooled = x.Concat(y).ToArray();
        double observed = statistic(x.ToArray(), y.ToArray());
        double Deviation(double t) => ratio ? Math.Abs(Math.Log(t)) : Math.Abs(t);
        double obsDev = Deviation(observed);
        var rng = new Random(StableSeed.Of(seed, 0x9E7));
        var bx = new double[x.Count];
        var by = new double[y.Count];
        int extreme = 0;
        for (int p = 0; p < permutations; p++)
        {
            for (int i = pooled.Length - 1; i > 0; i--)
            {
                int j = rng.Next(i + 1);
                (pooled[i], pooled[j]) = (pooled[j], pooled[i]);
            }
            Array.Copy(pooled, 0, bx, 0, bx.Length);
            Array.Copy(pooled, bx.Length, by, 0, by.Length);
            // A tolerance keeps permutations equal to the observed value (up to rounding) counted as extreme.
            if (Deviation(statistic(bx, by)) >= obsDev - 1e-12 * Math.Max(1, obsDev)) extreme++;
        }
        return new PermutationResult(observed, (extreme + 1.0) / (permutations + 1), permutations, extreme == 0);
    }
}
