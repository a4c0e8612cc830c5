using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// Where each prompt token is attended (DAAM): per data set (rows) and token (columns), the token's spatial map
/// (<see cref="CrossAttentionSummary.TokenHeatMap"/>, over every cross-attention layer, head and timestep) drawn as a heat
/// map over the data set's mean face, normalised per tile. The PDF draws the tiles with text labels; token-maps.png is
/// the same grid as one picture.
/// </summary>
internal sealed class CrossAttentionFigure : IDisposable
{
    /// <summary>Tokens drawn at most; with more, those with the most attention, in prompt order.</summary>
    public const int MaxTokens = 12;

    /// <summary>Tile side in pixels: heat maps are computed at the face's resolution and resampled smoothly to this.</summary>
    private const int Tile = 128;

    private CrossAttentionFigure(SKBitmap[,] tiles, IReadOnlyList<string> columns, IReadOnlyList<string> notes, IReadOnlyList<string> rows) =>
        (Tiles, Columns, Notes, Rows) = (tiles, columns, notes, rows);

    /// <summary>[data set, token] tiles.</summary>
    public SKBitmap[,] Tiles { get; }
    /// <summary>Each column's token.</summary>
    public IReadOnlyList<string> Columns { get; }
    /// <summary>Each column's share of attention, real / synthetic.</summary>
    public IReadOnlyList<string> Notes { get; }
    /// <summary>Each row's data set.</summary>
    public IReadOnlyList<string> Rows { get; }

    public static CrossAttentionFigure Create(CrossAttentionSummary summary, CircuitAnalysisResult a, IReadOnlyList<AttentionLayer> layers,
        IReadOnlyDictionary<DataSetId, IReadOnlyList<FaceImage>> images)
    {
        var sets = new[] { DataSetId.Real, DataSetId.Synthetic };
        var mass = sets.Select(summary.MeanMass).ToList();
        var tokens = Enumerable.Range(0, summary.Tokens.Count).OrderByDescending(t => mass.Sum(m => m[t])).Take(MaxTokens).Order().ToList();
        var tiles = new SKBitmap[sets.Length, tokens.Count];
        for (int row = 0; row < sets.Length; row++)
        {
            var mean = MeanFace(images[sets[row]]);
            var features = a.FeaturesOf(sets[row]);
            for (int c = 0; c < tokens.Count; c++)
            {
                var heat = CrossAttentionSummary.TokenHeatMap(features, layers, tokens[c], mean.Height, mean.Width).Select(v => (float)v).ToArray();
                using var overlay = ReportExamples.Overlay(mean, heat);
                tiles[row, c] = overlay.Resize(new SKImageInfo(Tile, Tile), new SKSamplingOptions(SKCubicResampler.Mitchell));
            }
        }
        return new CrossAttentionFigure(tiles, tokens.Select(t => summary.Tokens[t]).ToList(),
            tokens.Select(t => string.Join(" / ", mass.Select(m => $"{100 * m[t]:F0}%"))).ToList(), sets.Select(s => s.Name).ToList());
    }

    /// <summary>The pixel-wise mean of a data set's faces (aligned faces give a recognisable face).</summary>
    private static FaceImage MeanFace(IReadOnlyList<FaceImage> images)
    {
        var first = images[0];
        var sum = new float[first.RgbPlanes.Length];
        foreach (var image in images)
            for (int i = 0; i < sum.Length; i++) sum[i] += image.RgbPlanes[i] / images.Count;
        return new FaceImage("mean", first.Width, first.Height, sum, null);
    }

    /// <summary>The grid as one picture with its labels (charts/token-maps.png).</summary>
    public void Save(string path)
    {
        const int gap = 4, labelWidth = 90, top = 38;
        int columns = Columns.Count;
        using var bitmap = new SKBitmap(labelWidth + columns * (Tile + gap), top + Rows.Count * (Tile + gap));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using var font = PdfDocumentBuilder.Font(13, false);
            using var small = PdfDocumentBuilder.Font(11, false);
            using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            for (int c = 0; c < columns; c++)
            {
                canvas.DrawText(Columns[c], labelWidth + c * (Tile + gap), top - 20, font, ink);
                canvas.DrawText(Notes[c], labelWidth + c * (Tile + gap), top - 6, small, ink);
            }
            for (int r = 0; r < Rows.Count; r++)
            {
                canvas.DrawText(Rows[r], 4, top + r * (Tile + gap) + Tile / 2 + 5, font, ink);
                for (int c = 0; c < columns; c++) canvas.DrawBitmap(Tiles[r, c], labelWidth + c * (Tile + gap), top + r * (Tile + gap));
            }
        }
        SkiaPixels.SavePng(bitmap, path);
    }

    public void Dispose()
    {
        foreach (var tile in Tiles) tile.Dispose();
    }
}
