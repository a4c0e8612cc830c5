using MathNet.Numerics;

namespace DiffusionCircuits.Statistics;

/// <summary>Tail probabilities computed directly in the tail, so tiny p-values keep their relative accuracy.</summary>
internal static class Distributions
{
    /// <summary>Two-sided p of Student's t: P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2).</summary>
    public static double StudentTwoSided(double t, double df)
    {
        if (double.IsNaN(t) || double.IsNaN(df)) return double.NaN;
        if (double.IsInfinity(t)) return 0;
        return SpecialFunctions.BetaRegularized(df / 2, 0.5, df / (df + t * t));
    }

    /// <summary>Standard normal upper tail P(Z >= z).</summary>
    public static double NormalSf(double z) => double.IsNaN(z) ? double.NaN : 0.5 * SpecialFunctions.Erfc(z / Math.Sqrt(2));

    public static double NormalQuantile(double p) => MathNet.Numerics.Distributions.Normal.InvCDF(0, 1, p);
}
