using DiffusionCircuits.Capture;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Bench;

/// <summary>
/// The public ML.NET API: noise, capture, and (with <paramref name="features"/>) entropy and probes, fitted once
/// (model load and instrumentation are not timed). Without features only the loss is read, so the difference
/// between the two passes is the feature stages' work.
/// </summary>
public sealed class MlNetPipelinePath : IDisposable
{
    private readonly ITransformer _fitted;
    private readonly IDataView _rows;
    private readonly string[] _wanted;
    private readonly bool _features;

    public MlNetPipelinePath(string modelPath, FaceImageDataView faces, int[] timesteps, int batch, bool features)
    {
        var ml = new MLContext(seed: 1);
        var capture = ml.Transforms.AddDiffusionNoise(timesteps: timesteps, seed: 1).Append(ml.Transforms.CaptureAttention(modelPath, batchSize: batch));
        _fitted = features
            ? capture.Append(ml.Transforms.AttentionEntropy()).Append(ml.Transforms.AttentionProbes()).Fit(faces)
            : capture.Fit(faces);
        _rows = _fitted.Transform(faces);
        _features = features;
        // Capture alone reads only the loss, so the model runs with maps exposed but nothing consumes them:
        // the difference to the full pipeline is then all of the feature stages' work.
        _wanted = features ? new[] { "EntropyNats", "SemanticAffinity" } : new[] { AttentionCaptureTransformer.LossColumn };
    }

    /// <summary>One pass over all rows; the mean entropy per head (empty without features).</summary>
    public double[] Pass()
    {
        using var cursor = _rows.GetRowCursor(_rows.Schema.Where(c => _wanted.Contains(c.Name)));
        var getters = _features ? _wanted.Select(w => cursor.GetGetter<VBuffer<float>>(_rows.Schema[w])).ToArray() : Array.Empty<ValueGetter<VBuffer<float>>>();
        var loss = _features ? null! : cursor.GetGetter<float>(_rows.Schema[AttentionCaptureTransformer.LossColumn]);
        float lossValue = 0;
        var buffers = new VBuffer<float>[getters.Length];
        double[] sum = Array.Empty<double>();
        long count = 0;
        while (cursor.MoveNext())
        {
            if (!_features)
            {
                loss(ref lossValue);
                continue;
            }
            for (int g = 0; g < getters.Length; g++) getters[g](ref buffers[g]);
            var e = buffers[0].GetValues();
            if (sum.Length == 0) sum = new double[e.Length];
            for (int h = 0; h < e.Length; h++) sum[h] += e[h];
            count++;
        }
        return sum.Select(v => v / Math.Max(1, count)).ToArray();
    }

    public void Dispose()
    {
        foreach (var t in (_fitted as TransformerChain<ITransformer>)?.OfType<IDisposable>() ?? Enumerable.Empty<IDisposable>()) t.Dispose();
    }
}

/// <summary>ML.NET's own ONNX scoring on the instrumented model: one Run per row, outputs copied per row. Fitted once, outside timing.</summary>
public sealed class ApplyOnnxModelPath : IDisposable
{
    private readonly string _file = Path.Combine(Path.GetTempPath(), $"dc-bench-{Guid.NewGuid():N}.onnx");
    private readonly ITransformer _transformer;
    private readonly IDataView _scored;
    private readonly string[] _outputs;

    public ApplyOnnxModelPath(AttentionCaptureSession capture, float[] noisy, int[] t)
    {
        var ml = new MLContext(seed: 1);
        capture.Instrumented.Model.Save(_file);
        int len = capture.SampleLength;
        var sig = capture.Discovery.Signature;
        var columns = new List<InMemoryColumns.Column>
        {
            InMemoryColumns.Floats(sig.Sample.Name, len, r => noisy.AsSpan(r * len, len).ToArray()),
            InMemoryColumns.Int64s(sig.Timestep.Name, r => t[r]),
        };
        var shapes = new Dictionary<string, int[]> { [sig.Sample.Name] = new[] { 1, capture.Channels, capture.Height, capture.Width }, [sig.Timestep.Name] = new[] { 1 } };
        foreach (var l in capture.Layers)
        {
            columns.Add(InMemoryColumns.Floats(l.MaskInput, l.Heads, _ => Enumerable.Repeat(1f, l.Heads).ToArray()));
            int meanLength = l.Heads * l.QueryTokens * l.HeadDim;
            columns.Add(InMemoryColumns.Floats(l.MeanInput, meanLength, _ => new float[meanLength]));
            shapes[l.MaskInput] = new[] { 1, l.Heads };
            shapes[l.MeanInput] = l.Layout == AttentionLayout.Heads4D ? new[] { 1, l.Heads, l.QueryTokens, l.HeadDim } : new[] { l.Heads, l.QueryTokens, l.HeadDim };
        }
        var data = new InMemoryColumns(t.Length, columns);
        _outputs = new[] { sig.NoiseOutput.Name }.Concat(capture.Layers.Select(l => l.MapsOutput)).ToArray();
        _transformer = ml.Transforms.ApplyOnnxModel(_outputs, columns.Select(c => c.Name).ToArray(), _file, shapes, gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100).Fit(data);
        _scored = _transformer.Transform(data);
    }

    public void Pass()
    {
        using var cursor = _scored.GetRowCursor(_scored.Schema.Where(c => _outputs.Contains(c.Name)));
        var getters = _outputs.Select(o => cursor.GetGetter<VBuffer<float>>(_scored.Schema[o])).ToArray();
        VBuffer<float> v = default;
        while (cursor.MoveNext())
            foreach (var g in getters) g(ref v);
    }

    public void Dispose()
    {
        (_transformer as IDisposable)?.Dispose();
        File.Delete(_file);
    }
}
