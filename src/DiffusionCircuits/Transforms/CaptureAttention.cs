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

    public AttentionCaptureEstimator(string modelPath, CaptureOptions? options = null, int batchSize = 32,
        string noisyColumn = "Noisy", string timestepColumn = DiffusionNoiseTransformer.TimestepColumn)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "Batch size must be at least 1.");
        (_modelPath, _options, _batchSize, _noisyColumn, _timestepColumn) = (modelPath, options ?? new CaptureOptions(), batchSize, noisyColumn, timestepColumn);
    }

    /// <summary>Loads, inspects and instruments the model (the data is only checked for the needed columns).</summary>
    public ITransformer Fit(IDataView input)
    {
        var transformer = new AttentionCaptureTransformer(new AttentionCaptureSession(_modelPath, _options), _batchSize, _noisyColumn, _timestepColumn);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaShapes.Require(inputSchema, _noisyColumn, "CaptureAttention");
        SchemaShapes.Require(inputSchema, _timestepColumn, "CaptureAttention");
        using var session = new AttentionCaptureSession(_modelPath, _options);
        return SchemaShapes.With(inputSchema, AttentionCaptureTransformer.OutputColumns(session).Select(c => (c.Name, c.Type)));
    }
}

/// <summary>The fitted capture stage: holds the ONNX Runtime session. Dispose it when done.</summary>
public sealed class AttentionCaptureTransformer : ITransformer, IDisposable
{
    public const string PredictedNoiseColumn = "PredictedNoise", LossColumn = "LossMse", AttentionPrefix = "Attention.";
    public const string TokenGridAnnotation = "TokenGrid", CrossAttentionAnnotation = "IsCrossAttention";

    private readonly int _batchSize;
    private readonly string _noisyColumn, _timestepColumn;

    public AttentionCaptureTransformer(AttentionCaptureSession session, int batchSize = 32, string noisyColumn = "Noisy", string timestepColumn = DiffusionNoiseTransformer.TimestepColumn)
    {
        Session = session;
        (_batchSize, _noisyColumn, _timestepColumn) = (batchSize, noisyColumn, timestepColumn);
    }

    public AttentionCaptureSession Session { get; }
    public bool IsRowToRowMapper => false;

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

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => new CaptureView(this, new EmptyView(inputSchema)).Schema;
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException("CaptureAttention batches rows; use Transform.");
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException("DiffusionCircuits stages are not saved with ML.NET's model format; keep the model path and options instead.");
    public IDataView Transform(IDataView input) => new CaptureView(this, input);
    public void Dispose() => Session.Dispose();

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

        /// <summary>A leader cursor reads a batch ahead and runs it; the follower serves pass-through columns in step.</summary>
        private sealed class Cursor : DataViewRowCursor
        {
            private readonly CaptureView _view;
            private readonly DataViewRowCursor _follower;
            private readonly DataViewRowCursor? _leader;
            private readonly HashSet<string> _active;
            private readonly ValueGetter<VBuffer<float>>? _noisyGetter, _noiseGetter;
            private readonly ValueGetter<int>? _timestepGetter;
            private readonly float[] _noisy, _noise;
            private readonly int[] _timesteps;
            private readonly bool[] _hasNoise;
            private VBuffer<float> _buffer;
            private CaptureBatch? _batch;
            private int _row, _count;

            public Cursor(CaptureView view, DataViewRowCursor follower, DataViewRowCursor? leader, HashSet<string> active)
            {
                (_view, _follower, _leader, _active) = (view, follower, leader, active);
                int b = view._t._batchSize, len = view._t.Session.SampleLength;
                _noisy = new float[b * len];
                _noise = new float[b * len];
                _timesteps = new int[b];
                _hasNoise = new bool[b];
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

            public override bool MoveNext()
            {
                if (_leader != null && ++_row >= _count && !NextBatch()) return false;
                return _follower.MoveNext();
            }

            private bool NextBatch()
            {
                _batch?.Dispose();
                _batch = null;
                int len = _view._t.Session.SampleLength;
                _count = 0;
                while (_count < _view._t._batchSize && _leader!.MoveNext())
                {
                    _noisyGetter!(ref _buffer);
                    _buffer.GetValues().CopyTo(_noisy.AsSpan(_count * len, len));
                    _timestepGetter!(ref _timesteps[_count]);
                    _hasNoise[_count] = _noiseGetter != null;
                    if (_noiseGetter != null)
                    {
                        _noiseGetter(ref _buffer);
                        _buffer.GetValues().CopyTo(_noise.AsSpan(_count * len, len));
                    }
                    _count++;
                }
                if (_count == 0) return false;
                var noisy = _count == _view._t._batchSize ? _noisy : _noisy[..(_count * len)];
                _batch = _view._t.Session.Run(noisy, _timesteps[.._count]);
                _row = 0;
                return true;
            }

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                var session = _view._t.Session;
                if (column.Name == PredictedNoiseColumn)
                    return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Buffers.CopyTo(_batch!.PredictedNoise(_row), ref v));
                if (column.Name == LossColumn)
                    return (ValueGetter<TValue>)(Delegate)(ValueGetter<float>)((ref float v) =>
                    {
                        if (!_hasNoise[_row]) { v = float.NaN; return; }
                        int len = session.SampleLength;
                        var predicted = _batch!.PredictedNoise(_row);
                        var eps = _noise.AsSpan(_row * len, len);
                        double sum = 0;
                        for (int i = 0; i < len; i++) sum += (predicted[i] - eps[i]) * (predicted[i] - eps[i]);
                        v = (float)(sum / len);
                    });
                for (int l = 0; l < session.Layers.Count; l++)
                    if (column.Name == MapsColumn(session.Layers[l]))
                    {
                        int layer = l;
                        return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Buffers.CopyTo(_batch!.Maps(layer, _row), ref v));
                    }
                return _follower.GetGetter<TValue>(_follower.Schema[column.Name]);
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    _batch?.Dispose();
                    _leader?.Dispose();
                    _follower.Dispose();
                }
                base.Dispose(disposing);
            }
        }
    }
}
