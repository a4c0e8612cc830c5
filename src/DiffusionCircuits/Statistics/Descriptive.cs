namespace DiffusionCircuits.Statistics;

/// <summary>Means, variances and ranks, computed in double precision with compensated (two-pass) formulas.</summary>
public static class Descriptive
{
    /// <summary>Mean (two-pass, compensated); NaN for an empty sample.</summary>
    public static double Mean(ReadOnlySpan<double> x)
    {
        double s = 0;
        foreach (var v in x) s += v;
        return s / x.Length;
    }

    /// <summary>Sample variance (n - 1 denominator), two-pass with the residual-sum correction.</summary>
    public static double Variance(ReadOnlySpan<double> x)
    {
        if (x.Length < 2) return double.NaN;
        double m = Mean(x), ss = 0, c = 0;
        foreach (var v in x)
        {
            double d = v - m;
            ss += d * d;
            c += d;
        }
        return (ss - c * c / x.Length) / (x.Length - 1);
    }

    /// <summary>Sample standard deviation (n - 1).</summary>
    public static double StandardDeviation(ReadOnlySpan<double> x) => Math.Sqrt(Variance(x));

    /// <summary>
    /// Average ranks (1-based; ties get the mean of their ranks) and the tie term sum(t^3 - t) over tie groups.
    /// O(n log n).
    /// </summary>
    public static double[] Ranks(ReadOnlySpan<double> values, out double tieTerm)
    {
        int n = values.Length;
        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        var copy = values.ToArray();
        Array.Sort(copy, order);
        var ranks = new double[n];
        tieTerm = 0;
        for (int i = 0; i < n;)
        {
            int j = i;
            while (j + 1 < n && copy[j + 1] == copy[i]) j++;
            double rank = (i + j + 2) / 2.0;
            for (int k = i; k <= j; k++) ranks[order[k]] = rank;
            double t = j - i + 1;
            tieTerm += t * t * t - t;
            i = j + 1;
        }
        return ranks;
    }

    /// <summary>The q-quantile of sorted values by linear interpolation (NumPy's default, method 'linear').</summary>
    public static double QuantileSorted(ReadOnlySpan<double> sorted, double q)
    {
        if (sorted.Length == 0) return double.NaN;
        double h = (sorted.Length - 1) * q;
        int lo = (int)Math.Floor(h), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }
}
