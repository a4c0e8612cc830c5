using System.Numerics.Tensors;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Capture;

/// <summary>
/// Computes <see cref="HeadFeatures"/> from one head's attention map p [S_q, S_k] (rows sum to 1). Holds scratch
/// buffers: one instance per thread, no allocation per call.
/// </summary>
public sealed class AttentionFeatureCalculator
{
    private float[] _received = Array.Empty<float>();

    /// <summary>A calculator for maps whose cross-attention keys are a prompt of <paramref name="promptTokens"/> tokens (start and end included; null when unknown).</summary>
    public AttentionFeatureCalculator(int? promptTokens = null) => PromptTokens = promptTokens;

    /// <summary>Tokens of the prompt before the padding (start and end token included), or null when unknown (embeddings from a file).</summary>
    public int? PromptTokens { get; }

    /// <summary>Entropy of each row, averaged over queries (nats), with 0 ln 0 = 0: -(1/S_q) sum_ij p_ij ln p_ij.</summary>
    public float EntropyNats(ReadOnlySpan<float> map, int queries, int keys) =>
        (float)(-FastEntropy.SumPLogP(map[..(queries * keys)]) / queries);

    /// <summary>
    /// All features of one head: for self-attention the spatial probes (token masses NaN), for cross-attention the token
    /// masses (spatial probes NaN); entropy for both.
    /// </summary>
    public HeadFeatures Compute(ReadOnlySpan<float> map, AttentionLayer layer, TokenGeometry? geometry, ImageTokenMaps? image, bool includeEntropy = true)
    {
        int sq = layer.QueryTokens, sk = layer.KeyTokens;
        var f = new HeadFeatures { EntropyNats = includeEntropy ? EntropyNats(map, sq, sk) : float.NaN };
        f.NormalizedEntropy = sk > 1 ? f.EntropyNats / MathF.Log(sk) : 0f;
        f.StartTokenMass = f.PromptTokenMass = f.PaddingMass = float.NaN;
        if (layer.IsCrossAttention)
        {
            if (_received.Length != sk) _received = new float[sk];
            Array.Clear(_received);
            for (int i = 0; i < sq; i++) TensorPrimitives.Add(_received, map.Slice(i * sk, sk), _received);
            TensorPrimitives.Multiply(_received, 1f / sq, _received);
            SetTokenMasses(ref f, _received, PromptTokens);
        }
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
        // Above chance: uniform attention already puts a window's share of its mass there, more on a small grid.
        f.Symmetry = (float)(symmetry / s - geometry.UniformMirrorMass);

        if (image == null)
        {
            f.EdgeAlignment = f.TextureAlignment = f.SemanticAffinity = float.NaN;
            return f;
        }
        if (_received.Length != s) _received = new float[s];
        Array.Clear(_received);
        for (int i = 0; i < s; i++) TensorPrimitives.Add(_received, map.Slice(i * s, s), _received);
        TensorPrimitives.Multiply(_received, 1f / s, _received);
        (f.EdgeAlignment, f.TextureAlignment) = Alignment(_received, image);

        // Same-part mass with soft part labels, above its chance level (uniform attention): (1/S) sum_ij p_ij F_i.F_j - sum_c share_c^2.
        f.SemanticAffinity = image.SamePartWeights is { } weights ? TensorPrimitives.Dot(map[..(s * s)], weights) / s - image.PartShareTerm : float.NaN;
        return f;
    }

    /// <summary>
    /// The cross-attention features from the mass on each token (mean over queries, <see cref="CrossAttention.TokenMass"/>):
    /// first token, the prompt's tokens 1 .. L-2, end token and padding L-1 .. S_k-1 (with L unknown: every token after the first, padding NaN).
    /// </summary>
    public static void SetTokenMasses(ref HeadFeatures f, ReadOnlySpan<float> tokenMass, int? promptTokens)
    {
        int keys = tokenMass.Length;
        f.StartTokenMass = tokenMass[0];
        if (promptTokens is int length && length >= 2 && length <= keys)
        {
            f.PromptTokenMass = TensorPrimitives.Sum(tokenMass[1..(length - 1)]);
            f.PaddingMass = TensorPrimitives.Sum(tokenMass[(length - 1)..]);
        }
        else
        {
            f.PromptTokenMass = TensorPrimitives.Sum(tokenMass[1..]);
            f.PaddingMass = float.NaN;
        }
    }

    /// <summary>
    /// Edge alignment (Pearson r of the attention each key receives with the image's edge energy) and texture alignment
    /// (partial r with texture energy, controlling for edges).
    /// </summary>
    public static (float Edge, float Texture) Alignment(ReadOnlySpan<float> received, ImageTokenMaps image)
    {
        float rEdge = Pearson(received, image.Edge);
        float rTexture = Pearson(received, image.Texture);
        float rEdgeTexture = Pearson(image.Edge, image.Texture);
        return (rEdge, PartialCorrelation(rTexture, rEdge, rEdgeTexture));
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
