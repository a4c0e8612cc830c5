namespace DiffusionCircuits.Capture;

/// <summary>
/// Measures of cross-attention heads, whose keys are conditioning tokens (METHOD.md section 5c): the attention mass on
/// each token, and each token's spatial map (the attention it receives from every query position, DAAM).
/// </summary>
public static class CrossAttention
{
    /// <summary>Mass on each token: (1/S_q) sum over queries of p[q, k], for one head's map [S_q, S_k] (a mean map); sums to 1.</summary>
    public static double[] TokenMass(ReadOnlySpan<double> map, int queries, int keys)
    {
        var mass = new double[keys];
        for (int q = 0; q < queries; q++)
            for (int k = 0; k < keys; k++) mass[k] += map[q * keys + k];
        for (int k = 0; k < keys; k++) mass[k] /= queries;
        return mass;
    }

    /// <summary>Token <paramref name="token"/>'s spatial map: p[q, token] for every query position q (the query grid, row-major).</summary>
    public static double[] TokenMap(ReadOnlySpan<double> map, int queries, int keys, int token)
    {
        var spatial = new double[queries];
        for (int q = 0; q < queries; q++) spatial[q] = map[q * keys + token];
        return spatial;
    }
}
