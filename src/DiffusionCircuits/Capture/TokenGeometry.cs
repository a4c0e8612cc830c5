using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Capture;

/// <summary>
/// Token geometry of one attention layer, computed once: token centres in [0, 1]^2, the query-key distance matrix and
/// each query's mirror window. Self-attention only; cross-attention keys are not image tokens.
/// </summary>
public sealed class TokenGeometry
{
    /// <summary>
    /// The geometry of a layer whose queries and keys are the image's tokens (self-attention, square maps, a grid that
    /// covers the tokens), or null: the one rule for which layers get spatial probes.
    /// </summary>
    public static TokenGeometry? For(AttentionLayer layer) =>
        layer.IsCrossAttention || layer.QueryTokens != layer.KeyTokens || layer.GridHeight * layer.GridWidth != layer.QueryTokens
            ? null : new TokenGeometry(layer.GridHeight, layer.GridWidth);

    /// <summary>The geometry of a <paramref name="gridHeight"/> x <paramref name="gridWidth"/> token grid.</summary>
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
        UniformMirrorMass = MirrorWindows.Average(w => (double)w.Length) / s;
    }

    /// <summary>The mirror-window mass of uniform attention, mean over queries of |window| / S: symmetry's chance level on this grid.</summary>
    public double UniformMirrorMass { get; }

    /// <summary>Token rows.</summary>
    public int GridHeight { get; }
    /// <summary>Token columns.</summary>
    public int GridWidth { get; }
    /// <summary>Tokens: rows x columns.</summary>
    public int Tokens => GridHeight * GridWidth;
    /// <summary>|pos_i - pos_j| for query i, key j, row-major [S, S].</summary>
    public float[] Distances { get; }
    /// <summary>For each query, the key tokens within 1 token of its mirror position.</summary>
    public int[][] MirrorWindows { get; }

    /// <summary>Bilinear upsampling of values on a <paramref name="gh"/> x <paramref name="gw"/> token grid to an <paramref name="h"/> x <paramref name="w"/> image (token centres at (i + 0.5) / n).</summary>
    public static double[] Upsample(IReadOnlyList<double> grid, int gh, int gw, int h, int w)
    {
        var result = new double[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                double gy = Math.Clamp((y + 0.5) / h * gh - 0.5, 0, gh - 1), gx = Math.Clamp((x + 0.5) / w * gw - 0.5, 0, gw - 1);
                int y0 = (int)gy, x0 = (int)gx, y1 = Math.Min(y0 + 1, gh - 1), x1 = Math.Min(x0 + 1, gw - 1);
                double fy = gy - y0, fx = gx - x0;
                result[y * w + x] = (grid[y0 * gw + x0] * (1 - fx) + grid[y0 * gw + x1] * fx) * (1 - fy) + (grid[y1 * gw + x0] * (1 - fx) + grid[y1 * gw + x1] * fx) * fy;
            }
        return result;
    }
}
