using MathNet.Numerics;

namespace DiffusionCircuits.Statistics;

/// <summary>Standardised mean differences.</summary>
public static class EffectSizes
{
    /// <summary>Cohen's d with the pooled SD.</summary>
    public static double CohensD(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        int n1 = x.Length, n2 = y.Length;
        double pooled = ((n1 - 1) * Descriptive.Variance(x) + (n2 - 1) * Descriptive.Variance(y)) / (n1 + n2 - 2);
        return TTests.Ratio(Descriptive.Mean(x) - Descriptive.Mean(y), Math.Sqrt(pooled));
    }

    /// <summary>
    /// Hedges' g = J d with the exact small-sample factor J = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)), df = n1+n2-2,
    /// and the 95% CI g +- 1.96 SE, SE = sqrt((n1+n2)/(n1 n2) + g^2 / (2 (n1+n2))) (Hedges and Olkin 1985).
    /// </summary>
    public static EffectSize HedgesG(ReadOnlySpan<double> x, ReadOnlySpan<double> y)
    {
        int n1 = x.Length, n2 = y.Length;
        if (n1 < 2 || n2 < 2) return new EffectSize("Hedges' g", double.NaN);
        double df = n1 + n2 - 2;
        double j = Math.Exp(SpecialFunctions.GammaLn(df / 2) - Math.Log(Math.Sqrt(df / 2)) - SpecialFunctions.GammaLn((df - 1) / 2));
        double g = j * CohensD(x, y);
        double se = Math.Sqrt((n1 + n2) / (double)(n1 * n2) + g * g / (2.0 * (n1 + n2)));
        double z = Distributions.NormalQuantile(0.975);
        return new EffectSize("Hedges' g", g, g - z * se, g + z * se);
    }
}
