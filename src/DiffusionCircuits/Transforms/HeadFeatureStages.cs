using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// Per-head features from the <c>Attention.*</c> columns of <see cref="AttentionCaptureEstimator"/>, one float per
/// head in layer order (slot names are the head names, e.g. <c>mid.attn.h3</c>). Entropy needs only the maps;
/// probes also read the clean image (<c>Image</c>) and, for semantic affinity, <c>PartMask</c>/<c>HasPartMask</c>.
/// </summary>
public sealed class HeadFeatureEstimator : IEstimator<ITransformer>
{
    private readonly HeadFeatureTransformer _transformer;

    internal HeadFeatureEstimator(string stage, IReadOnlyList<HeadFeature> features) => _transformer = new HeadFeatureTransformer(stage, features);

    /// <summary>EntropyNats and NormalizedEntropy (METHOD.md section 1).</summary>
    public static HeadFeatureEstimator Entropy() => new("AttentionEntropy", new[] { HeadFeature.EntropyNats, HeadFeature.NormalizedEntropy });

    /// <summary>DistanceImageUnits, EdgeAlignment, TextureAlignment, SemanticAffinity, Symmetry (METHOD.md section 3).</summary>
    public static HeadFeatureEstimator Probes() => new("AttentionProbes", HeadFeatures.Probes);

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
        return SchemaShapes.With(inputSchema, _transformer.Features.Select(f => (f.ToString(), (DataViewType)new VectorDataViewType(NumberDataViewType.Single, 0))));
    }
}

/// <summary>The fitted feature stage (stateless): computes only when its columns are read.</summary>
public sealed class HeadFeatureTransformer : ITransformer
{
    internal HeadFeatureTransformer(string stage, IReadOnlyList<HeadFeature> features) => (Stage, Features) = (stage, features);

    /// <summary>The stage's name in messages.</summary>
    public string Stage { get; }
    internal IReadOnlyList<HeadFeature> Features { get; }
    /// <inheritdoc/>
    public bool IsRowToRowMapper => false;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Build(new EmptyView(inputSchema)).Schema;
    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException("Use Transform.");
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException("DiffusionCircuits stages are not saved with ML.NET's model format.");
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
        var outputs = Features.Select(f => new MappedColumn(f.ToString(), new VectorDataViewType(NumberDataViewType.Single, heads), annotations)).ToList();
        bool probes = Features.Any(HeadFeatures.Probes.Contains);
        var inputs = layers.Select(l => l.Column).ToList();
        if (probes)
            foreach (var c in new[] { FaceImageDataView.ImageColumn, FaceImageDataView.PartMaskColumn, FaceImageDataView.HasPartMaskColumn, FaceImageDataView.IdColumn })
                if (input.Schema.GetColumnOrNull(c) != null) inputs.Add(c);
        var view = new MappedDataView(input, outputs, inputs, schema => new Mapper(this, layers, heads, schema));
        return view;
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
            _values = t.Features.Select(_ => new float[heads]).ToArray();
        }

        public void Compute(DataViewRow input)
        {
            bool probes = _t.Features.Any(HeadFeatures.Probes.Contains);
            FaceImage? image = null;
            string? id = null;
            if (input.Schema.GetColumnOrNull(FaceImageDataView.IdColumn) is { } idCol)
            {
                ReadOnlyMemory<char> text = default;
                input.GetGetter<ReadOnlyMemory<char>>(idCol)(ref text);
                id = text.ToString();
            }
            bool reuse = id != null && id == _tokensFor;
            if (probes && !reuse && input.Schema.GetColumnOrNull(FaceImageDataView.ImageColumn) is { } imageCol)
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
                    for (int k = 0; k < _t.Features.Count; k++) _values[k][offset + h] = f[_t.Features[k]];
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
