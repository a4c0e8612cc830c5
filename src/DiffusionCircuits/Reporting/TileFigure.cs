using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// A grid of pictures with text labels: column labels with a note under each, row labels of one or more lines. The
/// report draws the tiles with the labels as text (<see cref="IReportDocument.TileGrid"/>); <see cref="Save"/> writes the
/// same grid as one PNG for the charts folder.
/// </summary>
internal sealed class TileFigure(SKBitmap[,] tiles, IReadOnlyList<string> columns, IReadOnlyList<string> notes, IReadOnlyList<string> rows) : IDisposable
{
    /// <summary>[row, column] tiles, all of one size.</summary>
    public SKBitmap[,] Tiles { get; } = tiles;
    public IReadOnlyList<string> Columns { get; } = columns;
    /// <summary>A short note under each column label.</summary>
    public IReadOnlyList<string> Notes { get; } = notes;
    /// <summary>Row labels; '\n' separates lines.</summary>
    public IReadOnlyList<string> Rows { get; } = rows;

    /// <summary>Into the report, tiles <paramref name="cell"/> points wide.</summary>
    public void Draw(IReportDocument doc, float cell, string caption) => doc.TileGrid(Columns, Notes, Rows, Tiles, cell, caption);

    /// <summary>The grid as one picture with its labels.</summary>
    public void Save(string path)
    {
        const int gap = 4, top = 38, line = 15;
        int tile = Tiles[0, 0].Width;
        using var font = PdfDocumentBuilder.Font(13, false);
        using var small = PdfDocumentBuilder.Font(11, false);
        int labelWidth = 8 + (int)Math.Ceiling(Rows.SelectMany(r => r.Split('\n')).Select(l => font.MeasureText(l)).DefaultIfEmpty(0).Max());
        using var bitmap = new SKBitmap(labelWidth + Columns.Count * (tile + gap), top + Rows.Count * (tile + gap));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            for (int c = 0; c < Columns.Count; c++)
            {
                canvas.DrawText(Columns[c], labelWidth + c * (tile + gap), top - 20, font, ink);
                canvas.DrawText(Notes[c], labelWidth + c * (tile + gap), top - 6, small, ink);
            }
            for (int r = 0; r < Rows.Count; r++)
            {
                var lines = Rows[r].Split('\n');
                float y0 = top + r * (tile + gap) + tile / 2f - (lines.Length - 1) * line / 2f + 5;
                for (int i = 0; i < lines.Length; i++) canvas.DrawText(lines[i], 4, y0 + i * line, font, ink);
                for (int c = 0; c < Columns.Count; c++) canvas.DrawBitmap(Tiles[r, c], labelWidth + c * (tile + gap), top + r * (tile + gap));
            }
        }
        SkiaPixels.SavePng(bitmap, path);
    }

    public void Dispose()
    {
        foreach (var tile in Tiles) tile.Dispose();
    }
}

/// <summary>
/// Attention drawn over a face: the face in grey, resampled smoothly to the tile, and the heat map (normalised to its
/// maximum) upsampled bilinearly from the token grid to the tile and blended over it half and half in the Inferno
/// colour map, whose scale <see cref="ReportCharts.AttentionColourBar"/> shows.
/// </summary>
internal static class HeatOverlay
{
    /// <summary>Share of the heat map's colour in a tile; the rest is the grey face.</summary>
    public const float Blend = 0.5f;

    public static readonly ScottPlot.IColormap Colormap = new ScottPlot.Colormaps.Inferno();

    /// <summary>
    /// A <paramref name="tile"/>-pixel square: the face, or with <paramref name="heat"/> ([gh x gw] token values) the
    /// overlay; <paramref name="outline"/> ([gh x gw] weights in [0, 1]) is drawn as a cyan contour at 0.5.
    /// </summary>
    public static SKBitmap Draw(FaceImage face, int tile, IReadOnlyList<double>? heat = null, int gh = 0, int gw = 0, IReadOnlyList<double>? outline = null)
    {
        using var pixels = SkiaPixels.FromPlanes(face.RgbPlanes, face.Width, face.Height);
        var bitmap = pixels.Resize(new SKImageInfo(tile, tile, SKColorType.Rgba8888, SKAlphaType.Opaque), new SKSamplingOptions(SKCubicResampler.Mitchell));
        if (heat == null) return bitmap;
        var up = TokenGeometry.Upsample(heat, gh, gw, tile, tile);
        double max = up.Max();
        var edge = outline == null ? null : TokenGeometry.Upsample(outline, gh, gw, tile, tile);
        bool Inside(int x, int y) => edge![Math.Clamp(y, 0, tile - 1) * tile + Math.Clamp(x, 0, tile - 1)] >= 0.5;
        for (int y = 0; y < tile; y++)
            for (int x = 0; x < tile; x++)
            {
                var c = bitmap.GetPixel(x, y);
                if (edge != null && Inside(x, y) && !(Inside(x - 1, y) && Inside(x + 1, y) && Inside(x, y - 1) && Inside(x, y + 1)))
                {
                    bitmap.SetPixel(x, y, SKColors.Cyan);
                    continue;
                }
                float grey = 0.299f * c.Red + 0.587f * c.Green + 0.114f * c.Blue;
                var m = Colormap.GetColor(max > 0 ? up[y * tile + x] / max : 0);
                byte Mix(byte channel) => (byte)Math.Clamp(Math.Round((1 - Blend) * grey + Blend * channel), 0, 255);
                bitmap.SetPixel(x, y, new SKColor(Mix(m.R), Mix(m.G), Mix(m.B)));
            }
        return bitmap;
    }

    /// <summary>The pixel-wise mean of faces (aligned faces give a recognisable face).</summary>
    public static FaceImage MeanFace(IReadOnlyList<FaceImage> images)
    {
        var first = images[0];
        var sum = new float[first.RgbPlanes.Length];
        foreach (var image in images)
            for (int i = 0; i < sum.Length; i++) sum[i] += image.RgbPlanes[i] / images.Count;
        return new FaceImage("mean", first.Width, first.Height, sum, null);
    }
}
