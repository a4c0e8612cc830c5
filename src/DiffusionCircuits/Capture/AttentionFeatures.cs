using System.Numerics.Tensors;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Capture;

/// <summary>The per-head numbers of METHOD.md sections 1 and 3 for one image at one timestep.</summary>
public struct HeadFeatures
{
    /// <summary>H = (1/S) sum_i -sum_j p_ij ln p_ij, nats.</summary>
    public float EntropyNats;
    /// <summary>H / ln S_k, in [0, 1].</summary>
    public float NormalizedEntropy;
    /// <summary>sum_i sum_j p_ij |pos_i - pos_j| / S, in units of the image side.</summary>
    public float DistanceImageUnits;
    /// <summary>Pearson r over keys between received attention and the pooled Sobel magnitude of x0.</summary>
    public float EdgeAlignment;
    /// <summary>Partial r of received attention and pooled Laplacian magnitude, controlling for the Sobel magnitude.</summary>
    public float TextureAlignment;
    /// <summary>Mass from a query to keys of its own facial part minus the part's area share, averaged over queries.</summary>
    public float SemanticAffinity;
    /// <summary>Mass on the 3x3 window around the query's mirror position across the vertical axis, averaged over queries.</summary>
    public float Symmetry;

    public static readonly string[] Names =
    {
        "EntropyNats", "NormalizedEntropy", "DistanceImageUnits", "EdgeAlignment", "TextureAlignment", "SemanticAffinity", "Symmetry",
    };

    public readonly float this[int i] => i switch
    {
        0 => EntropyNats, 1 => NormalizedEntropy, 2 => DistanceImageUnits, 3 => EdgeAlignment,
        4 => TextureAlignment, 5 => SemanticAffinity, 6 => Symmetry, _ => throw new ArgumentOutOfRangeException(nameof(i)),
    };
}

/// <summary>
/// Token geometry of one attention layer, computed once: token centres in [0, 1]^2, the query-key distance matrix and
/// each query's mirror window. Self-attention only; cross-attention keys are not image tokens.
/// </summary>
public sealed class TokenGeometry
{
    public TokenGeometry(int gridHeight, int gridWidth)
    {
        GridHeight = gridHeight;
        GridWidth = gridWidth;
        int s = Tokens;
        Distances = new float[s * s];
        for (int i = 0; i < s; i++)
        {
            double yi = (i / gridWidth + 0.5) / gridHeight, xi = (i % gridWidth + 0.5) / gridWidth;
            for (int j = 0; j < s; j++)
            {
                double yj = (j / gridWidth + 0.5) / gridHeight, xj = (j % gridWidth + 0.5) / gridWidth;
                Distances[i * s + j] = (float)Math.Sqrt((xi - xj) * (xi - xj) + (yi - yj) * (yi - yj));
            }
        }
        MirrorWindows = new int[s][];
        for (int i = 0; i < s; i++)
        {
            int r = i / gridWidth, c = gridWidth - 1 - i % gridWidth;
            var window = new List<int>(9);
            for (int dr = -1; dr <= 1; dr++)
                for (int dc = -1; dc <= 1; dc++)
                {
                    int rr = r + dr, cc = c + dc;
                    if (rr >= 0 && rr < gridHeight && cc >= 0 && cc < gridWidth) window.Add(rr * gridWidth + cc);
                }
            MirrorWindows[i] = window.ToArray();
        }
    }

    public int GridHeight { get; }
    public int GridWidth { get; }
    public int Tokens => GridHeight * GridWidth;
    /// <summary>|pos_i - pos_j| for query i, key j, row-major [S, S].</summary>
    public float[] Distances { get; }
    /// <summary>For each query, the key tokens within 1 token of its mirror position.</summary>
    public int[][] MirrorWindows { get; }
}

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
        }
    }

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

/// <summary>
/// Computes <see cref="HeadFeatures"/> from one head's attention map p [S_q, S_k] (rows sum to 1). Holds scratch
/// buffers: one instance per thread, no allocation per call.
/// </summary>
public sealed class AttentionFeatureCalculator
{
    private float[] _received = Array.Empty<float>();

    /// <summary>Entropy of each row, averaged over queries (nats), with 0 ln 0 = 0: -(1/S_q) sum_ij p_ij ln p_ij.</summary>
    public float EntropyNats(ReadOnlySpan<float> map, int queries, int keys) =>
        (float)(-FastEntropy.SumPLogP(map[..(queries * keys)]) / queries);

    /// <summary>All features of one self-attention head; cross-attention heads get entropy only (others NaN).</summary>
    public HeadFeatures Compute(ReadOnlySpan<float> map, AttentionLayer layer, TokenGeometry? geometry, ImageTokenMaps? image, bool includeEntropy = true)
    {
        int sq = layer.QueryTokens, sk = layer.KeyTokens;
        var f = new HeadFeatures { EntropyNats = includeEntropy ? EntropyNats(map, sq, sk) : float.NaN };
        f.NormalizedEntropy = sk > 1 ? f.EntropyNats / MathF.Log(sk) : 0f;
        if (geometry == null || layer.IsCrossAttention || sq != sk || geometry.Tokens != sq)
        {
            f.DistanceImageUnits = f.EdgeAlignment = f.TextureAlignment = f.SemanticAffinity = f.Symmetry = float.NaN;
            return f;
        }
        int s = sq;
        f.DistanceImageUnits = TensorPrimitives.Dot(map, geometry.Distances) / s;

        double symmetry = 0;
        for (int i = 0; i < s; i++)
        {
            var row = map.Slice(i * s, s);
            foreach (int j in geometry.MirrorWindows[i]) symmetry += row[j];
        }
        f.Symmetry = (float)(symmetry / s);

        if (image == null)
        {
            f.EdgeAlignment = f.TextureAlignment = f.SemanticAffinity = float.NaN;
            return f;
        }
        if (_received.Length != s) _received = new float[s];
        Array.Clear(_received);
        for (int i = 0; i < s; i++) TensorPrimitives.Add(_received, map.Slice(i * s, s), _received);
        TensorPrimitives.Multiply(_received, 1f / s, _received);
        float rEdge = Pearson(_received, image.Edge);
        float rTexture = Pearson(_received, image.Texture);
        float rEdgeTexture = Pearson(image.Edge, image.Texture);
        f.EdgeAlignment = rEdge;
        f.TextureAlignment = PartialCorrelation(rTexture, rEdge, rEdgeTexture);

        if (image.Parts == null)
        {
            f.SemanticAffinity = float.NaN;
            return f;
        }
        double affinity = 0;
        var parts = image.Parts;
        for (int i = 0; i < s; i++)
        {
            byte part = parts[i];
            affinity += TensorPrimitives.Dot(map.Slice(i * s, s), image.PartIndicators![part]!) - image.PartShare![part];
        }
        f.SemanticAffinity = (float)(affinity / s);
        return f;
    }

    /// <summary>Pearson correlation; 0 when either side is constant (no linear association can be measured).</summary>
    public static float Pearson(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = a.Length;
        double ma = TensorPrimitives.Sum(a) / (double)n, mb = TensorPrimitives.Sum(b) / (double)n;
        double sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < n; i++)
        {
            double da = a[i] - ma, db = b[i] - mb;
            sab += da * db;
            saa += da * da;
            sbb += db * db;
        }
        // Relative thresholds: a uniform head's received attention is constant up to float rounding.
        if (saa <= 1e-12 * n * Math.Max(1e-30, ma * ma) || sbb <= 1e-12 * n * Math.Max(1e-30, mb * mb)) return 0f;
        return (float)(sab / Math.Sqrt(saa * sbb));
    }

    /// <summary>r_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)); 0 when undefined.</summary>
    public static float PartialCorrelation(float rxy, float rxz, float ryz)
    {
        double denominator = Math.Sqrt((1 - rxz * (double)rxz) * (1 - ryz * (double)ryz));
        return denominator < 1e-9 ? 0f : (float)((rxy - rxz * (double)ryz) / denominator);
    }

}
