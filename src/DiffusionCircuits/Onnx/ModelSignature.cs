using DiffusionCircuits.Onnx.Proto;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>What a graph input or output is for a denoiser.</summary>
public enum TensorRole
{
    /// <summary>The noisy sample x_t, [B, C, H, W].</summary>
    NoisySample,
    /// <summary>The timestep t, scalar or [B].</summary>
    Timestep,
    /// <summary>Any other input (text embeddings, masks, class labels).</summary>
    Conditioning,
    /// <summary>The predicted noise eps_hat (the first output).</summary>
    NoisePrediction,
    /// <summary>Any other output.</summary>
    Other,
}

/// <summary>A graph input or output: name, element type and dimensions (a number, or a symbol for dynamic ones).</summary>
public sealed record TensorSpec(string Name, DataType ElementType, IReadOnlyList<string> Dims, TensorRole Role)
{
    /// <summary>Number of dimensions.</summary>
    public int Rank => Dims.Count;

    /// <summary>The fixed size of dimension <paramref name="i"/>, or null when it is symbolic or unknown.</summary>
    public long? FixedDim(int i) => i < Dims.Count && long.TryParse(Dims[i], out var v) ? v : null;

    /// <summary>The dimensions as text: <c>[batch, 3, 32, 32]</c>.</summary>
    public string ShapeText => "[" + string.Join(", ", Dims) + "]";

    /// <summary>The element type as text: <c>float</c>.</summary>
    public string TypeText => ElementType.ToString().ToLowerInvariant();

    /// <summary>The spec of a graph input or output (symbolic dimensions by name, unknown ones as <c>?i</c>).</summary>
    public static TensorSpec Of(ValueInfoProto v, TensorRole role = TensorRole.Other)
    {
        var tensor = v.Type?.TensorType;
        var dims = tensor?.Shape?.Dim.Select((d, i) => d.HasDimValue ? d.DimValue.ToString() : d.HasDimParam && d.DimParam.Length > 0 ? d.DimParam : $"?{i}").ToList()
                   ?? new List<string>();
        return new TensorSpec(v.Name, (DataType)(tensor?.ElemType ?? 0), dims, role);
    }
}

/// <summary>
/// A denoiser's interface: which input is the noisy sample x_t (a rank-4 float tensor [B, C, H, W]), which the
/// timestep (rank 0 or 1), which are conditioning (anything else), and which output is the predicted noise.
/// </summary>
public sealed class ModelSignature
{
    /// <summary>Finds the roles of the model's inputs and outputs; a model without a noisy-sample or timestep input is refused by name.</summary>
    public ModelSignature(OnnxModel model)
    {
        var initializers = new HashSet<string>(model.Graph.Initializer.Select(i => i.Name));
        var inputs = model.Graph.Input.Where(i => !initializers.Contains(i.Name)).Select(i => TensorSpec.Of(i)).ToList();

        var sample = inputs.Where(i => i.Rank == 4 && IsFloat(i.ElementType))
            .OrderByDescending(i => NameScore(i.Name, "sample", "noisy", "x_t", "xt", "x", "latent", "input"))
            .FirstOrDefault()
            ?? throw new OnnxModelException(
                $"'{model.SourcePath ?? "model"}' has no noisy-sample input: expected a rank-4 float input [B, C, H, W] among " +
                string.Join(", ", inputs.Select(i => $"{i.Name} {i.TypeText}{i.ShapeText}")) + ".");
        var timestep = inputs.Where(i => i != sample && i.Rank <= 1 && (IsFloat(i.ElementType) || IsInteger(i.ElementType)))
            .OrderByDescending(i => NameScore(i.Name, "timestep", "timesteps", "time", "t", "sigma", "step"))
            .FirstOrDefault()
            ?? throw new OnnxModelException(
                $"'{model.SourcePath ?? "model"}' has no timestep input: expected a scalar or [B] numeric input besides '{sample.Name}'.");

        Inputs = inputs.Select(i => i == sample ? i with { Role = TensorRole.NoisySample }
            : i == timestep ? i with { Role = TensorRole.Timestep } : i with { Role = TensorRole.Conditioning }).ToList();
        Outputs = model.Graph.Output.Select((o, k) => TensorSpec.Of(o, k == 0 ? TensorRole.NoisePrediction : TensorRole.Other)).ToList();
        if (Outputs.Count == 0) throw new OnnxModelException($"'{model.SourcePath ?? "model"}' has no graph outputs.");
    }

    /// <summary>Every graph input that is not an initializer, with its role.</summary>
    public IReadOnlyList<TensorSpec> Inputs { get; }
    /// <summary>Every graph output; the first is the predicted noise.</summary>
    public IReadOnlyList<TensorSpec> Outputs { get; }
    /// <summary>The noisy-sample input.</summary>
    public TensorSpec Sample => Inputs.First(i => i.Role == TensorRole.NoisySample);
    /// <summary>The timestep input.</summary>
    public TensorSpec Timestep => Inputs.First(i => i.Role == TensorRole.Timestep);
    /// <summary>The predicted-noise output.</summary>
    public TensorSpec NoiseOutput => Outputs[0];

    /// <summary>The symbol (or number) of the sample's batch dimension.</summary>
    public string BatchDim => Sample.Dims[0];

    /// <summary>Whether the element type is a floating-point type.</summary>
    public static bool IsFloat(DataType t) => t is DataType.Float or DataType.Float16 or DataType.Double or DataType.Bfloat16;
    /// <summary>Whether the element type is an integer type.</summary>
    public static bool IsInteger(DataType t) => t is DataType.Int64 or DataType.Int32 or DataType.Int16 or DataType.Int8 or DataType.Uint8;

    private static int NameScore(string name, params string[] preferred)
    {
        string n = name.ToLowerInvariant();
        for (int i = 0; i < preferred.Length; i++)
            if (n == preferred[i]) return 100 - i;
        for (int i = 0; i < preferred.Length; i++)
            if (preferred[i].Length > 1 && n.Contains(preferred[i])) return 50 - i;
        return 0;
    }
}
