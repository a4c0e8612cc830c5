using DiffusionCircuits.Onnx;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Tests.Support;

/// <summary>What a planted head attends to, whatever the input.</summary>
public enum PlantedPattern { Uniform, OneHot, Local3x3, Self, EdgeColumns }

/// <summary>
/// A planted head: its attention pattern and how strongly its output reaches the prediction (0 = dead head). A head with
/// <paramref name="ConstantValue"/> (denoiser only) has zero value weights and a value bias of 0.5, so its output z is
/// 0.5 at every position whatever the image.
/// </summary>
public sealed record PlantedHead(PlantedPattern Pattern, float OutputGain = 1f, bool ConstantValue = false);

/// <summary>
/// A one-layer attention "denoiser" with known heads, built with <see cref="OnnxGraphBuilder"/>: sample [B, 3, 6, 6]
/// becomes 36 tokens; Q weights are zero, so the scores are exactly the planted bias and each head's map is known
/// for every input (uniform: 1/36; one-hot: query i looks at key i+1; local: uniform over the 3x3 window). The
/// prediction is sample + tokens·Wo, so a head's effect on it is its output times its gain.
/// </summary>
public static class PlantedCircuit
{
    public const int Side = 6, Tokens = Side * Side, HeadDim = 2, Channels = 3;

    public static readonly PlantedHead[] DefaultHeads =
    {
        new(PlantedPattern.Uniform),          // h0: entropy ln 36
        new(PlantedPattern.OneHot),           // h1: entropy 0
        new(PlantedPattern.Local3x3),         // h2: entropy ln 9 inside the grid
        new(PlantedPattern.Uniform, 5f),      // h3: the important head
        new(PlantedPattern.Local3x3, 0f),     // h4: a dead head
    };

    /// <summary>
    /// Builds the model; <paramref name="removedHead"/> zeroes one head's output weights (ground truth for ablation).
    /// With <paramref name="denoiser"/>, each head copies the tokens it attends to (head dim 3, identity value and
    /// output weights times its gain) and there is no residual: eps_hat = sum_h gain_h P_h x_t, so heads attending to
    /// themselves with gains summing to 1 predict eps_hat = x_t, and removing one hurts in proportion to its gain.
    /// </summary>
    public static OnnxModel Build(AttentionLayout layout, PlantedHead[]? heads = null, bool float16 = false,
        int? removedHead = null, string scope = "/down.1/attn/", DataType attentionType = DataType.Float, bool denoiser = false,
        DataType timestepType = DataType.Int64, bool scalarTimestep = false, float maskedScore = -1e4f)
    {
        heads ??= DefaultHeads;
        int headDim = denoiser ? Channels : HeadDim;
        int h = heads.Length, hd = h * headDim;
        var rng = new Random(7);
        float[] Rand(int n, float scale = 1f) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();

        var b = new OnnxGraphBuilder("planted");
        var x = b.Input("sample", DataType.Float, "batch", Channels, Side, Side);
        var t = scalarTimestep ? b.Input("timestep", timestepType) : b.Input("timestep", timestepType, "batch");
        var tokens = b.Add("Transpose", new[] { b.Add("Reshape", new[] { x, b.ConstantInt64(0, Channels, Tokens) }) }, attributes: OnnxProtos.Attr("perm", 0L, 2, 1));
        var wq = new float[Channels * hd];
        var wk = Rand(Channels * hd);
        var wv = Rand(Channels * hd);
        var wo = new float[hd * Channels];
        var valueBias = new float[hd];
        for (int head = 0; head < h; head++)
        {
            float gain = head == removedHead ? 0f : heads[head].OutputGain;   // draw anyway: other heads keep their weights
            for (int dim = 0; dim < headDim; dim++)
                for (int c = 0; c < Channels; c++)
                    wo[(head * headDim + dim) * Channels + c] = (float)(rng.NextDouble() * 2 - 1) * gain;
            if (denoiser)
                for (int c = 0; c < Channels; c++)
                    for (int dim = 0; dim < headDim; dim++)
                    {
                        wv[c * hd + head * headDim + dim] = c == dim && !heads[head].ConstantValue ? 1f : 0f;
                        if (heads[head].ConstantValue) valueBias[head * headDim + dim] = 0.5f;
                        wo[(head * headDim + dim) * Channels + c] = c == dim ? gain : 0f;
                    }
        }
        DataType compute = float16 ? DataType.Float16 : attentionType;
        string Typed(string tensor) => compute == DataType.Float ? tensor : b.Add("Cast", new[] { tensor }, attributes: OnnxProtos.Attr("to", (long)compute));
        string W(float[] w, params long[] dims) => Typed(b.Constant(w, dims));

        var xt = Typed(tokens);
        var q = b.Add("MatMul", new[] { xt, W(wq, Channels, hd) });
        var k = b.Add("MatMul", new[] { xt, W(wk, Channels, hd) });
        var v = b.Add("MatMul", new[] { xt, W(wv, Channels, hd) });
        if (heads.Any(x => x.ConstantValue)) v = b.Add("Add", new[] { v, W(valueBias, hd) });
        var bias = W(Bias(heads, maskedScore), 1, h, Tokens, Tokens);
        var scale = W(new[] { 1f / MathF.Sqrt(headDim) }, 1);
        var split = b.ConstantInt64(0, Tokens, h, headDim);
        string zMerged;
        if (layout == AttentionLayout.Heads4D)
        {
            var q4 = b.Add("Transpose", new[] { b.Add("Reshape", new[] { q, split }) }, attributes: OnnxProtos.Attr("perm", 0L, 2, 1, 3));
            var kT = b.Add("Transpose", new[] { b.Add("Reshape", new[] { k, split }) }, attributes: OnnxProtos.Attr("perm", 0L, 2, 3, 1));
            var v4 = b.Add("Transpose", new[] { b.Add("Reshape", new[] { v, split }) }, attributes: OnnxProtos.Attr("perm", 0L, 2, 1, 3));
            var scores = b.Add("MatMul", new[] { q4, kT }, scope + "MatMul");
            var logits = b.Add("Add", new[] { b.Add("Mul", new[] { scores, scale }, scope + "Mul"), bias }, scope + "Add");
            var p = b.Add("Softmax", new[] { logits }, scope + "Softmax", attributes: OnnxProtos.Attr("axis", -1L));
            var z = b.Add("MatMul", new[] { p, v4 }, scope + "MatMul_1");
            zMerged = b.Add("Reshape", new[] { b.Add("Transpose", new[] { z }, attributes: OnnxProtos.Attr("perm", 0L, 2, 1, 3)), b.ConstantInt64(0, Tokens, hd) });
        }
        else
        {
            string To3D(string m, long[] perm, long d1, long d2) =>
                b.Add("Reshape", new[] { b.Add("Transpose", new[] { b.Add("Reshape", new[] { m, split }) }, attributes: OnnxProtos.Attr("perm", perm)), b.ConstantInt64(-1, d1, d2) });
            var q3 = To3D(q, new long[] { 0, 2, 1, 3 }, Tokens, headDim);
            var kT3 = To3D(k, new long[] { 0, 2, 3, 1 }, headDim, Tokens);
            var v3 = To3D(v, new long[] { 0, 2, 1, 3 }, Tokens, headDim);
            var scores = b.Add("MatMul", new[] { q3, kT3 }, scope + "MatMul");
            var scaled = b.Add("Mul", new[] { scores, scale }, scope + "Mul");
            // The planted bias is per head, so add it on a [B, H, S, S] view (as exports do with attention masks).
            var perHead = b.Add("Reshape", new[] { scaled, b.ConstantInt64(-1, h, Tokens, Tokens) });
            var logits = b.Add("Reshape", new[] { b.Add("Add", new[] { perHead, bias }, scope + "Add"), b.ConstantInt64(-1, Tokens, Tokens) });
            var p = b.Add("Softmax", new[] { logits }, scope + "Softmax", attributes: OnnxProtos.Attr("axis", -1L));
            var z = b.Add("MatMul", new[] { p, v3 }, scope + "MatMul_1");                              // [B*H, S, d]
            var z4 = b.Add("Reshape", new[] { z, b.ConstantInt64(-1, h, Tokens, headDim) });
            zMerged = b.Add("Reshape", new[] { b.Add("Transpose", new[] { z4 }, attributes: OnnxProtos.Attr("perm", 0L, 2, 1, 3)), b.ConstantInt64(0, Tokens, hd) });
        }
        var outTokens = b.Add("MatMul", new[] { zMerged, W(wo, hd, Channels) });
        if (compute != DataType.Float) outTokens = b.Add("Cast", new[] { outTokens }, attributes: OnnxProtos.Attr("to", (long)DataType.Float));
        var image = b.Add("Reshape", new[] { b.Add("Transpose", new[] { outTokens }, attributes: OnnxProtos.Attr("perm", 0L, 2, 1)), b.ConstantInt64(0, Channels, Side, Side) });
        var tTerm = b.Add("Reshape", new[] { b.Add("Mul", new[] { b.Add("Cast", new[] { t }, attributes: OnnxProtos.Attr("to", (long)DataType.Float)), b.Constant(0f) }), b.ConstantInt64(-1, 1, 1, 1) });
        b.Add("Add", new[] { denoiser ? image : b.Add("Add", new[] { image, x }), tTerm }, output: "eps");
        b.Output("eps", DataType.Float, "batch", Channels, Side, Side);
        return b.Build();
    }

    /// <summary>The exact map each planted head produces: p[i, j] for query i, key j.</summary>
    public static float[] ExpectedMap(PlantedPattern pattern)
    {
        var map = new float[Tokens * Tokens];
        for (int i = 0; i < Tokens; i++)
        {
            var allowed = Allowed(pattern, i).ToList();
            foreach (var j in allowed) map[i * Tokens + j] = 1f / allowed.Count;
        }
        return map;
    }

    private static IEnumerable<int> Allowed(PlantedPattern pattern, int i) => pattern switch
    {
        PlantedPattern.Uniform => Enumerable.Range(0, Tokens),
        PlantedPattern.OneHot => new[] { (i + 1) % Tokens },
        PlantedPattern.Self => new[] { i },
        PlantedPattern.EdgeColumns => Enumerable.Range(0, Tokens).Where(j => j % Side is 2 or 3),   // where a left/right split has its edge
        _ => Enumerable.Range(0, Tokens).Where(j => Math.Abs(j / Side - i / Side) <= 1 && Math.Abs(j % Side - i % Side) <= 1),
    };

    // The score added where a head may not attend: -1e4 (finite, as most exports) or -inf (as masked_fill does).
    private static float[] Bias(PlantedHead[] heads, float maskedScore)
    {
        var bias = new float[heads.Length * Tokens * Tokens];
        for (int h = 0; h < heads.Length; h++)
        {
            var map = ExpectedMap(heads[h].Pattern);
            for (int k = 0; k < map.Length; k++) bias[h * Tokens * Tokens + k] = map[k] > 0 ? 0f : maskedScore;
        }
        return bias;
    }
}
