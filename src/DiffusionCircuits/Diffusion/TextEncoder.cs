using DiffusionCircuits.Onnx;
using Microsoft.ML.OnnxRuntime;
using DataType = DiffusionCircuits.Onnx.Proto.TensorProto.Types.DataType;

namespace DiffusionCircuits.Diffusion;

/// <summary>
/// A pipeline's text encoder (CLIP's text tower exported to ONNX, <c>text_encoder/model.onnx</c>) with its tokenizer:
/// a prompt becomes the token embeddings [1, tokens, dim] the UNet's cross-attention reads (<c>last_hidden_state</c>).
/// </summary>
public sealed class TextEncoder : IDisposable
{
    private readonly InferenceSession _session;
    private readonly ClipTokenizer _tokenizer;
    private readonly TensorSpec _ids;
    private readonly TensorSpec? _mask;
    private readonly string _output, _path;

    /// <summary>The encoder at <paramref name="modelPath"/> (an input of token ids, an output [batch, tokens, dim]) with <paramref name="tokenizer"/>.</summary>
    public TextEncoder(string modelPath, ClipTokenizer tokenizer, SessionOptions? options = null)
    {
        _path = modelPath;
        _tokenizer = tokenizer;
        var model = OnnxModel.Load(modelPath);
        var inputs = model.Graph.Input.Where(i => model.Graph.Initializer.All(t => t.Name != i.Name)).Select(v => TensorSpec.Of(v)).ToList();
        _ids = inputs.FirstOrDefault(i => i.Name.Contains("input_ids", StringComparison.OrdinalIgnoreCase))
               ?? inputs.FirstOrDefault(i => i.Rank == 2 && ModelSignature.IsInteger(i.ElementType))
               ?? throw new OnnxModelException($"Text encoder '{modelPath}' has no token-id input (an integer [batch, tokens] input such as input_ids).");
        if (_ids.ElementType is not (DataType.Int32 or DataType.Int64))
            throw new OnnxModelException($"Text encoder '{modelPath}': input '{_ids.Name}' is {_ids.TypeText}; token ids are fed as int32 or int64.");
        _mask = inputs.FirstOrDefault(i => i != _ids && i.Rank == 2 && i.Name.Contains("mask", StringComparison.OrdinalIgnoreCase));
        var other = inputs.Where(i => i != _ids && i != _mask).ToList();
        if (other.Count > 0) throw new OnnxModelException($"Text encoder '{modelPath}' has inputs DiffusionCircuits cannot feed: {string.Join(", ", other.Select(i => i.Name))}.");
        var outputs = model.Graph.Output.Select(v => TensorSpec.Of(v)).ToList();
        _output = (outputs.FirstOrDefault(o => o.Name == "last_hidden_state") ?? outputs.FirstOrDefault(o => o.Rank == 3)
                   ?? throw new OnnxModelException($"Text encoder '{modelPath}' has no [batch, tokens, dim] output (last_hidden_state).")).Name;
        _session = OrtSessions.Create(model, options ?? new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR });
    }

    /// <summary>The tokenizer in front of the encoder.</summary>
    public ClipTokenizer Tokenizer => _tokenizer;

    /// <summary>The prompt's token embeddings [1, tokens, dim] with each token's text ("" is the unconditional case).</summary>
    public ModelConditioning Encode(string prompt)
    {
        var tokens = _tokenizer.Tokenize(prompt);
        var shape = new long[] { 1, tokens.Ids.Length };
        var names = new List<string> { _ids.Name };
        var values = new List<OrtValue> { ProbeInputs.CreateTensor(_ids.ElementType, shape, tokens.Ids.Length, k => tokens.Ids[k], _ids.Name) };
        if (_mask != null)
        {
            names.Add(_mask.Name);
            values.Add(ProbeInputs.CreateTensor(_mask.ElementType, shape, tokens.Ids.Length, _ => 1, _mask.Name));
        }
        try
        {
            using var run = new RunOptions();
            using var results = _session.Run(run, names, values, new[] { _output });
            var info = results[0].GetTensorTypeAndShape();
            if (info.Shape.Length != 3 || info.Shape[0] != 1 || info.Shape[1] != tokens.Ids.Length)
                throw new OnnxModelException($"Text encoder '{_path}' gave [{string.Join(", ", info.Shape)}] for {tokens.Ids.Length} tokens; expected [1, {tokens.Ids.Length}, dim].");
            var embeddings = info.ElementDataType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16
                ? results[0].GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)h).ToArray()
                : results[0].GetTensorDataAsSpan<float>().ToArray();
            return new ModelConditioning(embeddings, 1, tokens.Ids.Length, (int)info.Shape[2],
                $"prompt \"{prompt}\" ({tokens.Length} tokens) through '{DenoiserSetup.ShortName(_path)}'",
                prompt, tokens.Texts, tokens.Length);
        }
        catch (OnnxRuntimeException e) { throw new OnnxModelException($"ONNX Runtime failed running text encoder '{_path}': {e.Message}", e); }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _session.Dispose();
}
