namespace DiffusionCircuits.Statistics;

/// <summary>Family-wise corrections; adjusted p-values come back in input order.</summary>
public static class MultipleComparisons
{
    /// <summary>Benjamini-Hochberg step-up (controls the false discovery rate).</summary>
    public static double[] BenjaminiHochberg(IReadOnlyList<double> p)
    {
        int m = Validate(p);
        var order = Enumerable.Range(0, m).OrderBy(i => p[i]).ThenBy(i => i).ToArray();
        var adjusted = new double[m];
        double running = 1;
        for (int k = m - 1; k >= 0; k--)
        {
            running = Math.Min(running, p[order[k]] * m / (k + 1));
            adjusted[order[k]] = Math.Min(1, running);
        }
        return adjusted;
    }

    /// <summary>Holm step-down (controls the family-wise error rate).</summary>
    public static double[] Holm(IReadOnlyList<double> p)
    {
        int m = Validate(p);
        var order = Enumerable.Range(0, m).OrderBy(i => p[i]).ThenBy(i => i).ToArray();
        var adjusted = new double[m];
        double running = 0;
        for (int k = 0; k < m; k++)
        {
            running = Math.Max(running, p[order[k]] * (m - k));
            adjusted[order[k]] = Math.Min(1, running);
        }
        return adjusted;
    }

    /// <summary>Bonferroni: p times the number of tests, capped at 1.</summary>
    public static double[] Bonferroni(IReadOnlyList<double> p)
    {
        int m = Validate(p);
        return p.Select(v => Math.Min(1, v * m)).ToArray();
    }

    /// <summary>Adjusts a family of test results (BH by default) and records the family and method on each.</summary>
    /// <remarks>Undefined tests (no p-value) are left out of the family and keep no adjusted p.</remarks>
    public static IReadOnlyList<HypothesisTest> Adjust(IReadOnlyList<HypothesisTest> tests, string family, string method = "Benjamini-Hochberg")
    {
        var p = tests.Select(t => t.PValue ?? double.NaN).ToArray();
        var valid = Enumerable.Range(0, p.Length).Where(i => !double.IsNaN(p[i])).ToArray();
        var adjusted = method switch
        {
            "Benjamini-Hochberg" => BenjaminiHochberg(valid.Select(i => p[i]).ToArray()),
            "Holm" => Holm(valid.Select(i => p[i]).ToArray()),
            "Bonferroni" => Bonferroni(valid.Select(i => p[i]).ToArray()),
            _ => throw new ArgumentException($"Unknown correction '{method}' (Benjamini-Hochberg, Holm, Bonferroni)."),
        };
        var result = tests.Select(t => t with { Family = family, Correction = method, AdjustedPValue = null }).ToArray();
        for (int k = 0; k < valid.Length; k++) result[valid[k]] = result[valid[k]] with { AdjustedPValue = adjusted[k] };
        return result;
    }

    private static int Validate(IReadOnlyList<double> p)
    {
        for (int i = 0; i < p.Count; i++)
            if (double.IsNaN(p[i]) || p[i] < 0 || p[i] > 1)
                throw new ArgumentException($"p-value {i} is {p[i]}; p-values must lie in [0, 1].");
        return p.Count;
    }
}
