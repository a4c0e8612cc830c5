using System.Security.Cryptography;
using DiffusionCircuits.Data;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Onnx;

/// <summary>
/// What a text-conditioned denoiser is fed besides x_t and t: token embeddings [1 or N, tokens, dim] for its
/// conditioning input (<c>encoder_hidden_states</c>), from a prompt through the pipeline's text encoder or from a file.
/// One row conditions every image; N rows condition image i of each data set with row i (<see cref="AssignRows"/>).
/// An attention-mask input (<c>encoder_attention_mask</c>) is fed ones for these tokens. Nothing is ever filled with
/// zeros: a conditioning input the model has and nobody supplied is an error (<see cref="Bind"/>).
/// </summary>
public sealed class ModelConditioning
{
    private readonly Dictionary<string, int> _rowOfImage = new(StringComparer.Ordinal);

    /// <param name="embeddings">[rows, tokens, dim], row-major.</param>
    /// <param name="source">Where the embeddings come from, in words (for logs and the report).</param>
    /// <param name="prompt">The prompt, when the embeddings were made from one.</param>
    /// <param name="tokenTexts">Each token's text (start, words, end, padding), when known.</param>
    /// <param name="promptTokens">Tokens before the padding (start and end included), when known.</param>
    public ModelConditioning(float[] embeddings, int rows, int tokens, int dim, string source, string? prompt = null,
        IReadOnlyList<string>? tokenTexts = null, int? promptTokens = null)
    {
        if (rows < 1 || tokens < 1 || dim < 1 || embeddings.Length != (long)rows * tokens * dim)
            throw new ArgumentException($"Conditioning embeddings must be [rows, tokens, dim] with {rows} x {tokens} x {dim} values (got {embeddings.Length}).");
        if (tokenTexts != null && tokenTexts.Count != tokens) throw new ArgumentException($"{tokenTexts.Count} token texts for {tokens} tokens.");
        for (int i = 0; i < embeddings.Length; i++)
            if (!float.IsFinite(embeddings[i])) throw new InvalidDataException($"Conditioning from {source} has a NaN or infinite value (at index {i}).");
        (Embeddings, Rows, Tokens, Dim, Source, Prompt, TokenTexts, PromptTokens) = (embeddings, rows, tokens, dim, source, prompt, tokenTexts, promptTokens);
        Sha256 = Convert.ToHexString(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(embeddings.AsSpan()))).ToLowerInvariant();
    }

    /// <summary>The embeddings [rows, tokens, dim].</summary>
    public float[] Embeddings { get; }
    /// <summary>Rows: 1 (every image) or one per image.</summary>
    public int Rows { get; }
    /// <summary>Tokens per row: the key tokens of every cross-attention layer.</summary>
    public int Tokens { get; }
    /// <summary>Embedding width.</summary>
    public int Dim { get; }
    /// <summary>Where the embeddings come from, in words.</summary>
    public string Source { get; }
    /// <summary>The prompt they encode, when they come from one ("" is the unconditional case).</summary>
    public string? Prompt { get; }
    /// <summary>Each token's text, when known (a prompt's tokens; null for embeddings from a file).</summary>
    public IReadOnlyList<string>? TokenTexts { get; }
    /// <summary>Tokens before the padding, when known.</summary>
    public int? PromptTokens { get; }
    /// <summary>SHA-256 of the embeddings' float32 values: what the model was actually fed.</summary>
    public string Sha256 { get; }

    /// <summary>Embeddings from a NumPy file [tokens, dim] or [rows, tokens, dim] (float32, float64 or float16).</summary>
    public static ModelConditioning FromNpy(string path)
    {
        var (data, shape) = NpyFile.ReadFloat32(path);
        if (shape.Length == 2) shape = new[] { 1, shape[0], shape[1] };
        if (shape.Length != 3 || shape.Any(d => d < 1))
            throw new InvalidDataException($"Conditioning file '{path}' has shape ({string.Join(", ", shape)}); expected [1 or N, tokens, dim] (or [tokens, dim]).");
        return new ModelConditioning(data, shape[0], shape[1], shape[2], $"embeddings from '{Path.GetFileName(path)}' ({shape[0]} x {shape[1]} x {shape[2]})");
    }

    /// <summary>
    /// With one row per image: row i conditions the i-th of <paramref name="imageIds"/> (call once per data set, in the
    /// order its images are analysed). The rows must cover them.
    /// </summary>
    public void AssignRows(IReadOnlyList<string> imageIds)
    {
        if (Rows == 1) return;
        if (imageIds.Count > Rows)
            throw new InvalidDataException($"Conditioning from {Source} has {Rows} rows, one per image, but {imageIds.Count} images are analysed: give 1 row (all images) or at least one per image.");
        for (int i = 0; i < imageIds.Count; i++) _rowOfImage[imageIds[i]] = i;
    }

    /// <summary>The row that conditions image <paramref name="imageId"/> (0 with one row, or for rows without an image such as model checks).</summary>
    public int RowOf(string? imageId)
    {
        if (Rows == 1 || imageId == null) return 0;
        return _rowOfImage.TryGetValue(imageId, out int row) ? row
            : throw new InvalidOperationException($"Image '{imageId}' has no conditioning row: AssignRows was not called for its data set.");
    }

    /// <summary>
    /// Which of the model's inputs take these embeddings and the attention mask, checked against their shapes; with no
    /// conditioning (null), that the model needs none. A conditioning input nobody supplies, or a mismatch, is an error
    /// that names the input and the options that supply it.
    /// </summary>
    public static ConditioningBinding Bind(ModelSignature signature, ModelConditioning? conditioning, string model)
    {
        var inputs = signature.Inputs.Where(i => i.Role == TensorRole.Conditioning).ToList();
        var masks = inputs.Where(IsAttentionMask).ToList();
        var embeddings = inputs.Except(masks).Where(i => i.Rank == 3 && ModelSignature.IsFloat(i.ElementType)).ToList();
        var other = inputs.Except(masks).Except(embeddings).ToList();
        const string Options = "--prompt TEXT with --pipeline DIR (the pipeline's tokenizer and text encoder; \"\" is the unconditional case), or --conditioning FILE.npy ([1 or N, tokens, dim] float32)";
        if (other.Count > 0)
            throw new InvalidDataException($"'{model}' has input{(other.Count > 1 ? "s" : "")} {string.Join(", ", other.Select(Describe))}, which DiffusionCircuits cannot feed " +
                                           "(it feeds the noisy sample, the timestep, one text-embedding input [batch, tokens, dim] and its attention mask). Export the UNet without them.");
        if (embeddings.Count > 1)
            throw new InvalidDataException($"'{model}' has {embeddings.Count} text-embedding inputs ({string.Join(", ", embeddings.Select(Describe))}); DiffusionCircuits feeds one.");
        var input = embeddings.FirstOrDefault();
        if (input == null)
        {
            if (masks.Count > 0) throw new InvalidDataException($"'{model}' has an attention-mask input ({Describe(masks[0])}) but no text-embedding input to go with it.");
            if (conditioning != null)
                throw new InvalidDataException($"Conditioning was given ({conditioning.Source}), but '{model}' takes none: it has no text-embedding input. Drop --prompt/--conditioning.");
            return new ConditioningBinding(null, null, null);
        }
        if (conditioning == null)
            throw new InvalidDataException($"'{model}' takes text conditioning in input {Describe(input)}, and none was given: pass {Options}. It is never filled with zeros.");
        if (input.FixedDim(1) is long tokens && tokens != conditioning.Tokens)
            throw new InvalidDataException($"Input {Describe(input)} of '{model}' takes {tokens} tokens; the conditioning ({conditioning.Source}) has {conditioning.Tokens}.");
        if (input.FixedDim(2) is long dim && dim != conditioning.Dim)
            throw new InvalidDataException($"Input {Describe(input)} of '{model}' takes embeddings of width {dim}; the conditioning ({conditioning.Source}) has width {conditioning.Dim}. " +
                                           "Use the text encoder of the same pipeline.");
        if (masks.Count > 1) throw new InvalidDataException($"'{model}' has {masks.Count} attention-mask inputs; DiffusionCircuits feeds one.");
        var mask = masks.FirstOrDefault();
        if (mask != null && mask.ElementType is not (DataType.Int64 or DataType.Int32 or DataType.Float or DataType.Float16 or DataType.Double))
            throw new InvalidDataException($"Attention-mask input {Describe(mask)} of '{model}' has a type DiffusionCircuits cannot feed (int64, int32 or float).");
        return new ConditioningBinding(conditioning, input, mask);
    }

    private static bool IsAttentionMask(TensorSpec input) => input.Rank == 2 && input.Name.Contains("mask", StringComparison.OrdinalIgnoreCase);

    private static string Describe(TensorSpec input) => $"'{input.Name}' {input.TypeText}{input.ShapeText}";
}

/// <summary>The conditioning of a model's inputs (<see cref="ModelConditioning.Bind"/>): which input takes the embeddings, which the mask.</summary>
/// <param name="Conditioning">The embeddings, or null for a model without conditioning.</param>
/// <param name="EmbeddingsInput">The text-embedding input [batch, tokens, dim], or null.</param>
/// <param name="MaskInput">The attention-mask input [batch, tokens], fed ones, or null.</param>
public sealed record ConditioningBinding(ModelConditioning? Conditioning, TensorSpec? EmbeddingsInput, TensorSpec? MaskInput)
{
    /// <summary>
    /// The value of conditioning input <paramref name="input"/> for a batch whose row r conditions with row
    /// <paramref name="rowOf"/>(r) of the embeddings. Dispose it after the run.
    /// </summary>
    internal Microsoft.ML.OnnxRuntime.OrtValue ValueFor(TensorSpec input, int batch, Func<int, int> rowOf)
    {
        var c = Conditioning!;
        if (input.Name == MaskInput?.Name)
            return ProbeInputs.CreateTensor(input.ElementType, new long[] { batch, c.Tokens }, (long)batch * c.Tokens, _ => 1, input.Name);
        if (input.Name != EmbeddingsInput?.Name) throw new InvalidOperationException($"Input '{input.Name}' is not bound to the conditioning.");
        int rowLength = c.Tokens * c.Dim;
        var values = new float[batch * rowLength];
        for (int r = 0; r < batch; r++) c.Embeddings.AsSpan(rowOf(r) * rowLength, rowLength).CopyTo(values.AsSpan(r * rowLength, rowLength));
        return input.ElementType == DataType.Float
            ? Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(values, new long[] { batch, c.Tokens, c.Dim })
            : ProbeInputs.CreateTensor(input.ElementType, new long[] { batch, c.Tokens, c.Dim }, values.Length, k => values[k], input.Name);
    }
}
