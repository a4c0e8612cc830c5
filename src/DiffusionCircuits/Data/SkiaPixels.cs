using SkiaSharp;

namespace DiffusionCircuits.Data;

/// <summary>Conversions between SkiaSharp bitmaps and planar float RGB.</summary>
internal static class SkiaPixels
{
    /// <summary>Reads an RGBA8888 (unpremultiplied) bitmap into CHW planes in [0, 1]; alpha is composited on white.</summary>
    public static float[] ToPlanes(SKBitmap bitmap)
    {
        int w = bitmap.Width, h = bitmap.Height, n = w * h;
        var planes = new float[3 * n];
        var bytes = bitmap.GetPixelSpan();
        bool bgra = bitmap.ColorType == SKColorType.Bgra8888;
        for (int i = 0; i < n; i++)
        {
            int p = i * 4;
            float a = bytes[p + 3] / 255f;
            float r = bytes[p + (bgra ? 2 : 0)] / 255f, g = bytes[p + 1] / 255f, b = bytes[p + (bgra ? 0 : 2)] / 255f;
            planes[i] = r * a + (1 - a);
            planes[n + i] = g * a + (1 - a);
            planes[2 * n + i] = b * a + (1 - a);
        }
        return planes;
    }

    /// <summary>Writes CHW planes in [0, 1] to an opaque RGBA8888 bitmap.</summary>
    public static SKBitmap FromPlanes(ReadOnlySpan<float> planes, int w, int h)
    {
        var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var bytes = bitmap.GetPixelSpan();
        int n = w * h;
        for (int i = 0; i < n; i++)
        {
            bytes[i * 4] = ToByte(planes[i]);
            bytes[i * 4 + 1] = ToByte(planes[n + i]);
            bytes[i * 4 + 2] = ToByte(planes[2 * n + i]);
            bytes[i * 4 + 3] = 255;
        }
        return bitmap;
    }

    public static byte ToByte(float v) => (byte)Math.Clamp((int)MathF.Round(v * 255f), 0, 255);

    /// <summary>Encodes a bitmap as PNG to a file, atomically (temp file then rename).</summary>
    public static void SavePng(SKBitmap bitmap, string path)
    {
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new IOException($"Could not encode PNG for '{path}'.");
        AtomicFile.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>A visible palette for part masks (index = <see cref="FacePart"/>).</summary>
    public static readonly SKColor[] PartPalette =
    {
        new(40, 40, 40), new(120, 70, 20), new(240, 200, 170), new(60, 30, 10),
        new(40, 120, 255), new(255, 150, 40), new(220, 30, 60),
    };
}
