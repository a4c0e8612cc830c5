namespace DiffusionCircuits.Statistics;

/// <summary>How the Wilcoxon signed-rank test treats zero differences (SciPy's zero_method).</summary>
public enum WilcoxonZeros
{
    /// <summary>Drop zero differences before ranking (Wilcoxon's original; SciPy's default).</summary>
    Wilcox,

    /// <summary>Rank zeros with the rest, then drop their ranks (Pratt 1959): more conservative.</summary>
    Pratt,
}

/// <summary>Rank tests that match SciPy 1.10's defaults (mannwhitneyu, wilcoxon), two-sided.</summary>
public static class RankTests
{
    /// <summary>
    /// Mann-Whitney U of x against y. Statistic U1 = R1 - n1(n1+1)/2. Exact null distribution when either sample has
    /// at most 8 values and there are no ties; otherwise the normal approximation with tie correction and continuity
    /// correction (as SciPy). Effect size: rank-biserial r = 2 U1 / (n1 n2) - 1 (positive when x tends to be larger).
    /// </summary>
    public static HypothesisTest MannWhitneyU(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        Checks.Finite(x, "x");
        Checks.Finite(y, "y");
        int n1 = x.Length, n2 = y.Length;
        if (n1 == 0 || n2 == 0) throw new ArgumentException($"Mann-Whitney U needs values in both samples (got {n1} and {n2}).");
        var all = new double[n1 + n2];
        x.CopyTo(all);
        y.CopyTo(all.AsSpan(n1));
        var ranks = Descriptive.Ranks(all, out double tieTerm);
        double r1 = 0;
        for (int i = 0; i < n1; i++) r1 += ranks[i];
        double u1 = r1 - n1 * (n1 + 1) / 2.0, u2 = (double)n1 * n2 - u1, u = Math.Max(u1, u2);
        bool exact = (n1 <= 8 || n2 <= 8) && tieTerm == 0;
        double p;
        if (exact)
        {
            p = 2 * ExactUUpperTail((int)u, n1, n2);
        }
        else
        {
            double n = n1 + n2;
            double s = Math.Sqrt(n1 * (double)n2 / 12 * ((n + 1) - tieTerm / (n * (n - 1))));
            double numerator = u - n1 * (double)n2 / 2 - 0.5;           // continuity correction
            double z = s > 0 ? numerator / s : double.NegativeInfinity;  // all values tied: p = 1
            p = 2 * Distributions.NormalSf(z);
        }
        return new HypothesisTest
        {
            Test = "Mann-Whitney U", N1 = n1, N2 = n2, StatisticName = "U", Statistic = u1, PValue = Math.Clamp(p, 0, 1),
            Effect = new EffectSize("rank-biserial r", 2 * u1 / (n1 * (double)n2) - 1),
            Method = exact ? "exact" : "asymptotic (tie and continuity corrected)",
            Note = tieTerm > 0 && (n1 <= 8 || n2 <= 8) ? "ties: normal approximation instead of the exact distribution" : null,
        }.Checked();
    }

    /// <summary>P(U >= u) under H0, from the generating function prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i).</summary>
    private static double ExactUUpperTail(int u, int m, int n)
    {
        int max = m * n;
        var c = new double[max + 1];
        c[0] = 1;
        int degree = 0;
        for (int i = 1; i <= m; i++)
        {
            // multiply by (1 - q^(n+i)), then divide by (1 - q^i) (a running sum with stride i)
            for (int k = Math.Min(max, degree + n + i); k >= n + i; k--) c[k] -= c[k - n - i];
            degree = Math.Min(max, degree + n);
            for (int k = i; k <= max; k++) c[k] += c[k - i];
        }
        double total = 0, tail = 0;
        for (int k = 0; k <= max; k++)
        {
            total += c[k];
            if (k >= u) tail += c[k];
        }
        return tail / total;
    }

    /// <summary>
    /// Wilcoxon signed-rank test of x - y. Statistic min(R+, R-). Exact null distribution when n &lt;= 50 and no
    /// difference is zero (ranks tied by equal |d| use floor(R+), as SciPy); otherwise the normal approximation with
    /// tie correction and no continuity correction. Effect size: matched-pairs rank-biserial (R+ - R-) / (R+ + R-).
    /// All-zero differences give statistic 0 and p = 1 (SciPy raises an error instead).
    /// </summary>
    public static HypothesisTest Wilcoxon(ReadOnlySpan<double> x, ReadOnlySpan<double> y, WilcoxonZeros zeros = WilcoxonZeros.Wilcox)
    {
        Checks.Finite(x, "x");
        Checks.Finite(y, "y");
        Checks.SameLength(x, y);
        var d = new double[x.Length];
        for (int i = 0; i < d.Length; i++) d[i] = x[i] - y[i];
        return Wilcoxon(d, zeros);
    }

    /// <summary>The Wilcoxon signed-rank test on paired differences (see the two-sample overload).</summary>
    public static HypothesisTest Wilcoxon(double[] differences, WilcoxonZeros zeros = WilcoxonZeros.Wilcox)
    {
        Checks.Finite(differences, "differences");
        int nAll = differences.Length, nZero = differences.Count(v => v == 0);
        string name = zeros == WilcoxonZeros.Wilcox ? "Wilcoxon signed-rank" : "Wilcoxon signed-rank (Pratt)";
        if (nAll == 0 || nZero == nAll)
            return new HypothesisTest
            {
                Test = name, N1 = nAll, StatisticName = "W", Statistic = 0, PValue = 1, Method = "none",
                Note = nAll == 0 ? "no pairs" : "all differences are zero",
            };
        bool exact = nAll <= 50 && nZero == 0;
        var d = exact || zeros == WilcoxonZeros.Pratt ? differences : differences.Where(v => v != 0).ToArray();
        int count = d.Length;
        var abs = d.Select(Math.Abs).ToArray();
        var ranks = Descriptive.Ranks(abs, out _);
        double rPlus = 0, rMinus = 0;
        for (int i = 0; i < count; i++)
        {
            if (d[i] > 0) rPlus += ranks[i];
            else if (d[i] < 0) rMinus += ranks[i];
        }
        double t = Math.Min(rPlus, rMinus), p;
        if (exact)
        {
            var counts = SignedRankCounts(count);
            int r = (int)Math.Floor(rPlus);
            double total = Math.Pow(2, count), less = 0, greater = 0;
            for (int k = 0; k < counts.Length; k++)
            {
                if (k <= r) less += counts[k];
                if (k >= r) greater += counts[k];
            }
            p = r == (counts.Length - 1) / 2 ? 1.0 : Math.Min(1.0, 2 * Math.Min(less, greater) / total);
        }
        else
        {
            double mn = count * (count + 1.0) * 0.25, se = count * (count + 1.0) * (2.0 * count + 1.0);
            var nonzeroRanks = ranks;
            if (zeros == WilcoxonZeros.Pratt)
            {
                mn -= nZero * (nZero + 1.0) * 0.25;
                se -= nZero * (nZero + 1.0) * (2.0 * nZero + 1.0);
                nonzeroRanks = ranks.Where((_, i) => d[i] != 0).ToArray();
            }
            foreach (var g in nonzeroRanks.GroupBy(v => v).Where(g => g.Count() > 1))
            {
                double c = g.Count();
                se -= 0.5 * c * (c * c - 1);
            }
            double z = (t - mn) / Math.Sqrt(se / 24);
            p = Math.Min(1.0, 2 * Distributions.NormalSf(Math.Abs(z)));
        }
        return new HypothesisTest
        {
            Test = name, N1 = nAll, StatisticName = "W", Statistic = t, PValue = p,
            Effect = new EffectSize("matched-pairs rank-biserial r", rPlus + rMinus > 0 ? (rPlus - rMinus) / (rPlus + rMinus) : 0),
            Method = exact ? "exact" : "asymptotic (tie corrected)",
            Note = nZero > 0 ? $"{nZero} zero difference(s) {(zeros == WilcoxonZeros.Wilcox ? "dropped" : "ranked then dropped (Pratt)")}" : null,
        }.Checked();
    }

    /// <summary>Number of subsets of {1..n} with each rank sum 0..n(n+1)/2.</summary>
    private static double[] SignedRankCounts(int n)
    {
        int max = n * (n + 1) / 2;
        var c = new double[max + 1];
        c[0] = 1;
        for (int k = 1; k <= n; k++)
            for (int s = max; s >= k; s--) c[s] += c[s - k];
        return c;
    }
}
