using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>How an export lays out attention probabilities.</summary>
public enum AttentionLayout
{
    /// <summary>[B*H, S_q, S_k]: PyTorch 1.x / diffusers AttnProcessor (bmm) exports.</summary>
    BatchHeads3D,

    /// <summary>[B, H, S_q, S_k]: PyTorch 2.x exports (SDPA decomposed) and plain 4-D matmul attention.</summary>
    Heads4D,
}

/// <summary>
/// One attention layer found in a graph: its stable name (<c>down.1.attn</c>, or <c>attn.0</c> when node names
/// do not allow one), where it lives in the graph, and its geometry. Heads are named <c>{Name}.h{k}</c>.
/// </summary>
public sealed record AttentionLayer
{
    /// <summary>Stable layer name, e.g. <c>down.1.attn</c>.</summary>
    public required string Name { get; init; }
    /// <summary>Position in graph order.</summary>
    public required int Index { get; init; }
    /// <summary>The Softmax node that makes the probabilities.</summary>
    public required string SoftmaxNode { get; init; }
    /// <summary>The softmax output: attention probabilities p[.., i, j].</summary>
    public required string ProbabilitiesTensor { get; init; }
    /// <summary>The output of MatMul(p, V): head outputs z before heads are merged and projected.</summary>
    public required string HeadOutputTensor { get; init; }
    /// <summary>The MatMul(p, V) node.</summary>
    public required string PvMatMulNode { get; init; }
    /// <summary>Whether the keys are conditioning tokens rather than image tokens.</summary>
    public required bool IsCrossAttention { get; init; }
    /// <summary>How maps are laid out: [B*H, S, S] or [B, H, S, S].</summary>
    public AttentionLayout Layout { get; init; }
    /// <summary>Heads H.</summary>
    public int Heads { get; init; }
    /// <summary>Query tokens S_q.</summary>
    public int QueryTokens { get; init; }
    /// <summary>Key tokens S_k.</summary>
    public int KeyTokens { get; init; }
    /// <summary>Rows of the token grid.</summary>
    public int GridHeight { get; init; }
    /// <summary>Columns of the token grid.</summary>
    public int GridWidth { get; init; }
    /// <summary>Head dimension d.</summary>
    public int HeadDim { get; init; }
    /// <summary>Element type of the maps in the graph (float or float16).</summary>
    public DataType ElementType { get; init; } = DataType.Float;

    /// <summary><c>self</c> or <c>cross</c>.</summary>
    public string Kind => IsCrossAttention ? "cross" : "self";

    /// <summary>The name of head <paramref name="head"/> of this layer (<see cref="HeadId.Name"/>).</summary>
    public string HeadName(int head) => HeadId.NameOf(Name, head);

    /// <summary>Graph output that carries this layer's attention maps after instrumentation.</summary>
    public string MapsOutput => $"attn.{Name}";

    /// <summary>Graph output with the head outputs z before any ablation (when asked for), in the layer's layout.</summary>
    public string HeadOutputsOutput => $"z.{Name}";

    /// <summary>Graph output with each head's entropy [B, H] after instrumentation with <see cref="InstrumentOptions.ExposeEntropy"/>.</summary>
    public string EntropyOutput => $"entropy.{Name}";

    /// <summary>Graph output with the attention each key receives [B, H, S_k] (<see cref="InstrumentOptions.ExposeReceived"/>).</summary>
    public string ReceivedOutput => $"received.{Name}";

    /// <summary>Graph input with each token's facial-part distribution (area fractions; one-hot for hard labels) [B, S_q, parts] (<see cref="InstrumentOptions.ExposeSamePartMass"/>).</summary>
    public string PartsInput => $"parts.{Name}";

    /// <summary>Graph output with each head's same-part mass [B, H] (<see cref="InstrumentOptions.ExposeSamePartMass"/>).</summary>
    public string SamePartOutput => $"samepart.{Name}";

    /// <summary>Graph output with the maps summed over the batch [H, S_q, S_k] (<see cref="InstrumentOptions.ExposeMapSums"/>).</summary>
    public string MapSumOutput => $"mapsum.{Name}";

    /// <summary>Graph input [B, H] that scales each head's output (1 keeps, 0 ablates).</summary>
    public string MaskInput => $"mask.{Name}";

    /// <summary>Graph input, broadcastable to z, that replaces ablated head outputs (mean ablation).</summary>
    public string MeanInput => $"mean.{Name}";
}
