using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Bench;

/// <summary>A minimal in-memory IDataView of float-vector and int64-vector columns, for feeding ApplyOnnxModel.</summary>
public sealed class InMemoryColumns : IDataView
{
    public sealed record Column(string Name, DataViewType Type, Delegate Getter);

    private readonly int _rows;
    private readonly IReadOnlyList<Column> _columns;

    public InMemoryColumns(int rows, IReadOnlyList<Column> columns)
    {
        (_rows, _columns) = (rows, columns);
        var b = new DataViewSchema.Builder();
        foreach (var c in columns) b.AddColumn(c.Name, c.Type);
        Schema = b.ToSchema();
    }

    public static Column Floats(string name, int length, Func<int, float[]> values) =>
        new(name, new VectorDataViewType(NumberDataViewType.Single, length), values);

    public static Column Int64s(string name, Func<int, long> value) =>
        new(name, new VectorDataViewType(NumberDataViewType.Int64, 1), (Func<int, long[]>)(r => new[] { value(r) }));

    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _rows;
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded) };

    private sealed class Cursor(InMemoryColumns view) : DataViewRowCursor
    {
        private long _position = -1;
        public override DataViewSchema Schema => view.Schema;
        public override long Position => _position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => true;
        public override bool MoveNext() => ++_position < view._rows;
        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            var source = view._columns[column.Index].Getter;
            if (source is Func<int, float[]> f)
                return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => v = new VBuffer<float>(f((int)_position).Length, f((int)_position)));
            var l = (Func<int, long[]>)source;
            return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<long>>)((ref VBuffer<long> v) => v = new VBuffer<long>(1, l((int)_position)));
        }
    }
}
