using DiffusionCircuits.Diffusion;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// Forward noising as a pipeline stage: each input row (a clean image x0 in [0, 1]) becomes one row per timestep with
/// <c>Timestep</c> (int), <c>Noise</c> (the paired seeded eps) and the noisy image x_t in [-1, 1]. Noise depends only on
/// (seed, image id, timestep), so baseline and ablated runs of the same image see the same eps.
/// </summary>
public sealed class DiffusionNoiseEstimator : IEstimator<ITransformer>
{
    private readonly DiffusionNoiseTransformer _transformer;

    /// <summary>Noises <paramref name="inputColumnName"/> into <paramref name="outputColumnName"/> at each timestep with paired noise of <paramref name="seed"/>.</summary>
    public DiffusionNoiseEstimator(string outputColumnName = "Noisy", string inputColumnName = FaceImageDataView.ImageColumn,
        IReadOnlyList<int>? timesteps = null, int seed = 1, NoiseSchedule? schedule = null) =>
        _transformer = new DiffusionNoiseTransformer(outputColumnName, inputColumnName, timesteps ?? new[] { 50, 200, 400, 600, 800 }, seed, schedule ?? NoiseSchedule.Linear());

    /// <inheritdoc/>
    public ITransformer Fit(IDataView input)
    {
        _transformer.GetOutputSchema(input.Schema);
        return _transformer;
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaShapes.Require(inputSchema, _transformer.InputColumn, "AddDiffusionNoise");
        // Noise and x_t have the clean image's size.
        return SchemaShapes.With(inputSchema, new[]
        {
            SchemaShapes.Column(DiffusionNoiseTransformer.TimestepColumn, NumberDataViewType.Int32),
            SchemaShapes.Vector(DiffusionNoiseTransformer.NoiseColumn, NumberDataViewType.Single),
            SchemaShapes.Vector(_transformer.OutputColumn, NumberDataViewType.Single),
        });
    }
}

/// <summary>The fitted noising stage (stateless). It makes one row per input row and timestep, so it is not a row-to-row mapping.</summary>
public sealed class DiffusionNoiseTransformer : ITransformer
{
    /// <summary>The row's timestep t (int).</summary>
    public const string TimestepColumn = "Timestep";
    /// <summary>The row's paired noise eps, float [3, H, W].</summary>
    public const string NoiseColumn = "Noise";

    /// <summary>The fitted (stateless) noising stage.</summary>
    public DiffusionNoiseTransformer(string outputColumn, string inputColumn, IReadOnlyList<int> timesteps, int seed, NoiseSchedule schedule)
    {
        if (timesteps.Count == 0) throw new ArgumentException("At least one timestep.", nameof(timesteps));
        foreach (var t in timesteps)
            if (t < 0 || t >= schedule.Timesteps) throw new ArgumentOutOfRangeException(nameof(timesteps), t, $"Timesteps must be in 0..{schedule.Timesteps - 1}.");
        (OutputColumn, InputColumn, Timesteps, Seed, Schedule) = (outputColumn, inputColumn, timesteps.ToArray(), seed, schedule);
    }

    /// <summary>The noisy column written.</summary>
    public string OutputColumn { get; }
    /// <summary>The clean-image column read.</summary>
    public string InputColumn { get; }
    /// <summary>Timesteps: one output row per input row and timestep.</summary>
    public IReadOnlyList<int> Timesteps { get; }
    /// <summary>Seed of the paired noise.</summary>
    public int Seed { get; }
    /// <summary>The noise schedule.</summary>
    public NoiseSchedule Schedule { get; }
    /// <inheritdoc/>
    public bool IsRowToRowMapper => false;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => new NoisedView(this, new EmptyView(inputSchema)).Schema;
    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException(
        "AddDiffusionNoise makes one row per timestep, so a prediction engine cannot map through it: give the engine x_t, its noise and timestep " +
        "(ForwardNoising.ApplyPaired) and start its pipeline at CaptureAttention.");
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelFormat.Refused("AddDiffusionNoise", "its timesteps, seed and schedule");
    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new NoisedView(this, input);

    private sealed class NoisedView : IDataView
    {
        private readonly DiffusionNoiseTransformer _t;
        private readonly IDataView _input;
        private readonly DataViewSchema.Column _image;
        private readonly int _length;

        public NoisedView(DiffusionNoiseTransformer t, IDataView input)
        {
            (_t, _input) = (t, input);
            _image = SchemaShapes.Require(input.Schema, t.InputColumn, "AddDiffusionNoise");
            if (_image.Type is not VectorDataViewType { ItemType: NumberDataViewType } v || !v.IsKnownSize || v.ItemType != NumberDataViewType.Single)
                throw new ArgumentOutOfRangeException(nameof(input), $"Column '{t.InputColumn}' must be a known-size float vector (an image).");
            _length = v.Size;
            var dims = v.Dimensions.ToArray();
            var b = new DataViewSchema.Builder();
            var added = new[] { TimestepColumn, NoiseColumn, t.OutputColumn };
            foreach (var c in input.Schema.Where(c => !c.IsHidden && !added.Contains(c.Name))) b.AddColumn(c.Name, c.Type, c.Annotations);
            b.AddColumn(TimestepColumn, NumberDataViewType.Int32);
            b.AddColumn(NoiseColumn, new VectorDataViewType(NumberDataViewType.Single, dims));
            b.AddColumn(t.OutputColumn, new VectorDataViewType(NumberDataViewType.Single, dims));
            Schema = b.ToSchema();
        }

        public bool CanShuffle => false;
        public DataViewSchema Schema { get; }
        public long? GetRowCount() => _input.GetRowCount() * _t.Timesteps.Count;

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            var needed = columnsNeeded.Select(c => c.Name).ToHashSet();
            var inputNames = needed.Where(n => _input.Schema.GetColumnOrNull(n) != null).ToHashSet();
            inputNames.Add(_t.InputColumn);
            if (_input.Schema.GetColumnOrNull(FaceImageDataView.IdColumn) != null) inputNames.Add(FaceImageDataView.IdColumn);
            return new Cursor(this, _input.GetRowCursor(_input.Schema.Where(c => inputNames.Contains(c.Name))), needed);
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

        private sealed class Cursor : DataViewRowCursor
        {
            private readonly NoisedView _view;
            private readonly DataViewRowCursor _input;
            private readonly HashSet<string> _active;
            private readonly ValueGetter<VBuffer<float>> _imageGetter;
            private readonly ValueGetter<ReadOnlyMemory<char>>? _idGetter;
            private VBuffer<float> _clean;
            private readonly float[] _noise, _noisy;
            private int _k = -1;
            private long _position = -1, _noiseFor = -1;

            public Cursor(NoisedView view, DataViewRowCursor input, HashSet<string> active)
            {
                (_view, _input, _active) = (view, input, active);
                _imageGetter = input.GetGetter<VBuffer<float>>(input.Schema[view._t.InputColumn]);
                var id = input.Schema.GetColumnOrNull(FaceImageDataView.IdColumn);
                _idGetter = id != null ? input.GetGetter<ReadOnlyMemory<char>>(id.Value) : null;
                _noise = new float[view._length];
                _noisy = new float[view._length];
            }

            public override DataViewSchema Schema => _view.Schema;
            public override long Position => _position;
            public override long Batch => 0;
            public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Name);
            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

            private bool _done;

            public override bool MoveNext()
            {
                if (_done) return false;
                if (_k < 0 || ++_k >= _view._t.Timesteps.Count)
                {
                    if (!_input.MoveNext())
                    {
                        _done = true;
                        return false;
                    }
                    _k = 0;
                    _imageGetter(ref _clean);
                }
                _position++;
                return true;
            }

            private void EnsureNoise()
            {
                if (_noiseFor == _position) return;
                string id = "row" + _input.Position;
                if (_idGetter != null)
                {
                    ReadOnlyMemory<char> text = default;
                    _idGetter(ref text);
                    id = text.ToString();
                }
                int t = _view._t.Timesteps[_k];
                PairedNoise.Fill(_noise, _view._t.Seed, id, t);
                ForwardNoising.Apply(_clean.GetValues(), _noise, _view._t.Schedule, t, _noisy);
                _noiseFor = _position;
            }

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                var t = _view._t;
                if (column.Name == TimestepColumn) return (ValueGetter<TValue>)(Delegate)(ValueGetter<int>)((ref int v) => v = t.Timesteps[_k]);
                if (column.Name == NoiseColumn) return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => { EnsureNoise(); Buffers.CopyTo<float>(_noise, ref v); });
                if (column.Name == t.OutputColumn) return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => { EnsureNoise(); Buffers.CopyTo<float>(_noisy, ref v); });
                if (column.Name == t.InputColumn) return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => _clean.CopyTo(ref v));
                return _input.GetGetter<TValue>(_input.Schema[column.Name]);
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing) _input.Dispose();
                base.Dispose(disposing);
            }
        }
    }
}
