using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// Per-head features from the <c>Attention.*</c> columns of <see cref="AttentionCaptureEstimator"/>, one float per
/// head in layer order (slot names are the head names, e.g. <c>mid.attn.h3</c>). Entropy needs only the maps;
/// probes also read the clean image (<c>Image</c> unless named) and, for semantic affinity, <c>PartMask</c> and
/// <c>HasPartMask</c>. The output columns are known-size vectors, so trainers and normalisers can follow.
/// </summary>
public sealed class HeadFeatureEstimator : IEstimator<ITransformer>
{
    private readonly HeadFeatureTransformer _transformer;

    internal HeadFeatureEstimator(string stage, IReadOnlyList<(HeadFeature Feature, string Column)> outputs, string imageColumnName) =>
        _transformer = new HeadFeatureTransformer(stage, outputs, imageColumnName);

    /// <summary>Entropy per head in nats, and normalised by ln of the key count (METHOD.md section 1).</summary>
    public static HeadFeatureEstimator Entropy(string outputColumnName = nameof(HeadFeature.EntropyNats), string normalizedEntropyColumnName = nameof(HeadFeature.NormalizedEntropy)) =>
        new("AttentionEntropy", new[] { (HeadFeature.EntropyNats, outputColumnName), (HeadFeature.NormalizedEntropy, normalizedEntropyColumnName) }, FaceImageDataView.ImageColumn);

    /// <summary>
    /// DistanceImageUnits, EdgeAlignment, TextureAlignment, SemanticAffinity and Symmetry (METHOD.md section 3), each
    /// in a column named <paramref name="outputColumnNamePrefix"/> + the feature's name.
    /// </summary>
    public static HeadFeatureEstimator Probes(string outputColumnNamePrefix = "", string imageColumnName = FaceImageDataView.ImageColumn) =>
        new("AttentionProbes", HeadFeatures.Probes.Select(f => (f, outputColumnNamePrefix + f)).ToList(), imageColumnName);

    /// <inheritdoc/>
    public ITransformer Fit(IDataView input)
    {
        _transformer.GetOutputSchema(input.Schema);
        return _transformer;
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var maps = inputSchema.Where(c => c.Name.StartsWith(AttentionCaptureTransformer.AttentionPrefix, StringComparison.Ordinal)).ToList();
        if (maps.Count == 0) throw new ArgumentOutOfRangeException(nameof(inputSchema), $"{_transformer.Stage} needs Attention.* columns: put CaptureAttention before it.");
        return SchemaShapes.With(inputSchema, _transformer.Outputs.Select(o => SchemaShapes.Vector(o.Column, NumberDataViewType.Single)));
    }
}

/// <summary>
/// The fitted feature stage (stateless): computes only when its columns are read. A row-to-row mapping, so
/// <c>CreatePredictionEngine</c> can use it on rows that carry the <c>Attention.*</c> columns.
/// </summary>
public sealed class HeadFeatureTransformer : ITransformer
{
    internal HeadFeatureTransformer(string stage, IReadOnlyList<(HeadFeature Feature, string Column)> outputs, string imageColumnName) =>
        (Stage, Outputs, ImageColumnName) = (stage, outputs, imageColumnName);

    /// <summary>The stage's name in messages.</summary>
    public string Stage { get; }
    /// <summary>The clean-image column the probes read.</summary>
    public string ImageColumnName { get; }
    internal IReadOnlyList<(HeadFeature Feature, string Column)> Outputs { get; }
    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Build(new EmptyView(inputSchema)).Schema;
    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Build(new EmptyView(inputSchema)).AsRowToRowMapper();
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw ModelFormat.Refused(Stage, "its output column names");
    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => Build(input);

    private MappedDataView Build(IDataView input)
    {
        var layers = LayersOf(input.Schema);
        if (layers.Count == 0) throw new ArgumentOutOfRangeException(nameof(input), $"{Stage} needs Attention.* columns: put CaptureAttention before it.");
        int heads = layers.Sum(l => l.Layer.Heads);
        var slotNames = layers.SelectMany(l => Enumerable.Range(0, l.Layer.Heads).Select(h => l.Layer.HeadName(h).AsMemory())).ToArray();
        var ab = new DataViewSchema.Annotations.Builder();
        ab.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, heads),
            (ValueGetter<VBuffer<ReadOnlyMemory<char>>>)((ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(heads, slotNames)));
        var annotations = ab.ToAnnotations();
        var outputs = Outputs.Select(o => new MappedColumn(o.Column, new VectorDataViewType(NumberDataViewType.Single, heads), annotations)).ToList();
        bool probes = Outputs.Any(o => HeadFeatures.Probes.Contains(o.Feature));
        var inputs = layers.Select(l => l.Column).ToList();
        if (probes)
            foreach (var c in new[] { ImageColumnName, FaceImageDataView.PartMaskColumn, FaceImageDataView.HasPartMaskColumn, FaceImageDataView.IdColumn })
                if (input.Schema.GetColumnOrNull(c) != null) inputs.Add(c);
        return new MappedDataView(input, outputs, inputs, schema => new Mapper(this, layers, heads, schema));
    }

    /// <summary>Layer descriptions recovered from the Attention.* columns and their annotations.</summary>
    internal static List<(string Column, AttentionLayer Layer)> LayersOf(DataViewSchema schema)
    {
        var list = new List<(string, AttentionLayer)>();
        foreach (var c in schema.Where(c => c.Name.StartsWith(AttentionCaptureTransformer.AttentionPrefix, StringComparison.Ordinal) && !c.IsHidden))
        {
            if (c.Type is not VectorDataViewType { Dimensions.Length: 3 } v) continue;
            VBuffer<int> grid = default;
            bool cross = false;
            var gridCol = c.Annotations.Schema.GetColumnOrNull(AttentionCaptureTransformer.TokenGridAnnotation);
            if (gridCol != null) c.Annotations.GetValue(AttentionCaptureTransformer.TokenGridAnnotation, ref grid);
            if (c.Annotations.Schema.GetColumnOrNull(AttentionCaptureTransformer.CrossAttentionAnnotation) != null)
                c.Annotations.GetValue(AttentionCaptureTransformer.CrossAttentionAnnotation, ref cross);
            var g = grid.Length == 2 ? grid.GetValues().ToArray() : new[] { v.Dimensions[1], 1 };
            list.Add((c.Name, new AttentionLayer
            {
                Name = c.Name[AttentionCaptureTransformer.AttentionPrefix.Length..], Index = list.Count, SoftmaxNode = "", ProbabilitiesTensor = "",
                HeadOutputTensor = "", PvMatMulNode = "", IsCrossAttention = cross, Heads = v.Dimensions[0],
                QueryTokens = v.Dimensions[1], KeyTokens = v.Dimensions[2], GridHeight = g[0], GridWidth = g[1],
            }));
        }
        return list;
    }

    private sealed class Mapper : IRowMapper
    {
        private readonly HeadFeatureTransformer _t;
        private readonly List<(string Column, AttentionLayer Layer)> _layers;
        private readonly TokenGeometry?[] _geometry;
        private readonly float[][] _values;
        private readonly AttentionFeatureCalculator _calculator = new();
        private VBuffer<float> _maps, _image;
        private VBuffer<byte> _mask;
        private readonly int _heads;
        // Rows of one image at several timesteps are consecutive: its token maps are computed once.
        private string? _tokensFor;
        private ImageTokenMaps?[] _tokens = Array.Empty<ImageTokenMaps?>();

        public Mapper(HeadFeatureTransformer t, List<(string, AttentionLayer)> layers, int heads, DataViewSchema _)
        {
            (_t, _layers, _heads) = (t, layers, heads);
            _geometry = layers.Select(l => TokenGeometry.For(l.Item2)).ToArray();
            _values = t.Outputs.Select(_ => new float[heads]).ToArray();
        }

        public void Compute(DataViewRow input)
        {
            bool probes = _t.Outputs.Any(o => HeadFeatures.Probes.Contains(o.Feature));
            FaceImage? image = null;
            string? id = null;
            if (input.Schema.GetColumnOrNull(FaceImageDataView.IdColumn) is { } idCol)
            {
                ReadOnlyMemory<char> text = default;
                input.GetGetter<ReadOnlyMemory<char>>(idCol)(ref text);
                id = text.ToString();
            }
            bool reuse = id != null && id == _tokensFor;
            if (probes && !reuse && input.Schema.GetColumnOrNull(_t.ImageColumnName) is { } imageCol)
            {
                input.GetGetter<VBuffer<float>>(imageCol)(ref _image);
                byte[]? mask = null;
                if (input.Schema.GetColumnOrNull(FaceImageDataView.HasPartMaskColumn) is { } hasCol && input.Schema.GetColumnOrNull(FaceImageDataView.PartMaskColumn) is { } maskCol)
                {
                    bool has = false;
                    input.GetGetter<bool>(hasCol)(ref has);
                    if (has)
                    {
                        input.GetGetter<VBuffer<byte>>(maskCol)(ref _mask);
                        mask = _mask.GetValues().ToArray();
                    }
                }
                int side = (int)Math.Round(Math.Sqrt(_image.Length / 3.0));
                image = new FaceImage("", side, side, _image.GetValues().ToArray(), mask);
                _tokens = _layers.Select((_, l) => _geometry[l] != null ? ImageTokenMaps.Create(image, _geometry[l]!) : null).ToArray();
                _tokensFor = id;
            }
            else if (!probes || !reuse)
            {
                _tokens = new ImageTokenMaps?[_layers.Count];
                _tokensFor = null;
            }
            int offset = 0;
            for (int l = 0; l < _layers.Count; l++)
            {
                var (column, layer) = _layers[l];
                ReadOnlySpan<float> maps;
                if (input is ISpanSource source && source.TryGetSpan(column, out var lent)) maps = lent;   // no copy from our capture stage
                else
                {
                    input.GetGetter<VBuffer<float>>(input.Schema[column])(ref _maps);
                    maps = _maps.GetValues();
                }
                var tokens = _tokens[l];
                int size = layer.QueryTokens * layer.KeyTokens;
                for (int h = 0; h < layer.Heads; h++)
                {
                    var map = maps.Slice(h * size, size);
                    // The entropy stage computes entropy only; the probes stage skips it.
                    var f = probes
                        ? _calculator.Compute(map, layer, _geometry[l], tokens, includeEntropy: false)
                        : EntropyOnly(map, layer);
                    for (int k = 0; k < _t.Outputs.Count; k++) _values[k][offset + h] = f[_t.Outputs[k].Feature];
                }
                offset += layer.Heads;
            }
        }

        private HeadFeatures EntropyOnly(ReadOnlySpan<float> map, AttentionLayer layer)
        {
            float h = _calculator.EntropyNats(map, layer.QueryTokens, layer.KeyTokens);
            return new HeadFeatures { EntropyNats = h, NormalizedEntropy = layer.KeyTokens > 1 ? h / MathF.Log(layer.KeyTokens) : 0f };
        }

        public void Get<T>(int index, ref T value)
        {
            var v = (VBuffer<float>)(object)value!;
            Buffers.CopyTo<float>(_values[index], ref v);
            value = (T)(object)v;
        }
    }
}
