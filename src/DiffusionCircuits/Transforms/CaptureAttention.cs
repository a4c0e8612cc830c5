using DiffusionCircuits.Capture;
using DiffusionCircuits.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// Runs the noisy images of each row through an instrumented copy of the denoiser, in batches (one ONNX Runtime Run
/// per batch rather than ML.NET's one per row), and adds: <c>PredictedNoise</c> (float [C, H, W]), <c>LossMse</c>
/// (mean squared error against the <c>Noise</c> column; NaN without one), and one column per attention layer,
/// <c>Attention.&lt;layer&gt;</c> (float [H, S_q, S_k]), annotated with its token grid and whether it is cross-attention.
/// Maps are copied out only for the layers a downstream stage reads, so memory stays at one batch.
/// </summary>
public sealed class AttentionCaptureEstimator : IEstimator<ITransformer>
{
    private readonly string _modelPath;
    private readonly CaptureOptions _options;
    private readonly int _batchSize;
    private readonly string _noisyColumn, _timestepColumn;

    /// <summary>Captures through the model at <paramref name="modelPath"/>, <paramref name="batchSize"/> rows per ONNX Runtime run, from the noisy and timestep columns named.</summary>
    public AttentionCaptureEstimator(string modelPath, CaptureOptions? options = null, int batchSize = 32,
        string noisyColumnName = "Noisy", string timestepColumnName = DiffusionNoiseTransformer.TimestepColumn)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "Batch size must be at least 1.");
        (_modelPath, _options, _batchSize, _noisyColumn, _timestepColumn) = (modelPath, options ?? new CaptureOptions(), batchSize, noisyColumnName, timestepColumnName);
    }

    /// <summary>Loads, inspects and instruments the model (the data is only checked for the needed columns).</summary>
    public ITransformer Fit(IDataView input)
    {
        var transformer = new AttentionCaptureTransformer(new AttentionCaptureSession(_modelPath, _options), _batchSize, _noisyColumn, _timestepColumn);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaShapes.Require(inputSchema, _noisyColumn, "CaptureAttention");
        SchemaShapes.Require(inputSchema, _timestepColumn, "CaptureAttention");
        using var session = new AttentionCaptureSession(_modelPath, _options);
        return SchemaShapes.With(inputSchema, AttentionCaptureTransformer.OutputColumns(session).Select(c => (c.Name, c.Type)));
    }
}

/// <summary>
/// The fitted capture stage: holds the ONNX Runtime session. Dispose it when done. <see cref="ITransformer.Transform"/>
/// runs rows in batches; as a row-to-row mapping (a prediction engine) it runs one row per ONNX Runtime run.
/// </summary>
public sealed class AttentionCaptureTransformer : ITransformer, IDisposable
{
    /// <summary>Predicted noise eps_hat, float [C, H, W].</summary>
    public const string PredictedNoiseColumn = "PredictedNoise";
    /// <summary>Mean squared error of eps_hat against the Noise column (NaN without one).</summary>
    public const string LossColumn = "LossMse";
    /// <summary>Prefix of the per-layer map columns: Attention.&lt;layer&gt;, float [H, S_q, S_k].</summary>
    public const string AttentionPrefix = "Attention.";
    /// <summary>Annotation of a map column: its token grid (height, width).</summary>
    public const string TokenGridAnnotation = "TokenGrid";
    /// <summary>Annotation of a map column: whether its keys are conditioning tokens.</summary>
    public const string CrossAttentionAnnotation = "IsCrossAttention";

    private readonly int _batchSize;
    private readonly string _noisyColumn, _timestepColumn;

    /// <summary>The fitted stage around an open session.</summary>
    public AttentionCaptureTransformer(AttentionCaptureSession session, int batchSize = 32, string noisyColumnName = "Noisy", string timestepColumnName = DiffusionNoiseTransformer.TimestepColumn)
    {
        Session = session;
        // Rows reach the stage in any timestep order; a model with a scalar timestep can only run rows of one timestep
        // together, so it runs row by row here (the analysis' own extractor groups rows by timestep instead).
        (_batchSize, _noisyColumn, _timestepColumn) = (session.ScalarTimestep ? 1 : batchSize, noisyColumnName, timestepColumnName);
    }

    /// <summary>The ONNX Runtime session it runs.</summary>
    public AttentionCaptureSession Session { get; }
    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <summary>The column holding a layer's maps.</summary>
    public static string MapsColumn(AttentionLayer layer) => AttentionPrefix + layer.Name;

    internal static IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations? Annotations)> OutputColumns(AttentionCaptureSession s)
    {
        var list = new List<(string, DataViewType, DataViewSchema.Annotations?)>
        {
            (PredictedNoiseColumn, new VectorDataViewType(NumberDataViewType.Single, s.Channels, s.Height, s.Width), null),
            (LossColumn, NumberDataViewType.Single, null),
        };
        foreach (var l in s.Layers)
        {
            var ab = new DataViewSchema.Annotations.Builder();
            ab.Add(TokenGridAnnotation, new VectorDataViewType(NumberDataViewType.Int32, 2),
                (ValueGetter<VBuffer<int>>)((ref VBuffer<int> v) => v = new VBuffer<int>(2, new[] { l.GridHeight, l.GridWidth })));
            ab.Add(CrossAttentionAnnotation, BooleanDataViewType.Instance, (ValueGetter<bool>)((ref bool v) => v = l.IsCrossAttention));
            list.Add((MapsColumn(l), new VectorDataViewType(NumberDataViewType.Single, l.Heads, l.QueryTokens, l.KeyTokens), ab.ToAnnotations()));
        }
        return list;
    }

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => new CaptureView(this, new EmptyView(inputSchema)).Schema;
    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        var schema = new CaptureView(this, new EmptyView(inputSchema)).Schema;   // checks the input columns
        var outputs = OutputColumns(Session).Select(o => new MappedColumn(o.Name, o.Type, o.Annotations)).ToList();
        var inputs = new List<string> { _noisyColumn, _timestepColumn };
        if (inputSchema.GetColumnOrNull(DiffusionNoiseTransformer.NoiseColumn) != null) inputs.Add(DiffusionNoiseTransformer.NoiseColumn);
        return new RowToRowMapping(inputSchema, outputs, inputs, _ => new RowMapper(this));
    }

    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelFormat.Refused("CaptureAttention", "the model path and capture options");
    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new CaptureView(this, input);
    /// <inheritdoc/>
    public void Dispose() => Session.Dispose();

    /// <summary>One row per ONNX Runtime run, for prediction engines (Transform batches rows instead).</summary>
    private sealed class RowMapper(AttentionCaptureTransformer t) : IRowMapper
    {
        private VBuffer<float> _noisy, _noise;
        private float[] _predicted = Array.Empty<float>();
        private float[][] _maps = Array.Empty<float[]>();
        private float _loss;

        public void Compute(DataViewRow input)
        {
            var session = t.Session;
            int timestep = 0;
            input.GetGetter<VBuffer<float>>(input.Schema[t._noisyColumn])(ref _noisy);
            input.GetGetter<int>(input.Schema[t._timestepColumn])(ref timestep);
            using var batch = session.Run(_noisy.DenseValues().ToArray(), new[] { timestep });
            _predicted = batch.PredictedNoise(0).ToArray();
            _maps = session.ExposesMaps ? session.Layers.Select((_, l) => batch.Maps(l, 0).ToArray()).ToArray() : Array.Empty<float[]>();
            _loss = float.NaN;
            if (input.Schema.GetColumnOrNull(DiffusionNoiseTransformer.NoiseColumn) is { } noise)
            {
                input.GetGetter<VBuffer<float>>(noise)(ref _noise);
                _loss = NoiseLoss.MeanSquaredError(_predicted, _noise.DenseValues().ToArray());
            }
        }

        public void Get<T>(int index, ref T value)
        {
            if (index == 1)
            {
                value = (T)(object)_loss;
                return;
            }
            var v = (VBuffer<float>)(object)value!;
            Buffers.CopyTo<float>(index == 0 ? _predicted : _maps[index - 2], ref v);
            value = (T)(object)v;
        }
    }

    private sealed class CaptureView : IDataView
    {
        private readonly AttentionCaptureTransformer _t;
        private readonly IDataView _input;
        private readonly IReadOnlyList<(string Name, DataViewType Type, DataViewSchema.Annotations? Annotations)> _outputs;

        public CaptureView(AttentionCaptureTransformer t, IDataView input)
        {
            (_t, _input) = (t, input);
            var noisy = SchemaShapes.Require(input.Schema, t._noisyColumn, "CaptureAttention");
            SchemaShapes.Require(input.Schema, t._timestepColumn, "CaptureAttention");
            if (noisy.Type is not VectorDataViewType v || v.Size != t.Session.SampleLength)
                throw new ArgumentOutOfRangeException(nameof(input), $"Column '{t._noisyColumn}' must hold {t.Session.Channels}x{t.Session.Height}x{t.Session.Width} floats for this model (it is {noisy.Type}).");
            _outputs = OutputColumns(t.Session);
            var b = new DataViewSchema.Builder();
            foreach (var c in input.Schema.Where(c => !c.IsHidden && _outputs.All(o => o.Name != c.Name))) b.AddColumn(c.Name, c.Type, c.Annotations);
            foreach (var o in _outputs) b.AddColumn(o.Name, o.Type, o.Annotations);
            Schema = b.ToSchema();
        }

        public bool CanShuffle => false;
        public DataViewSchema Schema { get; }
        public long? GetRowCount() => _input.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            var needed = columnsNeeded.Select(c => c.Name).ToHashSet();
            var inputNames = needed.Where(n => _outputs.All(o => o.Name != n)).ToHashSet();
            var follower = _input.GetRowCursor(_input.Schema.Where(c => inputNames.Contains(c.Name)));
            bool anyOutput = _outputs.Any(o => needed.Contains(o.Name));
            DataViewRowCursor? leader = null;
            if (anyOutput)
            {
                var leadNames = new HashSet<string> { _t._noisyColumn, _t._timestepColumn };
                if (_input.Schema.GetColumnOrNull(DiffusionNoiseTransformer.NoiseColumn) != null) leadNames.Add(DiffusionNoiseTransformer.NoiseColumn);
                leader = _input.GetRowCursor(_input.Schema.Where(c => leadNames.Contains(c.Name)));
            }
            return new Cursor(this, follower, leader, needed);
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

        /// <summary>
        /// A leader cursor reads a batch ahead and runs it; the follower serves pass-through columns in step. While the
        /// rows of one batch are consumed (features computed downstream), ONNX Runtime already runs the next one on a
        /// worker thread, so feature work overlaps the model's instead of adding to it. Two slots alternate.
        /// </summary>
        private sealed class Cursor : DataViewRowCursor, ISpanSource
        {
            private readonly CaptureView _view;
            private readonly DataViewRowCursor _follower;
            private readonly DataViewRowCursor? _leader;
            private readonly HashSet<string> _active;
            private readonly ValueGetter<VBuffer<float>>? _noisyGetter, _noiseGetter;
            private readonly ValueGetter<int>? _timestepGetter;
            private readonly Slot[] _slots;
            private VBuffer<float> _buffer;
            private Slot? _current, _pending;
            private int _row, _count, _nextSlot;

            /// <summary>One batch's inputs, its run (in flight or done) and its outputs.</summary>
            private sealed class Slot(int batch, int len)
            {
                public readonly float[] Noisy = new float[batch * len], Noise = new float[batch * len];
                public readonly int[] Timesteps = new int[batch];
                public readonly bool[] HasNoise = new bool[batch];
                public int Count;
                public Task<CaptureBatch>? Run;
                public CaptureBatch? Batch;
            }

            public Cursor(CaptureView view, DataViewRowCursor follower, DataViewRowCursor? leader, HashSet<string> active)
            {
                (_view, _follower, _leader, _active) = (view, follower, leader, active);
                int b = view._t._batchSize, len = view._t.Session.SampleLength;
                _slots = leader == null ? Array.Empty<Slot>() : new[] { new Slot(b, len), new Slot(b, len) };
                if (leader != null)
                {
                    _noisyGetter = leader.GetGetter<VBuffer<float>>(leader.Schema[view._t._noisyColumn]);
                    _timestepGetter = leader.GetGetter<int>(leader.Schema[view._t._timestepColumn]);
                    var noise = leader.Schema.GetColumnOrNull(DiffusionNoiseTransformer.NoiseColumn);
                    if (noise != null) _noiseGetter = leader.GetGetter<VBuffer<float>>(noise.Value);
                }
            }

            public override DataViewSchema Schema => _view.Schema;
            public override long Position => _follower.Position;
            public override long Batch => 0;
            public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Name);
            public override ValueGetter<DataViewRowId> GetIdGetter() => _follower.GetIdGetter();

            private CaptureBatch Current => _current!.Batch!;

            public override bool MoveNext()
            {
                if (_leader != null && ++_row >= _count && !NextBatch()) return false;
                return _follower.MoveNext();
            }

            private bool NextBatch()
            {
                _current?.Batch?.Dispose();
                if (_current != null) _current.Batch = null;
                if (_pending == null)
                {
                    _pending = Read();
                    if (_pending == null) return false;
                    Launch(_pending);
                }
                // Read the batch after next while the next one runs, so ONNX Runtime never waits for inputs.
                var following = Read();
                _current = _pending;
                _current.Batch = _current.Run!.GetAwaiter().GetResult();   // rethrows the run's own exception
                _current.Run = null;
                if (following != null) Launch(following);
                _pending = following;
                _count = _current.Count;
                _row = 0;
                return true;
            }

            /// <summary>Reads the next batch of rows into the free slot; null at the end.</summary>
            private Slot? Read()
            {
                var slot = _slots[_nextSlot];
                int len = _view._t.Session.SampleLength;
                slot.Count = 0;
                while (slot.Count < _view._t._batchSize && _leader!.MoveNext())
                {
                    int c = slot.Count;
                    _noisyGetter!(ref _buffer);
                    _buffer.GetValues().CopyTo(slot.Noisy.AsSpan(c * len, len));
                    _timestepGetter!(ref slot.Timesteps[c]);
                    slot.HasNoise[c] = _noiseGetter != null;
                    if (_noiseGetter != null)
                    {
                        _noiseGetter(ref _buffer);
                        _buffer.GetValues().CopyTo(slot.Noise.AsSpan(c * len, len));
                    }
                    slot.Count++;
                }
                if (slot.Count == 0) return null;
                _nextSlot = 1 - _nextSlot;
                return slot;
            }

            /// <summary>Starts a slot's run on a worker thread.</summary>
            private void Launch(Slot slot)
            {
                var session = _view._t.Session;
                int len = session.SampleLength;
                var noisy = slot.Count == _view._t._batchSize ? slot.Noisy : slot.Noisy[..(slot.Count * len)];
                var timesteps = slot.Timesteps[..slot.Count];
                slot.Run = Task.Run(() => session.Run(noisy, timesteps));
            }

            public bool TryGetSpan(string column, out ReadOnlySpan<float> values)
            {
                values = default;
                if (_leader == null || _current?.Batch == null) return false;
                var layers = _view._t.Session.Layers;
                for (int l = 0; l < layers.Count; l++)
                    if (column == MapsColumn(layers[l]))
                    {
                        values = Current.Maps(l, _row);
                        return true;
                    }
                return false;
            }

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                var session = _view._t.Session;
                if (column.Name == PredictedNoiseColumn)
                    return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Buffers.CopyTo(Current.PredictedNoise(_row), ref v));
                if (column.Name == LossColumn)
                    return (ValueGetter<TValue>)(Delegate)(ValueGetter<float>)((ref float v) =>
                    {
                        if (!_current!.HasNoise[_row]) { v = float.NaN; return; }
                        int len = session.SampleLength;
                        v = NoiseLoss.MeanSquaredError(Current.PredictedNoise(_row), _current.Noise.AsSpan(_row * len, len));
                    });
                for (int l = 0; l < session.Layers.Count; l++)
                    if (column.Name == MapsColumn(session.Layers[l]))
                    {
                        int layer = l;
                        return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Buffers.CopyTo(Current.Maps(layer, _row), ref v));
                    }
                return _follower.GetGetter<TValue>(_follower.Schema[column.Name]);
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    _current?.Batch?.Dispose();
                    if (_pending?.Run != null)
                    {
                        // A run still in flight owns ONNX Runtime buffers: wait for it and release them.
                        try { _pending.Run.GetAwaiter().GetResult().Dispose(); }
                        catch (Exception) { }
                    }
                    _leader?.Dispose();
                    _follower.Dispose();
                }
                base.Dispose(disposing);
            }
        }
    }
}
