using DiffusionCircuits.Onnx.Proto;
using Google.Protobuf;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>Small constructors for ONNX protobuf messages.</summary>
internal static class OnnxProtos
{
    public static TensorProto FloatTensor(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)DataType.Float, RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values)) };
        t.Dims.AddRange(dims);
        return t;
    }

    public static TensorProto Int64Tensor(string name, ReadOnlySpan<long> values, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)DataType.Int64, RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values)) };
        t.Dims.AddRange(dims);
        return t;
    }

    /// <summary>A float, double or int64 tensor's values as doubles (typed fields or raw data); null for other types.</summary>
    public static double[]? Doubles(TensorProto t)
    {
        var raw = t.RawData.Span;
        return (DataType)t.DataType switch
        {
            DataType.Float => t.FloatData.Count > 0 ? t.FloatData.Select(v => (double)v).ToArray()
                : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(raw).ToArray().Select(v => (double)v).ToArray(),
            DataType.Double => t.DoubleData.Count > 0 ? t.DoubleData.ToArray() : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(raw).ToArray(),
            DataType.Int64 => t.Int64Data.Count > 0 ? t.Int64Data.Select(v => (double)v).ToArray()
                : System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(raw).ToArray().Select(v => (double)v).ToArray(),
            _ => null,
        };
    }

    /// <summary>A tensor value-info; a dimension is an int (fixed), a string (symbolic) or null (unknown).</summary>
    public static ValueInfoProto TensorValue(string name, DataType type, params object?[]? dims)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)type };
        if (dims != null)
        {
            tensor.Shape = new TensorShapeProto();
            foreach (var d in dims)
            {
                var dim = new TensorShapeProto.Types.Dimension();
                if (d is int i) dim.DimValue = i;
                else if (d is long l) dim.DimValue = l;
                else if (d is string s) dim.DimParam = s;
                tensor.Shape.Dim.Add(dim);
            }
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    public static AttributeProto Attr(string name, long value) => new() { Name = name, I = value, Type = AttributeProto.Types.AttributeType.Int };
    public static AttributeProto Attr(string name, float value) => new() { Name = name, F = value, Type = AttributeProto.Types.AttributeType.Float };
    public static AttributeProto Attr(string name, string value) => new() { Name = name, S = ByteString.CopyFromUtf8(value), Type = AttributeProto.Types.AttributeType.String };

    public static AttributeProto Attr(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static NodeProto Node(string opType, IEnumerable<string> inputs, IEnumerable<string> outputs, string? name = null, string? domain = null, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = opType };
        if (name != null) n.Name = name;
        if (domain != null) n.Domain = domain;
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }
}

/// <summary>
/// Builds ONNX graphs in code: used by the tests' planted-circuit fixtures and handy for small experiments.
/// Each <see cref="Add"/> returns the name of the node's (first) output, so graphs read like expressions.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly ModelProto _model;
    private int _counter;

    public OnnxGraphBuilder(string graphName = "graph", long opset = 17)
    {
        _model = new ModelProto { IrVersion = 8, ProducerName = "DiffusionCircuits.OnnxGraphBuilder", Graph = new GraphProto { Name = graphName } };
        _model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
    }

    public GraphProto Graph => _model.Graph;

    public string Input(string name, DataType type, params object?[] dims)
    {
        Graph.Input.Add(OnnxProtos.TensorValue(name, type, dims));
        return name;
    }

    public void Output(string tensor, DataType type, params object?[]? dims) => Graph.Output.Add(OnnxProtos.TensorValue(tensor, type, dims));

    public string Constant(ReadOnlySpan<float> values, params long[] dims)
    {
        string name = $"const_{_counter++}";
        Graph.Initializer.Add(OnnxProtos.FloatTensor(name, values, dims));
        return name;
    }

    public string Constant(float value) => Constant(new[] { value });

    public string ConstantInt64(params long[] values)
    {
        string name = $"const_{_counter++}";
        Graph.Initializer.Add(OnnxProtos.Int64Tensor(name, values, values.Length));
        return name;
    }

    /// <summary>Adds a node; returns its output name (or <paramref name="output"/> when given).</summary>
    public string Add(string opType, string[] inputs, string? name = null, string? output = null, string? domain = null, params AttributeProto[] attributes)
    {
        string outName = output ?? $"{opType.ToLowerInvariant()}_{_counter++}";
        Graph.Node.Add(OnnxProtos.Node(opType, inputs, new[] { outName }, name, domain, attributes));
        return outName;
    }

    public OnnxModel Build() => OnnxModel.Parse(_model.ToByteArray());
}
