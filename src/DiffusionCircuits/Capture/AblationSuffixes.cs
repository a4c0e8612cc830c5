using DiffusionCircuits.Onnx;
using DiffusionCircuits.Onnx.Proto;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Capture;

/// <summary>
/// The shared computation of an ablation sweep. Ablating heads of layer L and later cannot change anything computed
/// before layer L's head outputs, so a batch of (image, timestep) rows runs the intact model once, which also
/// returns the tensors at each cut; each condition then runs only the suffix from its first ablated layer on, fed
/// those tensors (UNet skip connections included) as they came out. The suffix of a later layer is cheaper: the
/// FLOPs of each part are counted so the sweep can report its cost against one full pass per condition.
/// </summary>
internal sealed class AblationSuffixes : IDisposable
{
    /// <summary>The cut tensors of a pair batch are held while its conditions run; rows per batch are cut to stay under this.</summary>
    public const long CutBudgetBytes = 256L << 20;

    private readonly AttentionCaptureSession _session;
    private readonly SessionOptions _options;
    private readonly InferenceSession _intact;
    private readonly string[] _intactOutputs;
    private readonly string _noise;
    private readonly HashSet<string> _cuts;
    // On a GPU, its memory: the intact run leaves the cut tensors there, so the conditions' runs read them there
    // instead of each copying them to the host and back. Null on a CPU (the host's memory).
    private readonly OrtMemoryInfo? _deviceMemory;
    private readonly List<Part> _parts = new();

    private sealed record Part(int FirstLayer, ModelSuffix Suffix, InferenceSession Session, double FlopsPerSample, HashSet<string> OriginalInputs);

    private AblationSuffixes(AttentionCaptureSession session, SessionOptions options, InferenceSession intact, string[] intactOutputs, double fullFlops, long cutBytesPerRow)
    {
        (_session, _options, _intact, _intactOutputs, FullFlopsPerSample, CutBytesPerRow) = (session, options, intact, intactOutputs, fullFlops, cutBytesPerRow);
        _noise = session.Discovery.Signature.NoiseOutput.Name;
        _cuts = intactOutputs.Skip(1).ToHashSet();
        if (session.CudaDevice is int gpu) _deviceMemory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, gpu, OrtMemType.Default);
    }

    /// <summary>The tensors at the cuts, returned by <see cref="RunIntact"/> for the conditions' runs.</summary>
    public IReadOnlyCollection<string> CutTensors => _cuts;

    /// <summary>Where the cut tensors of <see cref="RunIntact"/> live: the GPU's memory on CUDA, else the host's.</summary>
    public OrtMemoryInfo CutMemory => _deviceMemory ?? OrtMemoryInfo.DefaultInstance;

    /// <summary>FLOPs of one full forward pass per sample (matrix products and convolutions, <see cref="FlopCounter"/>).</summary>
    public double FullFlopsPerSample { get; }

    /// <summary>Bytes of cut tensors per row, held for each row of a pair batch.</summary>
    public long CutBytesPerRow { get; }

    /// <summary>FLOPs per sample of the pass that runs a condition whose earliest ablated layer is <paramref name="firstAblatedLayer"/>.</summary>
    public double FlopsPerSample(int firstAblatedLayer) => PartFor(firstAblatedLayer)?.FlopsPerSample ?? FullFlopsPerSample;

    /// <summary>What the sweep shares, in one line (for logs and the report).</summary>
    public string Description => $"suffixes from layers {string.Join(", ", _parts.Select(p => $"{_session.Layers[p.FirstLayer].Name} ({100 * p.FlopsPerSample / FullFlopsPerSample:F0}% of a pass)"))}";

    /// <summary>
    /// The suffixes of <paramref name="session"/>'s model, or null with the reason in <paramref name="note"/> when the
    /// model cannot be split (a fixed batch size, nothing to gain). Suffixes are made from the last layer back while
    /// their weights stay within twice the model's; each is checked once against the full model. Suffix Runs use
    /// <paramref name="threadsPerRun"/> intra-op threads (0: ONNX Runtime's default); the intact run uses the session's.
    /// </summary>
    public static AblationSuffixes? TryCreate(AttentionCaptureSession session, out string note, int threadsPerRun = 0)
    {
        var model = session.Instrumented.Model;
        var layers = session.Layers;
        string noise = session.Discovery.Signature.NoiseOutput.Name;
        if (!session.Instrumented.Options.AddAblationInputs) { note = "the model has no ablation inputs"; return null; }
        if (long.TryParse(session.Discovery.Signature.BatchDim, out _)) { note = "the model has a fixed batch size, so the cut cannot be reused"; return null; }

        var flopsByNode = FlopsByNode(session);
        double full = flopsByNode.Values.Sum();
        long weights = model.Graph.Initializer.Sum(Bytes), budget = 2 * weights, used = 0;
        var chosen = new List<(int Layer, ModelSuffix Suffix, double Flops)>();
        double last = 0;
        for (int l = layers.Count - 1; l >= 0; l--)
        {
            var sources = layers.Skip(l).SelectMany(x => new[] { x.MaskInput, x.MeanInput }).ToHashSet();
            var suffix = GraphSplit.Build(model, sources, noise);
            double flops = suffix.Nodes.Sum(n => flopsByNode.GetValueOrDefault(n));
            long bytes = suffix.Model.Graph.Initializer.Sum(Bytes);
            // A suffix barely cheaper than the next later one, or than a full pass, is not worth its session.
            if (flops > 0.97 * full || (chosen.Count > 0 && flops < last + 0.03 * full) || used + bytes > budget) continue;
            chosen.Add((l, suffix, flops));
            (used, last) = (used + bytes, flops);
        }
        if (chosen.Count == 0) { note = "no attention layer starts a part of the model cheaper than a full pass"; return null; }

        // The intact model, returning every cut as well; one run measures each cut tensor's type and rank.
        var intactModel = model.Clone();
        var cuts = chosen.SelectMany(c => c.Suffix.Cut).Distinct().ToList();
        intactModel.Graph.Output.AddRange(cuts.Select(t => new ValueInfoProto { Name = t }));
        var outputs = new[] { noise }.Concat(cuts).ToArray();
        // The intact run, one per batch, has the cores to itself; the suffixes run several at once, each on threadsPerRun.
        var intact = OrtSessions.Create(intactModel, session.SessionOptions);
        var types = new Dictionary<string, (int, int)>();
        long cutBytes = 0;
        var (noisy, t) = ProbeRows(session, 1);
        var (names, values) = session.BatchInputs(noisy, t);
        try
        {
            using var results = session.RunModel(intact, names, values, outputs, 1, counted: false);
            for (int i = 1; i < outputs.Length; i++)
            {
                if (results[i].OnnxType != OnnxValueType.ONNX_TYPE_TENSOR) { note = $"the cut tensor '{outputs[i]}' is not a tensor"; intact.Dispose(); return null; }
                var info = results[i].GetTensorTypeAndShape();
                types[outputs[i]] = ((int)info.ElementDataType, info.Shape.Length);
                cutBytes += results[i].GetTensorSizeInBytes();
            }
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }

        var split = new AblationSuffixes(session, session.CreatePartOptions(threadsPerRun), intact, outputs, full, cutBytes);
        var dropped = new List<string>();
        foreach (var (layer, suffix, flops) in chosen.OrderBy(c => c.Layer))
        {
            GraphSplit.TypeCut(suffix, t => types[t]);
            var part = new Part(layer, suffix, OrtSessions.Create(suffix.Model, split._options), flops, suffix.OriginalInputs.ToHashSet());
            if (split.Agrees(part)) split._parts.Add(part);
            else
            {
                part.Session.Dispose();
                dropped.Add(layers[layer].Name);
            }
        }
        if (split._parts.Count == 0) { split.Dispose(); note = "no suffix reproduced the full model's predictions"; return null; }
        note = split.Description + (dropped.Count > 0 ? $"; the suffix from {string.Join(", ", dropped)} did not reproduce the full model and is not used" : "");
        return split;
    }

    /// <summary>
    /// Runs the intact model on <paramref name="rows"/> (all heads kept): its predicted noise and the cut tensors,
    /// held until disposed for the conditions of these rows.
    /// </summary>
    /// <param name="alsoOutputs">Further outputs of the instrumented model to return (head outputs z, say).</param>
    public IntactRun RunIntact(NoisedRows rows, bool counted = true, IReadOnlyList<string>? alsoOutputs = null)
    {
        var (names, values) = _session.BatchInputs(rows.Noisy, rows.Timesteps[..rows.Count], imageIds: rows.ImageIds);
        var outputs = alsoOutputs == null ? _intactOutputs : _intactOutputs.Concat(alsoOutputs).ToArray();
        try
        {
            // IO binding: the noise and the extra outputs are read on the host, the cuts stay where the model ran.
            using var binding = _intact.CreateIoBinding();
            for (int i = 0; i < names.Count; i++) binding.BindInput(names[i], values[i]);
            foreach (var output in outputs) binding.BindOutputToDevice(output, _cuts.Contains(output) ? CutMemory : OrtMemoryInfo.DefaultInstance);
            var results = _session.RunBound(_intact, binding, rows.Count, counted);
            return new IntactRun(results, binding.GetOutputNames());
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>
    /// Predicted noise [B, C, H, W] of <paramref name="rows"/> (the rows of <paramref name="intact"/>, in order) with the
    /// heads of <paramref name="masks"/> ablated, whose earliest ablated layer is <paramref name="firstAblatedLayer"/>:
    /// only that layer's suffix runs. Dispose the result.
    /// </summary>
    public IDisposableReadOnlyCollection<OrtValue> RunAblated(int firstAblatedLayer, IntactRun intact, NoisedRows rows, IReadOnlyList<float[]> masks, IReadOnlyList<float[]?>? means) =>
        Run(PartFor(firstAblatedLayer), intact, rows, masks, means, counted: true);

    /// <summary>The ablated rows through <paramref name="part"/> (the full model when null).</summary>
    private IDisposableReadOnlyCollection<OrtValue> Run(Part? part, IntactRun intact, NoisedRows rows, IReadOnlyList<float[]> masks, IReadOnlyList<float[]?>? means, bool counted)
    {
        var (names, values) = _session.BatchInputs(rows.Noisy, rows.Timesteps[..rows.Count], masks, means, rows.ImageIds);
        try
        {
            if (part == null) return _session.RunModel(_intact, names, values, new[] { _noise }, rows.Count, counted);
            var feedNames = new List<string>();
            var feed = new List<OrtValue>();
            for (int i = 0; i < names.Count; i++)
                if (part.OriginalInputs.Contains(names[i]))
                {
                    feedNames.Add(names[i]);
                    feed.Add(values[i]);
                }
            foreach (var t in part.Suffix.Cut)
            {
                feedNames.Add(t);
                feed.Add(intact.Value(t));
            }
            return _session.RunModel(part.Session, feedNames, feed, new[] { _noise }, rows.Count, counted);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>FLOPs per sample of each node of <paramref name="session"/>'s instrumented model (one profiled run of one row).</summary>
    public static IReadOnlyDictionary<string, double> FlopsByNode(AttentionCaptureSession session)
    {
        var (noisy, t) = ProbeRows(session, 1);
        var (names, values) = session.BatchInputs(noisy, t);
        try { return FlopCounter.CountByNode(session.Instrumented.Model, names, values, 1); }
        finally { foreach (var v in values) v.Dispose(); }
    }

    private Part? PartFor(int firstAblatedLayer) => _parts.LastOrDefault(p => p.FirstLayer <= firstAblatedLayer);

    /// <summary>Whether a part gives the full model's predictions (to float rounding) on two probe rows with a head of its first layer ablated in each.</summary>
    private bool Agrees(Part part)
    {
        var (noisy, t) = ProbeRows(_session, 2);
        var rows = new NoisedRows(_session, 2, 0);
        for (int r = 0; r < 2; r++) rows.Add(noisy.AsSpan(r * _session.SampleLength, _session.SampleLength), noisy.AsSpan(r * _session.SampleLength, _session.SampleLength), t[r]);
        var masks = _session.Layers.Select(l => Enumerable.Repeat(1f, 2 * l.Heads).ToArray()).ToArray();
        masks[part.FirstLayer][0] = 0f;                                          // row 0: the layer's first head
        masks[part.FirstLayer][2 * _session.Layers[part.FirstLayer].Heads - 1] = 0f;   // row 1: its last head
        using var intact = RunIntact(rows, counted: false);
        using var full = Run(null, intact, rows, masks, null, counted: false);
        using var split = Run(part, intact, rows, masks, null, counted: false);
        var expected = full[0].GetTensorDataAsSpan<float>();
        var got = split[0].GetTensorDataAsSpan<float>();
        float scale = 1f;
        foreach (float v in expected) scale = Math.Max(scale, Math.Abs(v));
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(got[i] - expected[i]) <= 1e-4f * scale)) return false;
        return true;
    }

    private static (float[] Noisy, int[] Timesteps) ProbeRows(AttentionCaptureSession session, int rows)
    {
        var rng = new Random(7);
        var noisy = new float[rows * session.SampleLength];
        for (int i = 0; i < noisy.Length; i++) noisy[i] = (float)(rng.NextDouble() * 2 - 1);
        return (noisy, Enumerable.Repeat(session.Schedule.Timesteps / 2, rows).ToArray());
    }

    private static long Bytes(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            return long.TryParse(t.ExternalData.FirstOrDefault(e => e.Key == "length")?.Value, out var n) ? n : t.Dims.Aggregate(4L, (a, d) => a * d);
        return t.RawData.Length + 4L * t.FloatData.Count + 8L * (t.Int64Data.Count + t.DoubleData.Count) + 4L * t.Int32Data.Count;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _deviceMemory?.Dispose();
        _intact.Dispose();
        foreach (var p in _parts) p.Session.Dispose();
        _options.Dispose();
    }

    /// <summary>The intact model's outputs for one batch of rows: the predicted noise and each cut tensor.</summary>
    internal sealed class IntactRun(IDisposableReadOnlyCollection<OrtValue> results, string[] outputs) : IDisposable
    {
        /// <summary>Predicted noise [B, C, H, W].</summary>
        public ReadOnlySpan<float> Noise => results[0].GetTensorDataAsSpan<float>();

        /// <summary>The cut tensor (or other output) <paramref name="name"/>, owned by this run.</summary>
        public OrtValue Value(string name) => results[Array.IndexOf(outputs, name)];

        /// <inheritdoc/>
        public void Dispose() => results.Dispose();
    }
}
