using DiffusionCircuits.Data;

namespace DiffusionCircuits.Capture;

/// <summary>What one clean image x0 looks like on a layer's token grid: edge and texture energy and facial parts.</summary>
public sealed class ImageTokenMaps
{
    private ImageTokenMaps(float[] edge, float[] texture, byte[]? parts, float[]? partShare)
    {
        Edge = edge;
        Texture = texture;
        Parts = parts;
        PartShare = partShare;
        if (parts != null)
        {
            // One 0/1 vector per part present: a query's same-part mass is then one dot product.
            PartIndicators = new float[FaceImage.PartCount][];
            foreach (var p in parts.Distinct())
            {
                var v = new float[parts.Length];
                for (int j = 0; j < parts.Length; j++) v[j] = parts[j] == p ? 1f : 0f;
                PartIndicators[p] = v;
            }
            PartsOneHot = new float[parts.Length * FaceImage.PartCount];
            double chance = 0;
            for (int j = 0; j < parts.Length; j++)
            {
                PartsOneHot[j * FaceImage.PartCount + parts[j]] = 1f;
                chance += partShare![parts[j]];
            }
            PartShareTerm = (float)(chance / parts.Length);
        }
    }

    /// <summary>The part grid as the graph takes it: one-hot [tokens, parts] of <see cref="Parts"/>, or null without a part mask.</summary>
    public float[]? PartsOneHot { get; }

    /// <summary>(1/S) sum over tokens of its part's share = sum over parts of share^2: the chance level subtracted from the same-part mass.</summary>
    public float PartShareTerm { get; }

    /// <summary>For each part present, 1 on its tokens and 0 elsewhere.</summary>
    public float[]?[]? PartIndicators { get; }

    /// <summary>Sobel gradient magnitude of the luma, area-pooled to tokens.</summary>
    public float[] Edge { get; }
    /// <summary>Laplacian magnitude of the luma, area-pooled to tokens.</summary>
    public float[] Texture { get; }
    /// <summary>The majority part label of each token, or null when the image has no part mask.</summary>
    public byte[]? Parts { get; }
    /// <summary>Fraction of tokens of each part.</summary>
    public float[]? PartShare { get; }

    /// <summary>Edge, texture and part maps of <paramref name="image"/> on <paramref name="grid"/>.</summary>
    public static ImageTokenMaps Create(FaceImage image, TokenGeometry grid)
    {
        int w = image.Width, h = image.Height, n = w * h;
        var luma = new float[n];
        var px = image.RgbPlanes;
        for (int i = 0; i < n; i++) luma[i] = 0.299f * px[i] + 0.587f * px[n + i] + 0.114f * px[2 * n + i];
        var sobel = new float[n];
        var laplace = new float[n];
        float L(int x, int y) => luma[Math.Clamp(y, 0, h - 1) * w + Math.Clamp(x, 0, w - 1)];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                float gx = L(x + 1, y - 1) + 2 * L(x + 1, y) + L(x + 1, y + 1) - L(x - 1, y - 1) - 2 * L(x - 1, y) - L(x - 1, y + 1);
                float gy = L(x - 1, y + 1) + 2 * L(x, y + 1) + L(x + 1, y + 1) - L(x - 1, y - 1) - 2 * L(x, y - 1) - L(x + 1, y - 1);
                sobel[y * w + x] = MathF.Sqrt(gx * gx + gy * gy);
                laplace[y * w + x] = MathF.Abs(4 * L(x, y) - L(x - 1, y) - L(x + 1, y) - L(x, y - 1) - L(x, y + 1));
            }
        var edge = ImageResampler.AreaResample(sobel, 1, w, h, 0, 0, w, h, grid.GridWidth, grid.GridHeight);
        var texture = ImageResampler.AreaResample(laplace, 1, w, h, 0, 0, w, h, grid.GridWidth, grid.GridHeight);
        byte[]? parts = null;
        float[]? share = null;
        if (image.PartMask != null)
        {
            parts = MajorityLabels(image.PartMask, w, h, grid.GridWidth, grid.GridHeight);
            share = new float[FaceImage.PartCount];
            foreach (var p in parts) share[p] += 1f / parts.Length;
        }
        return new ImageTokenMaps(edge, texture, parts, share);
    }

    private static byte[] MajorityLabels(byte[] mask, int w, int h, int gw, int gh)
    {
        var result = new byte[gw * gh];
        var counts = new int[256];
        for (int ty = 0; ty < gh; ty++)
            for (int tx = 0; tx < gw; tx++)
            {
                Array.Clear(counts);
                for (int y = ty * h / gh; y < (ty + 1) * h / gh; y++)
                    for (int x = tx * w / gw; x < (tx + 1) * w / gw; x++) counts[mask[y * w + x]]++;
                // Pixel centre when the token is smaller than a pixel.
                if (counts.All(c => c == 0)) counts[mask[Math.Min(h - 1, (int)((ty + 0.5) * h / gh)) * w + Math.Min(w - 1, (int)((tx + 0.5) * w / gw))]]++;
                int best = 0;
                for (int k = 1; k < counts.Length; k++) if (counts[k] > counts[best]) best = k;
                result[ty * gw + tx] = (byte)best;
            }
        return result;
    }
}
