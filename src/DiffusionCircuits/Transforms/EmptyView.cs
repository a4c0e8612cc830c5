using Microsoft.ML;

namespace DiffusionCircuits.Transforms;

/// <summary>A view with a schema and no rows: lets a transformer report its output schema from an input schema.</summary>
internal sealed class EmptyView(DataViewSchema schema) : IDataView
{
    public bool CanShuffle => false;
    public DataViewSchema Schema { get; } = schema;
    public long? GetRowCount() => 0;
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => throw new NotSupportedException("Schema-only view.");
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => throw new NotSupportedException("Schema-only view.");
}
