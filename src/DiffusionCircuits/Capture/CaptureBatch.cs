using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Capture;

/// <summary>The outputs of one batch, read in place from ONNX Runtime's buffers until disposed.</summary>
public sealed class CaptureBatch : IDisposable
{
    private readonly AttentionCaptureSession _owner;
    private readonly IDisposableReadOnlyCollection<OrtValue> _results;

    internal CaptureBatch(AttentionCaptureSession owner, IDisposableReadOnlyCollection<OrtValue> results, int batch)
    {
        _owner = owner;
        _results = results;
        Batch = batch;
    }

    /// <summary>Rows in the batch.</summary>
    public int Batch { get; }

    /// <summary>Predicted noise of row <paramref name="row"/> ([C, H, W]).</summary>
    public ReadOnlySpan<float> PredictedNoise(int row) =>
        _results[0].GetTensorDataAsSpan<float>().Slice(row * _owner.SampleLength, _owner.SampleLength);

    /// <summary>The [S_q, S_k] map of one head of one row; the same memory order in both layouts.</summary>
    public ReadOnlySpan<float> Map(int layer, int row, int head)
    {
        if (!_owner.ExposesMaps) throw new InvalidOperationException("This session was created with ExposeMaps = false.");
        var l = _owner.Layers[layer];
        int size = l.QueryTokens * l.KeyTokens;
        return _results[_owner.OutputIndex(l.MapsOutput)].GetTensorDataAsSpan<float>().Slice((row * l.Heads + head) * size, size);
    }

    /// <summary>All heads' outputs z of one row of a layer before ablation, [H, S_q, d] (same order in both layouts).</summary>
    public ReadOnlySpan<float> HeadOutputs(int layer, int row)
    {
        if (!_owner.ExposesHeadOutputs) throw new InvalidOperationException("This session was created without ExposeHeadOutputs.");
        var l = _owner.Layers[layer];
        int size = l.Heads * l.QueryTokens * l.HeadDim;
        return _results[_owner.OutputIndex(l.HeadOutputsOutput)].GetTensorDataAsSpan<float>().Slice(row * size, size);
    }

    /// <summary>All heads' maps of one row of a layer, [H, S_q, S_k].</summary>
    public ReadOnlySpan<float> Maps(int layer, int row)
    {
        if (!_owner.ExposesMaps) throw new InvalidOperationException("This session was created with ExposeMaps = false.");
        var l = _owner.Layers[layer];
        int size = l.Heads * l.QueryTokens * l.KeyTokens;
        return _results[_owner.OutputIndex(l.MapsOutput)].GetTensorDataAsSpan<float>().Slice(row * size, size);
    }

    /// <summary>Each head's entropy (nats, mean over queries) of one row of a layer, [H], computed in the graph.</summary>
    public ReadOnlySpan<float> Entropy(int layer, int row)
    {
        if (!_owner.ExposesEntropy) throw new InvalidOperationException("This session was created without ExposeEntropy.");
        var l = _owner.Layers[layer];
        return _results[_owner.OutputIndex(l.EntropyOutput)].GetTensorDataAsSpan<float>().Slice(row * l.Heads, l.Heads);
    }

    /// <summary>Each head's mean query-key distance (image sides) of one row of a self-attention layer, [H], computed in the graph.</summary>
    public ReadOnlySpan<float> DistanceImageUnits(int layer, int row) => PerHead(AttentionCaptureSession.DistanceOutput(_owner.Layers[layer]), layer, row);

    /// <summary>Each head's raw mirror mass of one row of a self-attention layer, [H], computed in the graph (the symmetry feature is this less <see cref="TokenGeometry.UniformMirrorMass"/>).</summary>
    public ReadOnlySpan<float> Symmetry(int layer, int row) => PerHead(AttentionCaptureSession.SymmetryOutput(_owner.Layers[layer]), layer, row);

    /// <summary>The attention each key receives (mean over queries) of one row of a layer, [H, S_k], computed in the graph (on a cross-attention layer, the mass on each token).</summary>
    public ReadOnlySpan<float> Received(int layer, int row)
    {
        var l = _owner.Layers[layer];
        Require(l.ReceivedOutput);
        int size = l.Heads * l.KeyTokens;
        return _results[_owner.OutputIndex(l.ReceivedOutput)].GetTensorDataAsSpan<float>().Slice(row * size, size);
    }

    /// <summary>Each head's same-part mass (mean over queries of the mass on keys of the query's own part), [H], computed in the graph.</summary>
    public ReadOnlySpan<float> SamePartMass(int layer, int row) => PerHead(_owner.Layers[layer].SamePartOutput, layer, row);

    /// <summary>The layer's maps summed over the batch's rows, [H, S_q, S_k], computed in the graph.</summary>
    public ReadOnlySpan<float> MapSum(int layer)
    {
        var l = _owner.Layers[layer];
        Require(l.MapSumOutput);
        return _results[_owner.OutputIndex(l.MapSumOutput)].GetTensorDataAsSpan<float>();
    }

    private ReadOnlySpan<float> PerHead(string output, int layer, int row)
    {
        Require(output);
        int heads = _owner.Layers[layer].Heads;
        return _results[_owner.OutputIndex(output)].GetTensorDataAsSpan<float>().Slice(row * heads, heads);
    }

    private void Require(string output)
    {
        if (!_owner.HasOutput(output))
            throw new InvalidOperationException($"This session has no output '{output}': probes need ExposeProbes = true and a self-attention layer.");
    }

    /// <inheritdoc/>
    public void Dispose() => _results.Dispose();
}
