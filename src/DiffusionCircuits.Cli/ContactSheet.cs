using DiffusionCircuits.Data;
using SkiaSharp;

namespace DiffusionCircuits.Cli;

internal static class ContactSheet
{
    /// <summary>Writes faces in a square grid, each scaled up to 96 pixels with nearest-neighbour sampling.</summary>
    public static void Save(IReadOnlyList<FaceImage> faces, string path, int cell = 96)
    {
        int cols = (int)Math.Ceiling(Math.Sqrt(faces.Count)), rows = (faces.Count + cols - 1) / cols;
        using var sheet = new SKBitmap(cols * (cell + 2), rows * (cell + 2));
        using var canvas = new SKCanvas(sheet);
        canvas.Clear(SKColors.White);
        for (int i = 0; i < faces.Count; i++)
        {
            using var bmp = SkiaPixels.FromPlanes(faces[i].RgbPlanes, faces[i].Width, faces[i].Height);
            using var img = SKImage.FromBitmap(bmp);
            var dst = SKRect.Create(1 + (i % cols) * (cell + 2), 1 + (i / cols) * (cell + 2), cell, cell);
            canvas.DrawImage(img, dst, new SKSamplingOptions(SKFilterMode.Nearest));
        }
        canvas.Flush();
        SkiaPixels.SavePng(sheet, path);
    }
}
