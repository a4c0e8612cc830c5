using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Capture;

/// <summary>
/// Runs an instrumented copy of a denoiser in batches through ONNX Runtime: noisy images and timesteps in; predicted
/// noise and every layer's attention maps out. Optional per-sample head masks ablate heads (zero or mean ablation).
/// This is the batched path behind the ML.NET stages and the ablation sweep: one Run per batch, outputs read in place.
/// </summary>
public sealed class AttentionCaptureSession : IDisposable
{
    private readonly SessionOptions _sessionOptions;
    private InferenceSession? _session;
    // Held for the session's life: a RunOptions collected during a native Run call corrupts its flags.
    private readonly RunOptions _runOptions = new();
    private readonly string[] _outputNames;
    private readonly Dictionary<string, int> _outputIndex;

    /// <summary>Loads, inspects and instruments the model at <paramref name="modelPath"/>.</summary>
    public AttentionCaptureSession(string modelPath, CaptureOptions? options = null)
        : this(LoadModel(modelPath), options) { }

    /// <summary>Inspects and instruments a loaded model.</summary>
    public AttentionCaptureSession(OnnxModel model, CaptureOptions? options = null)
    {
        options ??= new CaptureOptions();
        Options = options;
        ModelPath = model.SourcePath;
        Discovery = AttentionDiscovery.Discover(model, options.SampleSize, options.Conditioning);
        Schedule = options.Schedule ?? NoiseSchedule.FromModel(model);
        Conditioning = ModelConditioning.Bind(Discovery.Signature, options.Conditioning, model.SourcePath ?? "model");
        bool probes = options.ExposeProbes || options.GraphFeatures;
        Geometries = Layers.Select(TokenGeometry.For).ToArray();
        _headLocations = Layers.SelectMany((l, li) => Enumerable.Range(0, l.Heads).Select(h => (li, h))).ToArray();
        Instrumented = ModelInstrumenter.Instrument(Discovery.Model, Discovery, new InstrumentOptions
        {
            ExposeMaps = options.ExposeMaps, ExposeHeadOutputs = options.ExposeHeadOutputs, ExposeEntropy = options.ExposeEntropy || options.GraphFeatures,
            WeightedSums = probes ? new[] { DistanceWeighting(), SymmetryWeighting() } : null, ExposeReceived = probes,
            ExposeSamePartMass = options.GraphFeatures, ExposeMapSums = options.GraphFeatures, Parts = FaceImage.PartCount,
        });
        ExposesMaps = options.ExposeMaps;
        ExposesHeadOutputs = options.ExposeHeadOutputs;
        ExposesEntropy = options.ExposeEntropy || options.GraphFeatures;
        ExposesProbes = probes;
        ExposesGraphFeatures = options.GraphFeatures;
        var sample = Discovery.Signature.Sample;
        Channels = (int)(sample.FixedDim(1) ?? 3);
        Height = (int)(sample.FixedDim(2) ?? options.SampleSize);
        Width = (int)(sample.FixedDim(3) ?? options.SampleSize);
        _sessionOptions = CreateSessionOptions(options, out var note, out var cuda);
        DeviceNote = note;
        CudaDevice = cuda;
        _session = OrtSessions.Create(Instrumented.Model, _sessionOptions);
        _outputNames = new[] { Discovery.Signature.NoiseOutput.Name }
            .Concat(options.ExposeMaps ? Layers.Select(l => l.MapsOutput) : Array.Empty<string>())
            .Concat(options.ExposeHeadOutputs ? Layers.Select(l => l.HeadOutputsOutput) : Array.Empty<string>())
            .Concat(ExposesEntropy ? Layers.Select(l => l.EntropyOutput) : Array.Empty<string>())
            .Concat(probes ? Layers.Where((_, i) => Geometries[i] != null).SelectMany(l => new[] { DistanceOutput(l), SymmetryOutput(l) }) : Array.Empty<string>())
            .Concat(probes ? Layers.Where((l, i) => Geometries[i] != null || l.IsCrossAttention).Select(l => l.ReceivedOutput) : Array.Empty<string>())
            .Concat(options.GraphFeatures ? Layers.Where(HasPartsInput).Select(l => l.SamePartOutput) : Array.Empty<string>())
            .Concat(options.GraphFeatures ? Layers.Select(l => l.MapSumOutput) : Array.Empty<string>()).ToArray();
        _outputIndex = _outputNames.Select((name, i) => (name, i)).ToDictionary(x => x.name, x => x.i);
    }

    /// <summary>The graph output of a layer's mean distance per head.</summary>
    internal static string DistanceOutput(AttentionLayer layer) => $"distance.{layer.Name}";

    /// <summary>The graph output of a layer's mirror mass per head.</summary>
    internal static string SymmetryOutput(AttentionLayer layer) => $"symmetry.{layer.Name}";

    /// <summary>Whether a graph output exists in this session's batches.</summary>
    internal bool HasOutput(string output) => _outputIndex.ContainsKey(output);

    // The same weights the C# reference uses (AttentionFeatureCalculator): |pos_i - pos_j| and the mirror windows.
    private MapWeighting DistanceWeighting() => new("distance", l => GeometryOf(l)?.Distances);

    private MapWeighting SymmetryWeighting() => new("symmetry", l => GeometryOf(l) is { } g ? MirrorIndicator(g) : null);

    private TokenGeometry? GeometryOf(AttentionLayer layer) => Geometries[Discovery.Layers.ToList().IndexOf(layer)];

    private static float[] MirrorIndicator(TokenGeometry g)
    {
        var w = new float[g.Tokens * g.Tokens];
        for (int i = 0; i < g.Tokens; i++)
            foreach (int j in g.MirrorWindows[i]) w[i * g.Tokens + j] = 1f;
        return w;
    }

    /// <summary>Where the model was loaded from (null for one built in memory).</summary>
    public string? ModelPath { get; }
    /// <summary>The attention layers found, with the model's signature.</summary>
    public AttentionDiscoveryResult Discovery { get; }
    /// <summary>The instrumented copy that runs (maps out, masks and means in).</summary>
    public InstrumentedModel Instrumented { get; }
    /// <summary>The model's noise schedule (and what its output predicts).</summary>
    public NoiseSchedule Schedule { get; }
    /// <summary>What the model's conditioning inputs are fed (<see cref="CaptureOptions.Conditioning"/>), bound to them.</summary>
    public ConditioningBinding Conditioning { get; }
    /// <summary>The attention layers in graph order.</summary>
    public IReadOnlyList<AttentionLayer> Layers => Discovery.Layers;
    /// <summary>Each layer's token geometry (null for cross-attention).</summary>
    public IReadOnlyList<TokenGeometry?> Geometries { get; }
    /// <summary>Channels of the noisy sample.</summary>
    public int Channels { get; }
    /// <summary>Height of the noisy sample.</summary>
    public int Height { get; }
    /// <summary>Width of the noisy sample.</summary>
    public int Width { get; }
    /// <summary>Values per sample: channels x height x width.</summary>
    public int SampleLength => Channels * Height * Width;
    /// <summary>Heads over all layers.</summary>
    public int TotalHeads => Discovery.TotalHeads;

    /// <summary>Where head <paramref name="head"/> (<see cref="HeadId.Index"/>) is: its layer's index in <see cref="Layers"/> and its index in that layer.</summary>
    internal (int Layer, int InLayer) LocateHead(int head) => _headLocations[head];

    private readonly (int Layer, int InLayer)[] _headLocations;

    /// <summary>
    /// The model takes one timestep for the whole batch (a scalar input): every batch must hold rows of one timestep
    /// (<see cref="NoisedRows.Batches"/> groups them so).
    /// </summary>
    public bool ScalarTimestep => Discovery.Signature.Timestep.Rank == 0;

    /// <summary>Whether batches carry attention maps (<see cref="CaptureOptions.ExposeMaps"/>).</summary>
    public bool ExposesMaps { get; }

    /// <summary>Whether batches carry every feature from the graph (<see cref="CaptureOptions.GraphFeatures"/>).</summary>
    public bool ExposesGraphFeatures { get; }

    /// <summary>Whether a layer takes a part grid (self-attention with square maps, under <see cref="CaptureOptions.GraphFeatures"/>).</summary>
    public bool HasPartsInput(AttentionLayer layer) => ExposesGraphFeatures && !layer.IsCrossAttention && layer.QueryTokens == layer.KeyTokens;

    /// <summary>Whether batches carry the in-graph probes (<see cref="CaptureOptions.ExposeProbes"/>).</summary>
    public bool ExposesProbes { get; }

    /// <summary>Whether batches carry each head's in-graph entropy (<see cref="CaptureOptions.ExposeEntropy"/>).</summary>
    public bool ExposesEntropy { get; }

    /// <summary>Where a graph output sits among a batch's results.</summary>
    internal int OutputIndex(string output) => _outputIndex[output];

    /// <summary>Whether batches carry head outputs z (<see cref="CaptureOptions.ExposeHeadOutputs"/>).</summary>
    public bool ExposesHeadOutputs { get; }

    /// <summary>Where the session runs, and why if not where asked.</summary>
    public string DeviceNote { get; }

    /// <summary>The CUDA device the runs use; null on the CPU (asked for none, or CUDA could not start: <see cref="DeviceNote"/>).</summary>
    public int? CudaDevice { get; }

    /// <summary>Number of ONNX Runtime Run calls so far (the cost measure of sweeps).</summary>
    public long RunCalls => Interlocked.Read(ref _runCalls);

    /// <summary>Total forward passes (rows) so far.</summary>
    public long ForwardPasses => Interlocked.Read(ref _forwardPasses);

    private long _runCalls, _forwardPasses;

    /// <summary>
    /// Gives ONNX Runtime's memory arena back (it keeps the largest batch's buffers for the session's lifetime); the
    /// next <see cref="Run"/> creates the session again (a fraction of a second). For a session that is done with
    /// one stage of a long analysis while another session does the next. Not while a batch is in flight.
    /// </summary>
    public void ReleaseBuffers()
    {
        _session?.Dispose();
        _session = null;
    }

    /// <summary>
    /// One forward pass of a batch. <paramref name="masks"/>, when given, has one [B, H] array per layer (1 keeps a
    /// head, 0 ablates it); <paramref name="means"/> optionally replaces ablated heads' outputs (mean ablation), in
    /// the layer's head-output layout for the whole batch. <paramref name="imageIds"/> names each row's image, for
    /// conditioning with one row per image (<see cref="ModelConditioning.AssignRows"/>; row 0 otherwise).
    /// <paramref name="parts"/> gives, per layer that takes one (<see cref="HasPartsInput"/>), each row's soft part
    /// grid [B, S, parts] (zeros when null). Dispose the result to release ONNX Runtime's buffers.
    /// </summary>
    public CaptureBatch Run(float[] noisy, int[] timesteps, IReadOnlyList<float[]>? masks = null, IReadOnlyList<float[]?>? means = null,
        IReadOnlyList<string?>? imageIds = null, IReadOnlyList<float[]?>? parts = null)
    {
        var (names, values) = BatchInputs(noisy, timesteps, masks, means, imageIds, parts);
        try
        {
            _session ??= OrtSessions.Create(Instrumented.Model, _sessionOptions);
            return new CaptureBatch(this, RunModel(_session, names, values, _outputNames, timesteps.Length), timesteps.Length);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>
    /// The instrumented model's inputs for one batch (see <see cref="Run"/>): sample, timestep, conditioning, and each
    /// layer's mask, mean and part grid. The caller disposes the values after the run.
    /// </summary>
    internal (List<string> Names, List<OrtValue> Values) BatchInputs(float[] noisy, int[] timesteps, IReadOnlyList<float[]>? masks = null,
        IReadOnlyList<float[]?>? means = null, IReadOnlyList<string?>? imageIds = null, IReadOnlyList<float[]?>? parts = null)
    {
        int batch = timesteps.Length;
        if (noisy.Length != batch * SampleLength)
            throw new ArgumentException($"Expected {batch} x {SampleLength} noisy values, got {noisy.Length}.");
        var conditioning = Conditioning.Conditioning;
        var (names, values) = ProbeInputs.ForBatch(Discovery.Signature, noisy, timesteps, Channels, Height, Width, Conditioning,
            r => conditioning?.RowOf(imageIds?[r]) ?? 0);
        try
        {
            for (int l = 0; l < Layers.Count; l++)
            {
                var layer = Layers[l];
                var mask = masks?[l] ?? Ones(batch * layer.Heads);
                if (mask.Length != batch * layer.Heads) throw new ArgumentException($"Mask for {layer.Name} must have {batch} x {layer.Heads} values.");
                names.Add(layer.MaskInput);
                values.Add(OrtValue.CreateTensorValueFromMemory(mask, new long[] { batch, layer.Heads }));
                long[] meanShape = layer.Layout == AttentionLayout.Heads4D
                    ? new long[] { batch, layer.Heads, layer.QueryTokens, layer.HeadDim }
                    : new long[] { batch * layer.Heads, layer.QueryTokens, layer.HeadDim };
                var mean = means?[l] ?? Zeros(batch * layer.Heads * layer.QueryTokens * layer.HeadDim);
                names.Add(layer.MeanInput);
                values.Add(OrtValue.CreateTensorValueFromMemory(mean, meanShape));
                if (HasPartsInput(layer))
                {
                    int partValues = batch * layer.QueryTokens * FaceImage.PartCount;
                    var grid = parts?[l] ?? Zeros(partValues);
                    if (grid.Length != partValues) throw new ArgumentException($"Parts for {layer.Name} must have {batch} x {layer.QueryTokens} x {FaceImage.PartCount} values.");
                    names.Add(layer.PartsInput);
                    values.Add(OrtValue.CreateTensorValueFromMemory(grid, new long[] { batch, layer.QueryTokens, FaceImage.PartCount }));
                }
            }
            return (names, values);
        }
        catch
        {
            foreach (var v in values) v.Dispose();
            throw;
        }
    }

    /// <summary>
    /// One Run of <paramref name="session"/> (this model or a part of it), with ONNX Runtime's errors naming the model;
    /// counted in <see cref="RunCalls"/> and <see cref="ForwardPasses"/> unless it is a check, not work.
    /// </summary>
    internal IDisposableReadOnlyCollection<OrtValue> RunModel(InferenceSession session, IReadOnlyCollection<string> names, IReadOnlyCollection<OrtValue> values,
        IReadOnlyCollection<string> outputs, int batch, bool counted = true) =>
        Counted(() => session.Run(_runOptions, names, values, outputs), batch, counted);

    /// <summary>
    /// One Run of <paramref name="session"/> through an IO binding (inputs and outputs bound by the caller, outputs where
    /// they were bound: device memory stays on the device); the outputs in binding order. Counted as <see cref="RunModel"/>.
    /// </summary>
    internal IDisposableReadOnlyCollection<OrtValue> RunBound(InferenceSession session, OrtIoBinding binding, int batch, bool counted = true) =>
        Counted(() =>
        {
            session.RunWithBinding(_runOptions, binding);
            binding.SynchronizeBoundOutputs();   // device outputs complete before another session reads them
            return binding.GetOutputValues();
        }, batch, counted);

    private IDisposableReadOnlyCollection<OrtValue> Counted(Func<IDisposableReadOnlyCollection<OrtValue>> run, int batch, bool counted)
    {
        try
        {
            var results = run();
            if (!counted) return results;
            // Runs may come from several threads (the capture cursor runs the next batch on a worker; ONNX Runtime sessions are thread-safe).
            Interlocked.Increment(ref _runCalls);
            Interlocked.Add(ref _forwardPasses, batch);
            return results;
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxModelException($"ONNX Runtime failed running '{ModelPath ?? "model"}' on a batch of {batch}: {e.Message}", e);
        }
    }

    /// <summary>The options this session's ONNX Runtime sessions are created with.</summary>
    internal SessionOptions SessionOptions => _sessionOptions;

    /// <summary>What this session was created with.</summary>
    internal CaptureOptions Options { get; }

    /// <summary>
    /// Options for another ONNX Runtime session of this model (a part of it) whose Runs use <paramref name="threads"/>
    /// intra-op threads (0: the default); the same device as this session. The caller disposes them.
    /// </summary>
    internal SessionOptions CreatePartOptions(int threads) => CreateSessionOptions(Options with { Threads = threads }, out _, out _);

    // Constant all-ones masks and all-zero means, one array per exact length (ONNX Runtime reads them in place).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, float[]> _ones = new(), _zeros = new();

    private float[] Ones(int n) => _ones.GetOrAdd(n, k => Enumerable.Repeat(1f, k).ToArray());

    private float[] Zeros(int n) => _zeros.GetOrAdd(n, k => new float[k]);

    /// <summary>CPU by default; CUDA when asked and available, else CPU with the reason.</summary>
    public static SessionOptions CreateSessionOptions(CaptureOptions options, out string note) => CreateSessionOptions(options, out note, out _);

    /// <summary>As <see cref="CreateSessionOptions(CaptureOptions, out string)"/>, also saying which CUDA device the options run on (null: the CPU).</summary>
    internal static SessionOptions CreateSessionOptions(CaptureOptions options, out string note, out int? cudaDevice)
    {
        cudaDevice = null;
        var so = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        // Idle ONNX Runtime threads sleep instead of spinning: the capture stage computes features on another thread
        // while the next batch runs, and spinning threads would take its core (measured: bench, docs/PERFORMANCE.md).
        so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        if (options.Threads > 0) so.IntraOpNumThreads = options.Threads;
        note = "CPU";
        if (options.GpuDeviceId is int gpu)
        {
            // ONNX Runtime logs a failed provider load on its own; the note below is the one line the user needs.
            var env = OrtEnv.Instance();
            var level = env.EnvLogLevel;
            env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
            try
            {
                so.AppendExecutionProvider_CUDA(gpu);
                note = $"CUDA device {gpu}";
                cudaDevice = gpu;
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                note = $"CPU (GPU {gpu} was asked for, but {CudaUnavailableReason(e)})";
            }
            finally
            {
                env.EnvLogLevel = level;
            }
        }
        return so;
    }

    /// <summary>Why the CUDA provider did not start, and what to do about it, in one line.</summary>
    private static string CudaUnavailableReason(Exception e)
    {
#if GPU_BUILD
        string first = e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()?.Trim() ?? e.GetType().Name;
        return $"CUDA could not start ({first}); ONNX Runtime 1.31's CUDA provider needs CUDA 13 (libcudart.so.13, libcublas.so.13) and cuDNN 9 on the library path";
#else
        _ = e;
        return "this is the CPU build, which has no CUDA provider: build with -p:Gpu=true (Microsoft.ML.OnnxRuntime.Gpu 1.31.0; CUDA 13 and cuDNN 9 at run time)";
#endif
    }

    private static OnnxModel LoadModel(string path) => OnnxModel.Load(path);

    /// <inheritdoc/>
    public void Dispose()
    {
        _session?.Dispose();
        _sessionOptions.Dispose();
        _runOptions.Dispose();
    }
}
