using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// SchemaShape.Column's constructor and SchemaShape.Create are internal in ML.NET 5: estimators describe their output
/// columns through this one helper (reflection on the internal constructor), so the workaround lives in one place.
/// </summary>
public static class SchemaShapes
{
    /// <summary>The shape of a data view's schema, to call an estimator's GetOutputSchema with.</summary>
    public static SchemaShape From(DataViewSchema schema) =>
        new(schema.Where(c => !c.IsHidden).Select(c => Column(c.Name, c.Type)));

    private static readonly ConstructorInfo ColumnConstructor = typeof(SchemaShape.Column)
        .GetConstructors(BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Instance)
        .Single(c => c.GetParameters().Length == 5);

    internal static SchemaShape.Column Column(string name, DataViewType type)
    {
        var (kind, item) = type is VectorDataViewType v
            ? (v.IsKnownSize ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector, v.ItemType)
            : (SchemaShape.Column.VectorKind.Scalar, type);
        return (SchemaShape.Column)ColumnConstructor.Invoke(new object?[] { name, kind, item, false, null });
    }

    /// <summary>
    /// A known-size vector column of <paramref name="item"/>s. A shape records only whether the size is known, not the
    /// size: trainers and normalisers downstream need it known (variable-size vectors make them refuse the pipeline).
    /// </summary>
    internal static SchemaShape.Column Vector(string name, DataViewType item) =>
        (SchemaShape.Column)ColumnConstructor.Invoke(new object?[] { name, SchemaShape.Column.VectorKind.Vector, item, false, null });

    /// <summary>The input shape with these columns added (replacing same-named ones).</summary>
    internal static SchemaShape With(SchemaShape input, IEnumerable<(string Name, DataViewType Type)> added) =>
        With(input, added.Select(a => Column(a.Name, a.Type)));

    /// <summary>The input shape with these columns added (replacing same-named ones).</summary>
    internal static SchemaShape With(SchemaShape input, IEnumerable<SchemaShape.Column> added)
    {
        var list = added.ToList();
        var columns = input.Where(c => list.All(a => a.Name != c.Name)).ToList();
        columns.AddRange(list);
        return new SchemaShape(columns);
    }

    internal static void Require(SchemaShape input, string column, string stage)
    {
        if (input.All(c => c.Name != column))
            throw new ArgumentOutOfRangeException(nameof(input), $"{stage} needs an input column '{column}', which the data does not have.");
    }

    internal static DataViewSchema.Column Require(DataViewSchema schema, string column, string stage) =>
        schema.GetColumnOrNull(column) ?? throw new ArgumentOutOfRangeException(nameof(schema),
            $"{stage} needs an input column '{column}'; the data has {string.Join(", ", schema.Select(c => c.Name))}.");
}

/// <summary>
/// Seeds drawn from an MLContext, so that <c>new MLContext(seed: 1)</c> makes a pipeline's stages deterministic when a
/// stage is given no seed of its own (a context without a seed draws a new one each run, as ML.NET's own stages do).
/// </summary>
internal static class ContextSeeds
{
    // TransformsCatalog keeps its environment in a private field (its IInternalCatalog interface is internal): the one
    // reflection on ML.NET's internals for seeds.
    private static readonly FieldInfo EnvironmentField = typeof(TransformsCatalog).GetField("_env", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new MissingFieldException("ML.NET's TransformsCatalog no longer has the _env field this version reads seeds from.");

    /// <summary>The seed a stage named <paramref name="stage"/> gets from the context behind <paramref name="catalog"/>.</summary>
    public static int Next(TransformsCatalog catalog, string stage) => Next((IHostEnvironment)EnvironmentField.GetValue(catalog)!, stage);

    /// <summary>The seed a stage named <paramref name="stage"/> gets from <paramref name="environment"/> (an MLContext).</summary>
    public static int Next(IHostEnvironment environment, string stage) => environment.Register(stage).Rand.Next();
}

/// <summary>Why <c>ml.Model.Save</c> refuses a DiffusionCircuits stage (tried against ML.NET 5.0.1, not assumed).</summary>
internal static class ModelFormat
{
    /// <summary>The exception a stage's <see cref="ICanSaveModel.Save"/> throws, saying what to keep instead.</summary>
    public static NotSupportedException Refused(string stage, string keep) => new(
        $"ML.NET cannot save {stage} in its model format: ICanSaveModel is public, but ModelSaveContext exposes no public member a " +
        "transformer outside ML.NET can write with, and loading needs ModelLoadContext, VersionInfo and LoadableClassAttribute, which are " +
        $"internal to ML.NET 5. Keep {keep} and build the stage again.");
}

/// <summary>An output column of a row-mapping stage and how to fill it for one row.</summary>
internal sealed record MappedColumn(string Name, DataViewType Type, DataViewSchema.Annotations? Annotations = null);

/// <summary>
/// A row of our own cursors that can lend a float vector column of the current row without copying it (the attention
/// maps, 4 MB per row on the reference model, would otherwise be copied once per consuming stage). Stages use it
/// when their input offers it and fall back to the column's getter otherwise. The span is valid until the cursor moves.
/// </summary>
internal interface ISpanSource
{
    bool TryGetSpan(string column, out ReadOnlySpan<float> values);
}

/// <summary>
/// Computes a stage's output columns for the current input row. One mapper per cursor (cursors of a cursor set run
/// on different threads), so a mapper can keep scratch buffers without locking.
/// </summary>
internal interface IRowMapper
{
    /// <summary>Called once per input row, before any output getter of that row is used.</summary>
    void Compute(DataViewRow input);

    /// <summary>Copies output column <paramref name="index"/> of the current row into <paramref name="value"/>.</summary>
    void Get<T>(int index, ref T value);
}

/// <summary>
/// A lazy IDataView that adds columns computed row by row from an input view (ML.NET's own RowToRowMapper types are
/// not usable outside ML.NET). Input columns pass through; rows are computed only when an output column is read.
/// </summary>
internal sealed class MappedDataView : IDataView
{
    private readonly IDataView _input;
    private readonly IReadOnlyList<MappedColumn> _outputs;
    private readonly Func<DataViewSchema, IRowMapper> _mapperFactory;
    private readonly IReadOnlyList<string> _inputsNeeded;

    public MappedDataView(IDataView input, IReadOnlyList<MappedColumn> outputs, IReadOnlyList<string> inputsNeeded, Func<DataViewSchema, IRowMapper> mapperFactory)
    {
        _input = input;
        _outputs = outputs;
        _inputsNeeded = inputsNeeded;
        _mapperFactory = mapperFactory;
        var builder = new DataViewSchema.Builder();
        foreach (var c in input.Schema.Where(c => !c.IsHidden && outputs.All(o => o.Name != c.Name))) builder.AddColumn(c.Name, c.Type, c.Annotations);
        foreach (var o in outputs) builder.AddColumn(o.Name, o.Type, o.Annotations);
        Schema = builder.ToSchema();
    }

    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _input.GetRowCount();

    /// <summary>The same mapping, one row at a time (for prediction engines).</summary>
    public RowToRowMapping AsRowToRowMapper() => new(_input.Schema, _outputs, _inputsNeeded, _mapperFactory);

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Name).ToHashSet();
        bool anyOutput = _outputs.Any(o => needed.Contains(o.Name));
        var inputNames = needed.Where(n => _outputs.All(o => o.Name != n)).ToHashSet();
        if (anyOutput) inputNames.UnionWith(_inputsNeeded);
        var inputColumns = _input.Schema.Where(c => inputNames.Contains(c.Name)).ToList();
        var cursor = _input.GetRowCursor(inputColumns);
        return new Cursor(this, cursor, anyOutput ? _mapperFactory(_input.Schema) : null, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor, ISpanSource
    {
        private readonly MappedDataView _view;
        private readonly DataViewRowCursor _input;
        private readonly IRowMapper? _mapper;
        private readonly HashSet<string> _active;
        private long _computedFor = -1;

        public Cursor(MappedDataView view, DataViewRowCursor input, IRowMapper? mapper, HashSet<string> active)
        {
            (_view, _input, _mapper, _active) = (view, input, mapper, active);
        }

        public override DataViewSchema Schema => _view.Schema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Name);
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool MoveNext() => _input.MoveNext();

        /// <summary>Input columns pass through, so do their spans.</summary>
        public bool TryGetSpan(string column, out ReadOnlySpan<float> values)
        {
            values = default;
            return _view._outputs.All(o => o.Name != column) && _input is ISpanSource source && source.TryGetSpan(column, out values);
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int output = -1;
            for (int i = 0; i < _view._outputs.Count; i++) if (_view._outputs[i].Name == column.Name) output = i;
            if (output < 0) return _input.GetGetter<TValue>(_input.Schema[column.Name]);
            if (_mapper == null) throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was created.");
            return (ref TValue value) =>
            {
                if (_computedFor != _input.Position)
                {
                    _mapper.Compute(_input);
                    _computedFor = _input.Position;
                }
                _mapper.Get(output, ref value);
            };
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _input.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A stage's row mapping as ML.NET's <see cref="IRowToRowMapper"/>: what <c>CreatePredictionEngine</c> maps one row at a
/// time through. The same <see cref="IRowMapper"/> as the stage's data view computes the outputs.
/// </summary>
internal sealed class RowToRowMapping : IRowToRowMapper
{
    private readonly IReadOnlyList<MappedColumn> _outputs;
    private readonly IReadOnlyList<string> _inputsNeeded;
    private readonly Func<DataViewSchema, IRowMapper> _mapperFactory;

    public RowToRowMapping(DataViewSchema input, IReadOnlyList<MappedColumn> outputs, IReadOnlyList<string> inputsNeeded, Func<DataViewSchema, IRowMapper> mapperFactory)
    {
        (InputSchema, _outputs, _inputsNeeded, _mapperFactory) = (input, outputs, inputsNeeded, mapperFactory);
        var builder = new DataViewSchema.Builder();
        foreach (var c in input.Where(c => !c.IsHidden && outputs.All(o => o.Name != c.Name))) builder.AddColumn(c.Name, c.Type, c.Annotations);
        foreach (var o in outputs) builder.AddColumn(o.Name, o.Type, o.Annotations);
        OutputSchema = builder.ToSchema();
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var names = dependingColumns.Select(c => c.Name).ToHashSet();
        if (_outputs.Any(o => names.Contains(o.Name))) names.UnionWith(_inputsNeeded);
        return InputSchema.Where(c => names.Contains(c.Name)).ToList();
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, _mapperFactory(input.Schema), activeColumns.Select(c => c.Name).ToHashSet());

    private sealed class Row(RowToRowMapping owner, DataViewRow input, IRowMapper mapper, HashSet<string> active) : DataViewRow
    {
        private long _computedFor = -1;

        public override DataViewSchema Schema => owner.OutputSchema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Name);
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int output = -1;
            for (int i = 0; i < owner._outputs.Count; i++) if (owner._outputs[i].Name == column.Name) output = i;
            if (output < 0) return input.GetGetter<TValue>(input.Schema[column.Name]);
            return (ref TValue value) =>
            {
                // A prediction engine moves the same input row on to each new example, advancing its position.
                if (_computedFor != input.Position)
                {
                    mapper.Compute(input);
                    _computedFor = input.Position;
                }
                mapper.Get(output, ref value);
            };
        }
    }
}

/// <summary>VBuffer helpers that reuse the destination's array (no allocation per row once warm).</summary>
internal static class Buffers
{
    public static void CopyTo<T>(ReadOnlySpan<T> source, ref VBuffer<T> destination)
    {
        var editor = VBufferEditor.Create(ref destination, source.Length);
        source.CopyTo(editor.Values);
        destination = editor.Commit();
    }
}
