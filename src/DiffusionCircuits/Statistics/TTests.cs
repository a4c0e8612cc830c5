namespace DiffusionCircuits.Statistics;

/// <summary>t-tests as SciPy computes them (ttest_ind, ttest_rel), two-sided.</summary>
public static class TTests
{
    /// <summary>Welch's t-test (unequal variances), Welch-Satterthwaite df, with Hedges' g.</summary>
    public static HypothesisTest Welch(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        Checks.Finite(x, "x");
        Checks.Finite(y, "y");
        int n1 = x.Length, n2 = y.Length;
        if (n1 < 2 || n2 < 2) return TooSmall("Welch t", n1, n2);
        double v1 = Descriptive.Variance(x) / n1, v2 = Descriptive.Variance(y) / n2;
        double diff = Descriptive.Mean(x) - Descriptive.Mean(y);
        double se = Math.Sqrt(v1 + v2);
        double t = Ratio(diff, se);
        double df = (v1 + v2) * (v1 + v2) / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1));
        if (se == 0) df = n1 + n2 - 2;
        return new HypothesisTest
        {
            Test = "Welch t", N1 = n1, N2 = n2, StatisticName = "t", Statistic = t, DegreesOfFreedom = df,
            PValue = Distributions.StudentTwoSided(t, df), Effect = EffectSizes.HedgesG(x, y), Method = "t distribution",
            Note = se == 0 ? "both samples have zero variance" : null,
        }.Checked();
    }

    /// <summary>Student's t-test with pooled variance.</summary>
    public static HypothesisTest Student(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        Checks.Finite(x, "x");
        Checks.Finite(y, "y");
        int n1 = x.Length, n2 = y.Length;
        if (n1 < 2 || n2 < 2) return TooSmall("Student t", n1, n2);
        double df = n1 + n2 - 2;
        double pooled = ((n1 - 1) * Descriptive.Variance(x) + (n2 - 1) * Descriptive.Variance(y)) / df;
        double t = Ratio(Descriptive.Mean(x) - Descriptive.Mean(y), Math.Sqrt(pooled * (1.0 / n1 + 1.0 / n2)));
        return new HypothesisTest
        {
            Test = "Student t", N1 = n1, N2 = n2, StatisticName = "t", Statistic = t, DegreesOfFreedom = df,
            PValue = Distributions.StudentTwoSided(t, df), Effect = EffectSizes.HedgesG(x, y), Method = "t distribution",
        }.Checked();
    }

    /// <summary>Paired t-test on x - y, with Cohen's d_z (mean difference / SD of differences).</summary>
    public static HypothesisTest Paired(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        Checks.Finite(x, "x");
        Checks.Finite(y, "y");
        Checks.SameLength(x, y);
        int n = x.Length;
        if (n < 2) return TooSmall("paired t", n, null);
        var d = new double[n];
        for (int i = 0; i < n; i++) d[i] = x[i] - y[i];
        double sd = Descriptive.StandardDeviation(d), mean = Descriptive.Mean(d);
        double t = Ratio(mean, sd / Math.Sqrt(n));
        return new HypothesisTest
        {
            Test = "paired t", N1 = n, StatisticName = "t", Statistic = t, DegreesOfFreedom = n - 1,
            PValue = Distributions.StudentTwoSided(t, n - 1), Effect = new EffectSize("Cohen's d_z", Ratio(mean, sd)),
            Method = "t distribution", Note = sd == 0 ? "all differences are equal" : null,
        }.Checked();
    }

    /// <summary>a / b with SciPy's conventions at b = 0: +-infinity when a != 0, NaN when a = 0.</summary>
    internal static double Ratio(double a, double b) => b != 0 ? a / b : a == 0 ? double.NaN : a > 0 ? double.PositiveInfinity : double.NegativeInfinity;

    private static HypothesisTest TooSmall(string test, int n1, int? n2) => new HypothesisTest
    {
        Test = test, N1 = n1, N2 = n2, StatisticName = "t", Statistic = double.NaN, PValue = double.NaN,
        Method = "t distribution", Note = "needs at least 2 values in each sample",
    }.Checked("needs at least 2 values in each sample");
}
