using DiffusionCircuits.Data;
using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>Lays out images in a labelled grid (rows x columns) and writes a PNG: for pictures a person looks at.</summary>
internal sealed class ImageGrid
{
    private readonly List<(string Label, List<float[]> Cells)> _rows = new();

    public ImageGrid(int imageWidth, int imageHeight, int scale = 3)
    {
        (ImageWidth, ImageHeight, Scale) = (imageWidth, imageHeight, scale);
    }

    public int ImageWidth { get; }
    public int ImageHeight { get; }
    public int Scale { get; }

    /// <summary>Adds a row of CHW images with values in [0, 1].</summary>
    public void AddRow(string label, IEnumerable<float[]> images) => _rows.Add((label, images.ToList()));

    public void Save(string path, string? title = null)
    {
        int cell = ImageWidth * Scale, cellH = ImageHeight * Scale, gap = 2, top = title == null ? 4 : 28;
        int labelW = _rows.Any(r => r.Label.Length > 0) ? 190 : 4;   // no label column when no row has a label
        int cols = _rows.Max(r => r.Cells.Count);
        using var bitmap = new SKBitmap(labelW + cols * (cell + gap), top + _rows.Count * (cellH + gap));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var font = new SKFont(SKTypeface.Default, 13);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        if (title != null) canvas.DrawText(title, 6, 19, font, ink);
        for (int r = 0; r < _rows.Count; r++)
        {
            int y = top + r * (cellH + gap);
            canvas.DrawText(_rows[r].Label, 6, y + cellH / 2 + 5, font, ink);
            for (int c = 0; c < _rows[r].Cells.Count; c++)
            {
                using var bmp = SkiaPixels.FromPlanes(_rows[r].Cells[c], ImageWidth, ImageHeight);
                using var img = SKImage.FromBitmap(bmp);
                canvas.DrawImage(img, SKRect.Create(labelW + c * (cell + gap), y, cell, cellH), new SKSamplingOptions(SKFilterMode.Nearest));
            }
        }
        canvas.Flush();
        SkiaPixels.SavePng(bitmap, path);
    }

    /// <summary>Maps model-space values in [-1, 1] to [0, 1] (clipped), for display.</summary>
    public static float[] FromModelSpace(ReadOnlySpan<float> values)
    {
        var unit = new float[values.Length];
        for (int i = 0; i < unit.Length; i++) unit[i] = Math.Clamp((values[i] + 1f) / 2f, 0f, 1f);
        return unit;
    }
}
