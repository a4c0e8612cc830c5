namespace DiffusionCircuits.Onnx;

/// <summary>
/// One attention head: its layer's name, its index within the layer, and its index over all heads in layer order
/// (the position of its column in per-head vectors). Its stable name is <c>down.1.attn.h3</c>, built here only.
/// </summary>
public readonly record struct HeadId(string Layer, int InLayer, int Index)
{
    /// <summary>The head's name: <c>{layer}.h{index in layer}</c>.</summary>
    public string Name => NameOf(Layer, InLayer);

    /// <summary>The name of head <paramref name="inLayer"/> of layer <paramref name="layer"/>.</summary>
    public static string NameOf(string layer, int inLayer) => $"{layer}.h{inLayer}";

    /// <inheritdoc/>
    public override string ToString() => Name;
}
