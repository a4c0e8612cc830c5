using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Analysis;

/// <summary>A cross-attention head's attention mass on each reported token, mean over queries and images (METHOD.md 5c).</summary>
/// <param name="DataSet">Data set name.</param>
/// <param name="Head">Head name.</param>
/// <param name="Timestep">The timestep, or null for the mean over timesteps.</param>
/// <param name="Mass">Mass on each reported token (<see cref="CrossAttentionSummary.Tokens"/>), in token order.</param>
/// <param name="PaddingMass">Mass on the tokens after the reported ones (padding), or 0 when every token is reported.</param>
public sealed record TokenMassRow(string DataSet, string Head, int? Timestep, IReadOnlyList<double> Mass, double PaddingMass);

/// <summary>
/// What the cross-attention heads attend to on the conditioning tokens (METHOD.md 5c): each head's mass on each token
/// per data set and timestep, from the image-averaged maps (the mean over images of each image's mass, since the mass is
/// linear in the map), and each token's spatial map (DAAM), the attention it receives from every query position.
/// </summary>
public sealed record CrossAttentionSummary
{
    /// <summary>Where the conditioning came from, in words.</summary>
    public required string Source { get; init; }
    /// <summary>The prompt, when there is one.</summary>
    public string? Prompt { get; init; }
    /// <summary>The tokens reported one by one: the prompt's (start, words, end), or every token of embeddings from a file.</summary>
    public required IReadOnlyList<string> Tokens { get; init; }
    /// <summary>Key tokens of the cross-attention layers (reported tokens and padding).</summary>
    public required int KeyTokens { get; init; }
    /// <summary>Cross-attention heads, in layer order.</summary>
    public required IReadOnlyList<string> Heads { get; init; }
    /// <summary>Per data set, timestep (and over timesteps) and head: the mass on each token.</summary>
    public required IReadOnlyList<TokenMassRow> TokenMass { get; init; }

    /// <summary>The summary of an analysis' cross-attention heads, or null when the model has none.</summary>
    public static CrossAttentionSummary? Of(CircuitAnalysisResult a, IReadOnlyList<AttentionLayer> layers, ModelConditioning? conditioning)
    {
        var cross = layers.Select((l, i) => (Layer: l, Index: i)).Where(x => x.Layer.IsCrossAttention).ToList();
        if (cross.Count == 0) return null;
        int keys = cross[0].Layer.KeyTokens;
        int reported = conditioning?.PromptTokens is int p && p <= keys ? p : keys;
        var texts = Enumerable.Range(0, reported).Select(t => conditioning?.TokenTexts?[t] ?? $"token {t}").ToList();
        var rows = new List<TokenMassRow>();
        var heads = new List<string>();
        foreach (var set in a.Features)
        {
            foreach (var (layer, l) in cross)
                for (int h = 0; h < layer.Heads; h++)
                {
                    string head = layer.HeadName(h);
                    if (set == a.Features[0]) heads.Add(head);
                    var perT = set.Timesteps.Select((t, k) => CrossAttention.TokenMass(set.MeanMaps[k][l].AsSpan(h * layer.QueryTokens * keys, layer.QueryTokens * keys),
                        layer.QueryTokens, keys)).ToList();
                    for (int k = 0; k < perT.Count; k++) rows.Add(Row(set.DataSet.Name, head, set.Timesteps[k], perT[k], reported));
                    var mean = Enumerable.Range(0, keys).Select(j => perT.Average(m => m[j])).ToArray();
                    rows.Add(Row(set.DataSet.Name, head, null, mean, reported));
                }
        }
        return new CrossAttentionSummary
        {
            Source = conditioning?.Source ?? "unknown", Prompt = conditioning?.Prompt, Tokens = texts, KeyTokens = keys, Heads = heads, TokenMass = rows,
        };
    }

    private static TokenMassRow Row(string set, string head, int? t, double[] mass, int reported) =>
        new(set, head, t, mass.Take(reported).Select(Round).ToList(), Round(mass.Skip(reported).Sum()));

    // Sums of floats over images and queries: rounded so that results.json does not carry float noise in its last digits.
    private static double Round(double v) => Math.Round(v, 12);

    /// <summary>Mean mass on each reported token over every cross-attention head and timestep, for one data set.</summary>
    public double[] MeanMass(DataSetId dataSet)
    {
        var rows = TokenMass.Where(r => r.DataSet == dataSet.Name && r.Timestep == null).ToList();
        return Enumerable.Range(0, Tokens.Count).Select(t => rows.Average(r => r.Mass[t])).ToArray();
    }

    /// <summary>Mean padding mass over every cross-attention head and timestep, for one data set.</summary>
    public double MeanPaddingMass(DataSetId dataSet) => TokenMass.Where(r => r.DataSet == dataSet.Name && r.Timestep == null).Average(r => r.PaddingMass);

    /// <summary>
    /// Token <paramref name="token"/>'s spatial map on one data set (DAAM): per cross-attention layer, the attention the
    /// token receives from each query position, averaged over heads and timesteps; the layers' grids are upsampled to
    /// <paramref name="height"/> x <paramref name="width"/> (bilinear) and averaged.
    /// </summary>
    public static double[] TokenHeatMap(DataSetFeatures set, IReadOnlyList<AttentionLayer> layers, int token, int height, int width)
    {
        var heat = new double[height * width];
        int count = 0;
        for (int l = 0; l < layers.Count; l++)
        {
            var layer = layers[l];
            if (!layer.IsCrossAttention || layer.GridHeight * layer.GridWidth != layer.QueryTokens) continue;
            var grid = new double[layer.QueryTokens];
            for (int k = 0; k < set.Timesteps.Count; k++)
                for (int h = 0; h < layer.Heads; h++)
                {
                    var map = CrossAttention.TokenMap(set.MeanMaps[k][l].AsSpan(h * layer.QueryTokens * layer.KeyTokens, layer.QueryTokens * layer.KeyTokens),
                        layer.QueryTokens, layer.KeyTokens, token);
                    for (int q = 0; q < grid.Length; q++) grid[q] += map[q] / (set.Timesteps.Count * layer.Heads);
                }
            var up = TokenGeometry.Upsample(grid, layer.GridHeight, layer.GridWidth, height, width);
            for (int i = 0; i < heat.Length; i++) heat[i] += up[i];
            count++;
        }
        if (count > 0)
            for (int i = 0; i < heat.Length; i++) heat[i] /= count;
        return heat;
    }
}
