using DiffusionCircuits.Analysis;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// Role clustering as an ML.NET estimator. Fit reads one row per head (as SummarizeHeads makes them): a text column
/// with the head's name, a float vector of its probes in <see cref="HeadRoles.Probes"/> order (NaN = not measured) and,
/// when present, a bool column saying whether it is a cross-attention head (those are clustered apart); it
/// standardises the probes and runs k-means (see <see cref="HeadRoles"/>). Transform adds <c>Role</c> (text) to each head row.
/// </summary>
public sealed class HeadRoleEstimator(int roles = 8, int seed = 0, int restarts = HeadRoles.DefaultRestarts, string headColumnName = "Head", string probesColumnName = "Probes",
    string crossAttentionColumnName = "IsCrossAttention") : IEstimator<HeadRoleTransformer>
{
    /// <inheritdoc/>
    public HeadRoleTransformer Fit(IDataView input)
    {
        SchemaShapes.Require(input.Schema, headColumnName, "ClusterHeadRoles");
        SchemaShapes.Require(input.Schema, probesColumnName, "ClusterHeadRoles");
        var heads = input.GetColumn<ReadOnlyMemory<char>>(headColumnName).Select(h => h.ToString()).ToList();
        var probes = input.GetColumn<VBuffer<float>>(probesColumnName).Select(v => v.DenseValues().Select(x => (double)x).ToArray()).ToArray();
        var cross = input.Schema.GetColumnOrNull(crossAttentionColumnName) != null ? input.GetColumn<bool>(crossAttentionColumnName).ToList() : null;
        if (heads.Count == 0) throw new ArgumentException("ClusterHeadRoles needs at least one head row.");
        return new HeadRoleTransformer(HeadRoles.Cluster(heads, probes, roles, seed, restarts, cross), heads, headColumnName);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        SchemaShapes.Require(inputSchema, headColumnName, "ClusterHeadRoles");
        SchemaShapes.Require(inputSchema, probesColumnName, "ClusterHeadRoles");
        return SchemaShapes.With(inputSchema, new (string, DataViewType)[] { (HeadRoleTransformer.RoleColumn, TextDataViewType.Instance) });
    }
}

/// <summary>The fitted roles: looks each row's head up and adds its role name (a row-to-row mapping).</summary>
public sealed class HeadRoleTransformer : ITransformer
{
    /// <summary>The column added: each head row's role (text).</summary>
    public const string RoleColumn = "Role";
    private readonly Dictionary<string, string> _roleOfHead;
    private readonly string _headColumn;

    internal HeadRoleTransformer(RoleClustering clustering, IReadOnlyList<string> heads, string headColumn)
    {
        Clustering = clustering;
        _headColumn = headColumn;
        _roleOfHead = heads.Select((h, i) => (h, i)).ToDictionary(x => x.h, x => clustering.RoleOf(x.i));
    }

    /// <summary>The clustering found at Fit.</summary>
    public RoleClustering Clustering { get; }
    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;
    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Build(new EmptyView(inputSchema)).Schema;
    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Build(new EmptyView(inputSchema)).AsRowToRowMapper();
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelFormat.Refused("ClusterHeadRoles", "its Clustering (RoleClustering serialises to JSON)");
    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => Build(input);

    private MappedDataView Build(IDataView input)
    {
        SchemaShapes.Require(input.Schema, _headColumn, "ClusterHeadRoles");
        return new MappedDataView(input, new[] { new MappedColumn(RoleColumn, TextDataViewType.Instance) }, new[] { _headColumn }, _ => new Mapper(this));
    }

    private sealed class Mapper(HeadRoleTransformer t) : IRowMapper
    {
        private ReadOnlyMemory<char> _role;

        public void Compute(DataViewRow input)
        {
            ReadOnlyMemory<char> head = default;
            input.GetGetter<ReadOnlyMemory<char>>(input.Schema[t._headColumn])(ref head);
            _role = (t._roleOfHead.TryGetValue(head.ToString(), out var r) ? r : "unknown").AsMemory();
        }

        public void Get<T>(int index, ref T value) => value = (T)(object)_role;
    }
}
