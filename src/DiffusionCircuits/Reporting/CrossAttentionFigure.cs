using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// Where each prompt token is attended (DAAM): per data set (rows) and token (columns), the token's spatial map
/// (<see cref="CrossAttentionSummary.TokenHeatMap"/>, over every cross-attention layer, head and timestep) drawn as a heat
/// map over the data set's mean face, normalised per tile. The report draws the tiles with text labels; token-maps.png is
/// the same grid as one picture.
/// </summary>
internal static class CrossAttentionFigure
{
    /// <summary>Tokens drawn at most; with more, those with the most attention, in prompt order.</summary>
    public const int MaxTokens = 12;

    /// <summary>Tile side in pixels: heat maps are computed at the face's resolution and resampled smoothly to this.</summary>
    private const int Tile = 128;

    public static TileFigure Create(ReportResults r, CrossAttentionSummary summary, CircuitAnalysisResult a, IReadOnlyList<AttentionLayer> layers,
        IReadOnlyDictionary<DataSetId, IReadOnlyList<FaceImage>> images)
    {
        var sets = new[] { DataSetId.Real, DataSetId.Synthetic };
        var mass = sets.Select(summary.MeanMass).ToList();
        var tokens = Enumerable.Range(0, summary.Tokens.Count).OrderByDescending(t => mass.Sum(m => m[t])).Take(MaxTokens).Order().ToList();
        var tiles = new SKBitmap[sets.Length, tokens.Count];
        for (int row = 0; row < sets.Length; row++)
        {
            var mean = HeatOverlay.MeanFace(images[sets[row]]);
            var features = a.FeaturesOf(sets[row]);
            for (int c = 0; c < tokens.Count; c++)
            {
                var heat = CrossAttentionSummary.TokenHeatMap(features, layers, tokens[c], mean.Height, mean.Width);
                tiles[row, c] = HeatOverlay.Draw(mean, Tile, heat, mean.Height, mean.Width);
            }
        }
        return new TileFigure(tiles, tokens.Select(t => summary.Tokens[t]).ToList(),
            tokens.Select(t => string.Join(" / ", mass.Select(m => $"{100 * m[t]:F0}%"))).ToList(), sets.Select(s => r.Label(s.Name)).ToList());
    }
}
