using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// One row per head from the feature rows (one per image and timestep) of <c>AttentionEntropy</c>,
/// <c>AttentionProbes</c> and optionally <c>ScoreHeadAblation</c>: <c>Head</c> (text), <c>Probes</c> (float
/// [<see cref="HeadRoles.Probes"/>.Length] in that order: each probe's mean over rows, importance the single-head
/// degradation % of METHOD.md 5 when the ablation columns are there, NaN where not measured) and
/// <c>IsCrossAttention</c> (bool). The input of <c>ClusterHeadRoles</c>.
/// </summary>
public sealed class HeadSummaryEstimator(string probeColumnNamePrefix = "") : IEstimator<ITransformer>
{
    /// <inheritdoc/>
    public ITransformer Fit(IDataView input)
    {
        var transformer = new HeadSummaryTransformer(probeColumnNamePrefix);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaShapes.Require(inputSchema, probeColumnNamePrefix + nameof(HeadFeature.NormalizedEntropy), "SummarizeHeads");
        return new SchemaShape(new[]
        {
            SchemaShapes.Column(HeadSummaryTransformer.HeadColumn, TextDataViewType.Instance),
            SchemaShapes.Vector(HeadSummaryTransformer.ProbesColumn, NumberDataViewType.Single),
            SchemaShapes.Column(HeadSummaryTransformer.CrossAttentionColumn, BooleanDataViewType.Instance),
        });
    }
}

/// <summary>The fitted summary stage (stateless): reads every input row when its output is first read.</summary>
public sealed class HeadSummaryTransformer : ITransformer
{
    /// <summary>The head's name (text), e.g. <c>down.1.attn.h3</c>.</summary>
    public const string HeadColumn = "Head";
    /// <summary>The head's probes, float [<see cref="HeadRoles.Probes"/>.Length] in that order.</summary>
    public const string ProbesColumn = "Probes";
    /// <summary>Whether the head's keys are conditioning tokens (bool).</summary>
    public const string CrossAttentionColumn = "IsCrossAttention";

    private readonly string _prefix;

    internal HeadSummaryTransformer(string probeColumnNamePrefix) => _prefix = probeColumnNamePrefix;

    /// <inheritdoc/>
    public bool IsRowToRowMapper => false;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        Check(inputSchema);
        return HeadTable.Schema(HeadRoles.Probes.Length);
    }

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        throw new NotSupportedException("SummarizeHeads turns all rows into one row per head; use Transform.");

    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelFormat.Refused("SummarizeHeads", "its column-name prefix");

    /// <inheritdoc/>
    public IDataView Transform(IDataView input)
    {
        Check(input.Schema);
        return new HeadTable(() => Summarise(input), HeadRoles.Probes.Length);
    }

    private string Column(RoleProbe probe) => _prefix + probe;

    private void Check(DataViewSchema schema)
    {
        SchemaShapes.Require(schema, Column(RoleProbe.NormalizedEntropy), "SummarizeHeads");
        if (HeadFeatureTransformer.LayersOf(schema).Count == 0)
            throw new ArgumentOutOfRangeException(nameof(schema), "SummarizeHeads needs the Attention.* columns of CaptureAttention (they name the heads).");
    }

    /// <summary>Means of every probe column present over the rows, and importance from the ablation columns.</summary>
    private (string[] Heads, float[][] Probes, bool[] Cross) Summarise(IDataView input)
    {
        var layers = HeadFeatureTransformer.LayersOf(input.Schema);
        var heads = layers.SelectMany(l => Enumerable.Range(0, l.Layer.Heads).Select(h => l.Layer.HeadName(h))).ToArray();
        var cross = layers.SelectMany(l => Enumerable.Repeat(l.Layer.IsCrossAttention, l.Layer.Heads)).ToArray();
        int n = heads.Length, p = HeadRoles.Probes.Length;
        var sums = new double[n, p];
        var counts = new int[n, p];
        var probes = Enum.GetValues<RoleProbe>().Where(r => HeadRoles.FeatureOf(r) != null && input.Schema.GetColumnOrNull(Column(r)) != null).ToList();
        foreach (var probe in probes)
        {
            foreach (var row in input.GetColumn<VBuffer<float>>(Column(probe)))
            {
                var values = row.DenseValues().ToArray();
                if (values.Length != n) throw new InvalidDataException($"Column '{Column(probe)}' has {values.Length} values per row; the Attention.* columns name {n} heads.");
                for (int h = 0; h < n; h++)
                    if (float.IsFinite(values[h]))
                    {
                        sums[h, (int)probe] += values[h];
                        counts[h, (int)probe]++;
                    }
            }
        }
        var importance = Importance(input, heads);
        var table = Enumerable.Range(0, n).Select(h => Enumerable.Range(0, p).Select(j =>
            j == (int)RoleProbe.Importance ? importance?[h] ?? float.NaN : counts[h, j] > 0 ? (float)(sums[h, j] / counts[h, j]) : float.NaN).ToArray()).ToArray();
        return (heads, table, cross);
    }

    /// <summary>
    /// Each head's single-head degradation % (METHOD.md 5: per timestep 100 (sum L_ablated - sum L_base) / sum L_base,
    /// then the mean over timesteps), when ScoreHeadAblation's columns hold one condition per head in head order.
    /// </summary>
    private static float[]? Importance(IDataView input, string[] heads)
    {
        if (input.Schema.GetColumnOrNull(HeadAblationTransformer.AblatedLossColumn) is not { } ablated
            || input.Schema.GetColumnOrNull(HeadAblationTransformer.BaseLossColumn) == null
            || input.Schema.GetColumnOrNull(DiffusionNoiseTransformer.TimestepColumn) == null) return null;
        VBuffer<ReadOnlyMemory<char>> slots = default;
        if (ablated.Annotations.Schema.GetColumnOrNull("SlotNames") == null) return null;
        ablated.Annotations.GetValue("SlotNames", ref slots);
        if (!slots.DenseValues().Select(s => s.ToString()).SequenceEqual(heads)) return null;
        var baseSum = new Dictionary<int, double>();
        var ablatedSum = new Dictionary<int, double[]>();
        using var cursor = input.GetRowCursor(input.Schema.Where(c => c.Name is HeadAblationTransformer.AblatedLossColumn or HeadAblationTransformer.BaseLossColumn
            or DiffusionNoiseTransformer.TimestepColumn));
        var getT = cursor.GetGetter<int>(input.Schema[DiffusionNoiseTransformer.TimestepColumn]);
        var getBase = cursor.GetGetter<float>(input.Schema[HeadAblationTransformer.BaseLossColumn]);
        var getAblated = cursor.GetGetter<VBuffer<float>>(ablated);
        int t = 0;
        float b = 0;
        VBuffer<float> a = default;
        while (cursor.MoveNext())
        {
            getT(ref t);
            getBase(ref b);
            getAblated(ref a);
            baseSum[t] = baseSum.GetValueOrDefault(t) + b;
            var sums = ablatedSum.TryGetValue(t, out var s) ? s : ablatedSum[t] = new double[heads.Length];
            var values = a.DenseValues().ToArray();
            for (int h = 0; h < heads.Length; h++) sums[h] += values[h];
        }
        if (baseSum.Count == 0) return null;
        return Enumerable.Range(0, heads.Length).Select(h => (float)baseSum.Keys.Average(tk => 100 * (ablatedSum[tk][h] - baseSum[tk]) / baseSum[tk])).ToArray();
    }
}

/// <summary>A small in-memory table of heads (computed once, when first read): Head, Probes, IsCrossAttention.</summary>
internal sealed class HeadTable(Func<(string[] Heads, float[][] Probes, bool[] Cross)> compute, int probes) : IDataView
{
    private readonly Lazy<(string[] Heads, float[][] Probes, bool[] Cross)> _rows = new(compute);
    private readonly DataViewSchema _schema = Schema(probes);

    public static DataViewSchema Schema(int probes)
    {
        var b = new DataViewSchema.Builder();
        b.AddColumn(HeadSummaryTransformer.HeadColumn, TextDataViewType.Instance);
        b.AddColumn(HeadSummaryTransformer.ProbesColumn, new VectorDataViewType(NumberDataViewType.Single, probes));
        b.AddColumn(HeadSummaryTransformer.CrossAttentionColumn, BooleanDataViewType.Instance);
        return b.ToSchema();
    }

    public bool CanShuffle => false;
    DataViewSchema IDataView.Schema => _schema;
    public long? GetRowCount() => _rows.IsValueCreated ? _rows.Value.Heads.Length : null;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(_schema, _rows.Value, columnsNeeded.Select(c => c.Name).ToHashSet());

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor(DataViewSchema schema, (string[] Heads, float[][] Probes, bool[] Cross) rows, HashSet<string> active) : DataViewRowCursor
    {
        private int _row = -1;

        public override DataViewSchema Schema => schema;
        public override long Position => _row;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Name);
        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_row, 0);
        public override bool MoveNext() => ++_row < rows.Heads.Length;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => column.Name switch
        {
            HeadSummaryTransformer.HeadColumn => (ValueGetter<TValue>)(Delegate)(ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = rows.Heads[_row].AsMemory()),
            HeadSummaryTransformer.ProbesColumn => (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Buffers.CopyTo<float>(rows.Probes[_row], ref v)),
            HeadSummaryTransformer.CrossAttentionColumn => (ValueGetter<TValue>)(Delegate)(ValueGetter<bool>)((ref bool v) => v = rows.Cross[_row]),
            _ => throw new ArgumentOutOfRangeException(nameof(column), $"The head table has no column '{column.Name}'."),
        };
    }
}
