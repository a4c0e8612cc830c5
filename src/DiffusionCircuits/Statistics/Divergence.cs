using System.Numerics.Tensors;

namespace DiffusionCircuits.Statistics;

/// <summary>Entropy and Jensen-Shannon divergence of discrete distributions, in nats (0 ln 0 = 0).</summary>
public static class Divergence
{
    /// <summary>H(p) = -sum p ln p over p > 0. p must sum to 1 (not normalised here, so rows of attention stay exact).</summary>
    public static double EntropyNats(ReadOnlySpan<float> p)
    {
        double h = 0;
        foreach (var v in p)
            if (v > 0) h -= v * Math.Log(v);
        return h;
    }

    /// <summary>H(p) = -sum p ln p over p > 0, in double precision.</summary>
    public static double EntropyNats(ReadOnlySpan<double> p)
    {
        double h = 0;
        foreach (var v in p)
            if (v > 0) h -= v * Math.Log(v);
        return h;
    }

    /// <summary>JS(p || q) = H(m) - (H(p) + H(q)) / 2 with m = (p + q) / 2; in [0, ln 2].</summary>
    public static double JensenShannonNats(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        if (p.Length != q.Length) throw new ArgumentException($"Distributions differ in length ({p.Length} and {q.Length}).");
        double js = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double m = 0.5 * (p[i] + q[i]);
            if (p[i] > 0) js += 0.5 * p[i] * Math.Log(p[i] / m);
            if (q[i] > 0) js += 0.5 * q[i] * Math.Log(q[i] / m);
        }
        return Math.Max(0, js);
    }

    /// <summary>Mean of |a - b| over two equal-length vectors, vectorised.</summary>
    public static double MeanAbsoluteDifference(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var diff = new float[a.Length];
        TensorPrimitives.Subtract(a, b, diff);
        TensorPrimitives.Abs(diff, diff);
        return TensorPrimitives.Sum<float>(diff) / a.Length;
    }
}
