using DiffusionCircuits.Data;

namespace DiffusionCircuits.Capture;

/// <summary>
/// What one clean image x0 looks like on a layer's token grid: edge and texture energy, and facial parts as soft labels
/// (the area fraction of each part inside each token, so parts smaller than a token still count).
/// </summary>
public sealed class ImageTokenMaps
{
    private ImageTokenMaps(float[] edge, float[] texture, float[]? partFractions, int tokens)
    {
        Edge = edge;
        Texture = texture;
        PartFractions = partFractions;
        if (partFractions == null) return;
        // Same-part weight of a query-key pair: the chance that both lie in the same part, F_i . F_j.
        SamePartWeights = new float[tokens * tokens];
        var share = new double[FaceImage.PartCount];
        for (int i = 0; i < tokens; i++)
        {
            var fi = partFractions.AsSpan(i * FaceImage.PartCount, FaceImage.PartCount);
            for (int c = 0; c < fi.Length; c++) share[c] += fi[c] / tokens;
            for (int j = 0; j < tokens; j++)
                SamePartWeights[i * tokens + j] = System.Numerics.Tensors.TensorPrimitives.Dot(fi, partFractions.AsSpan(j * FaceImage.PartCount, FaceImage.PartCount));
        }
        PartShare = share.Select(v => (float)v).ToArray();
        PartShareTerm = (float)share.Sum(v => v * v);
    }

    /// <summary>Each token's part distribution, [tokens, parts] row-major (sums to 1 per token), or null without a part mask; the graph's parts input.</summary>
    public float[]? PartFractions { get; }

    /// <summary>F_i . F_j for query i and key j, [S, S]: the same-part weight semantic affinity sums the attention with.</summary>
    public float[]? SamePartWeights { get; }

    /// <summary>Sum over parts of share^2, with share the part's mean fraction over tokens: the same-part mass of uniform attention, subtracted as chance.</summary>
    public float PartShareTerm { get; }

    /// <summary>Each part's share of the tokens (mean fraction), or null without a part mask.</summary>
    public float[]? PartShare { get; }

    /// <summary>Sobel gradient magnitude of the luma, area-pooled to tokens.</summary>
    public float[] Edge { get; }
    /// <summary>Laplacian magnitude of the luma, area-pooled to tokens.</summary>
    public float[] Texture { get; }

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
        var fractions = image.PartMask == null ? null : PartFractionsOf(image.PartMask, w, h, grid.GridWidth, grid.GridHeight);
        return new ImageTokenMaps(edge, texture, fractions, grid.Tokens);
    }

    /// <summary>Each token's part distribution [tokens, parts] of <paramref name="image"/> on <paramref name="grid"/>, or null without a part mask.</summary>
    public static float[]? PartFractionsOf(FaceImage image, TokenGeometry grid) =>
        image.PartMask == null ? null : PartFractionsOf(image.PartMask, image.Width, image.Height, grid.GridWidth, grid.GridHeight);

    /// <summary>The area fraction of each part in each token: the mask's one-hot planes area-pooled to the grid, as edges and texture are.</summary>
    private static float[] PartFractionsOf(byte[] mask, int w, int h, int gw, int gh)
    {
        int tokens = gw * gh, parts = FaceImage.PartCount;
        var fractions = new float[tokens * parts];
        var plane = new float[w * h];
        for (int c = 0; c < parts; c++)
        {
            for (int i = 0; i < plane.Length; i++) plane[i] = mask[i] == c ? 1f : 0f;
            var pooled = ImageResampler.AreaResample(plane, 1, w, h, 0, 0, w, h, gw, gh);
            for (int t = 0; t < tokens; t++) fractions[t * parts + c] = pooled[t];
        }
        return fractions;
    }
}
