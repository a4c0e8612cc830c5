using DiffusionCircuits.Capture;
using DiffusionCircuits.Analysis;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// Ablation scoring as a pipeline stage: for each row (a noisy image x_t with its noise eps and timestep) it runs the
/// intact model and the model with each condition's heads zero-ablated, all in one batch (one ONNX Runtime Run per row
/// instead of one per condition), and adds <c>BaseLossMse</c> (float), <c>AblatedLossMse</c> and
/// <c>DegradationPercent</c> (float [conditions], slot names = condition names; 100 (L_c - L_0) / L_0 for the row).
/// Conditions default to every head alone. Aggregate degradations over rows with sums of losses (METHOD.md section 5).
/// </summary>
public sealed class HeadAblationEstimator : IEstimator<ITransformer>
{
    private readonly string _modelPath;
    private readonly IReadOnlyList<AblationCondition>? _conditions;
    private readonly CaptureOptions _options;
    private readonly string _noisyColumn;

    /// <summary>
    /// Scores <paramref name="conditions"/> (every head alone when null) with the model at <paramref name="modelPath"/>,
    /// on x_t from <paramref name="noisyColumnName"/> with the <c>Noise</c> and <c>Timestep</c> columns of AddDiffusionNoise.
    /// </summary>
    public HeadAblationEstimator(string modelPath, IReadOnlyList<AblationCondition>? conditions = null, CaptureOptions? options = null, string noisyColumnName = "Noisy")
    {
        _modelPath = modelPath;
        _conditions = conditions;
        _options = (options ?? new CaptureOptions()) with { ExposeMaps = false };
        _noisyColumn = noisyColumnName;
    }

    /// <inheritdoc/>
    public ITransformer Fit(IDataView input)
    {
        var session = new AttentionCaptureSession(_modelPath, _options);
        var transformer = new HeadAblationTransformer(session, _conditions ?? AblationSweep.SingleHeads(session), _noisyColumn);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        foreach (var c in new[] { _noisyColumn, DiffusionNoiseTransformer.NoiseColumn, DiffusionNoiseTransformer.TimestepColumn })
            SchemaShapes.Require(inputSchema, c, "ScoreHeadAblation");
        return SchemaShapes.With(inputSchema, new[]
        {
            SchemaShapes.Column(HeadAblationTransformer.BaseLossColumn, NumberDataViewType.Single),
            SchemaShapes.Vector(HeadAblationTransformer.AblatedLossColumn, NumberDataViewType.Single),
            SchemaShapes.Vector(HeadAblationTransformer.DegradationColumn, NumberDataViewType.Single),
        });
    }
}

/// <summary>The fitted ablation stage; holds the ONNX Runtime session. Dispose it when done.</summary>
public sealed class HeadAblationTransformer : ITransformer, IDisposable
{
    /// <summary>Loss of the intact model (float).</summary>
    public const string BaseLossColumn = "BaseLossMse";
    /// <summary>Loss under each condition, float [conditions].</summary>
    public const string AblatedLossColumn = "AblatedLossMse";
    /// <summary>100 (L_c - L_0) / L_0 per condition, float [conditions].</summary>
    public const string DegradationColumn = "DegradationPercent";

    private readonly string _noisyColumn;

    /// <summary>The fitted stage around an open session, reading x_t from <paramref name="noisyColumnName"/>.</summary>
    public HeadAblationTransformer(AttentionCaptureSession session, IReadOnlyList<AblationCondition> conditions, string noisyColumnName = "Noisy")
    {
        Session = session;
        Conditions = conditions;
        _noisyColumn = noisyColumnName;
    }

    /// <summary>The ONNX Runtime session it runs.</summary>
    public AttentionCaptureSession Session { get; }
    /// <summary>The conditions scored, in slot order.</summary>
    public IReadOnlyList<AblationCondition> Conditions { get; }
    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Build(new EmptyView(inputSchema)).Schema;
    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Build(new EmptyView(inputSchema)).AsRowToRowMapper();
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelFormat.Refused("ScoreHeadAblation", "the model path and conditions");
    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => Build(input);
    /// <inheritdoc/>
    public void Dispose() => Session.Dispose();

    private MappedDataView Build(IDataView input)
    {
        foreach (var c in new[] { _noisyColumn, DiffusionNoiseTransformer.NoiseColumn, DiffusionNoiseTransformer.TimestepColumn })
            SchemaShapes.Require(input.Schema, c, "ScoreHeadAblation");
        int n = Conditions.Count;
        var names = Conditions.Select(c => c.Name.AsMemory()).ToArray();
        var ab = new DataViewSchema.Annotations.Builder();
        ab.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, n),
            (ValueGetter<VBuffer<ReadOnlyMemory<char>>>)((ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(n, names)));
        var annotations = ab.ToAnnotations();
        var outputs = new[]
        {
            new MappedColumn(BaseLossColumn, NumberDataViewType.Single),
            new MappedColumn(AblatedLossColumn, new VectorDataViewType(NumberDataViewType.Single, n), annotations),
            new MappedColumn(DegradationColumn, new VectorDataViewType(NumberDataViewType.Single, n), annotations),
        };
        return new MappedDataView(input, outputs, new[] { _noisyColumn, DiffusionNoiseTransformer.NoiseColumn, DiffusionNoiseTransformer.TimestepColumn },
            _ => new Mapper(this));
    }

    private sealed class Mapper(HeadAblationTransformer t) : IRowMapper
    {
        // One batch per row: the intact model and every condition (per-sample masks).
        private readonly AblationSweep _sweep = new(t.Session, Array.Empty<int>(), seed: 0, batchSize: t.Conditions.Count + 1);
        private VBuffer<float> _noisy, _noise;
        private float _base;
        private readonly float[] _ablated = new float[t.Conditions.Count], _degradation = new float[t.Conditions.Count];

        public void Compute(DataViewRow input)
        {
            int timestep = 0;
            input.GetGetter<VBuffer<float>>(input.Schema[t._noisyColumn])(ref _noisy);
            input.GetGetter<VBuffer<float>>(input.Schema[DiffusionNoiseTransformer.NoiseColumn])(ref _noise);
            input.GetGetter<int>(input.Schema[DiffusionNoiseTransformer.TimestepColumn])(ref timestep);
            var losses = _sweep.ScoreRows(_noisy.DenseValues().ToArray(), _noise.DenseValues().ToArray(), new[] { timestep }, t.Conditions)[0];
            _base = losses[0];
            for (int c = 0; c < _ablated.Length; c++)
            {
                _ablated[c] = losses[c + 1];
                _degradation[c] = 100f * (losses[c + 1] - losses[0]) / losses[0];
            }
        }

        public void Get<T>(int index, ref T value)
        {
            if (index == 0)
            {
                value = (T)(object)_base;
                return;
            }
            var v = (VBuffer<float>)(object)value!;
            Buffers.CopyTo<float>(index == 1 ? _ablated : _degradation, ref v);
            value = (T)(object)v;
        }
    }
}
