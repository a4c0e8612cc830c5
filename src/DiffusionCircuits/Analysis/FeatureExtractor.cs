using System.Diagnostics;
using DiffusionCircuits.Data;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Streams images through an <see cref="AttentionCaptureSession"/> in batches of (image, timestep) rows with paired
/// seeded noise, computes each head's features from the maps in place, and accumulates mean maps. Memory grows only
/// with the number of feature values (a few floats per image, timestep and head), never with the maps.
/// </summary>
public sealed class FeatureExtractor
{
    private readonly AttentionCaptureSession _session;
    private readonly IReadOnlyList<int> _timesteps;
    private readonly int _seed, _batchSize;
    private readonly int? _promptTokens;   // of the conditioning prompt, for the token masses of cross-attention heads
    private readonly (int Layer, int Start, int Length)[] _mapBlocks;   // the maps' elements in blocks of 16 Ki, for AddMaps

    /// <summary>Extracts at <paramref name="timesteps"/> with paired noise of <paramref name="seed"/>, <paramref name="batchSize"/> rows per run.</summary>
    public FeatureExtractor(AttentionCaptureSession session, IReadOnlyList<int> timesteps, int seed, int batchSize = 32)
    {
        (_session, _timesteps, _seed, _batchSize) = (session, timesteps, seed, batchSize);
        _promptTokens = session.Conditioning.Conditioning?.PromptTokens;
        const int block = 1 << 14;
        _mapBlocks = session.Layers.SelectMany((layer, l) =>
        {
            int size = layer.Heads * layer.QueryTokens * layer.KeyTokens;
            return Enumerable.Range(0, (size + block - 1) / block).Select(b => (l, b * block, Math.Min(block, size - b * block)));
        }).ToArray();
        foreach (var t in timesteps)
            if (t < 0 || t >= session.Schedule.Timesteps) throw new ArgumentOutOfRangeException(nameof(timesteps), t, $"Timesteps must be in 0..{session.Schedule.Timesteps - 1}.");
    }

    /// <summary>Seconds spent computing features (not running the model), for the performance report.</summary>
    public double FeatureSeconds { get; private set; }
    /// <summary>Seconds spent running the model.</summary>
    public double ModelSeconds { get; private set; }

    /// <summary>
    /// Features and mean maps of every image at every timestep. <paramref name="onRow"/> sees each row's image id,
    /// timestep, features and loss; <paramref name="progress"/> counts the images done.
    /// </summary>
    public DataSetFeatures Run(DataSetId dataSet, IEnumerable<FaceImage> images, Action<string, int, HeadFeatures[], float>? onRow = null, IProgress<int>? progress = null)
    {
        var layers = _session.Layers;
        var result = new DataSetFeatures(dataSet, _timesteps, layers.Select(l => l.Heads).ToList(),
            layers.Select(l => l.Heads * l.QueryTokens * l.KeyTokens).ToList());
        var inputs = new NoisedRows(_session, _batchSize, _seed);
        if (_session.ScalarTimestep || _session.ExposesGraphFeatures)
        {
            // One timestep per batch (a scalar-timestep model needs it; the graph's map sums are per timestep): a batch of
            // images is run once per timestep (images stream, so they are grouped here).
            foreach (var group in images.Chunk(_batchSize))
            {
                result.ImageIds.AddRange(group.Select(i => i.Id));
                var tokens = group.Select(TokenMaps).ToArray();
                for (int k = 0; k < _timesteps.Count; k++) Process(group.Select(i => (i, k)).ToArray(), inputs, result, tokens, onRow);
                progress?.Report(result.ImageIds.Count);
            }
        }
        else
        {
            IEnumerable<(FaceImage Image, int K)> Rows()
            {
                foreach (var image in images)
                {
                    result.ImageIds.Add(image.Id);
                    for (int k = 0; k < _timesteps.Count; k++) yield return (image, k);
                    progress?.Report(result.ImageIds.Count);
                }
            }
            // Rows of one image at several timesteps are consecutive: its token maps are computed once.
            (FaceImage? Image, ImageTokenMaps?[] Maps) last = (null, Array.Empty<ImageTokenMaps?>());
            ImageTokenMaps?[] Last(FaceImage image) => ReferenceEquals(last.Image, image) ? last.Maps : (last = (image, TokenMaps(image))).Maps;
            foreach (var rows in Rows().Chunk(_batchSize)) Process(rows, inputs, result, rows.Select(r => Last(r.Image)).ToArray(), onRow);
        }
        if (result.ImageCount == 0) throw new InvalidDataException($"Data set '{dataSet}' has no usable images.");
        foreach (var perT in result.MeanMaps)
            foreach (var layer in perT)
                for (int i = 0; i < layer.Length; i++) layer[i] /= result.ImageCount;
        return result;
    }

    /// <summary>What the image looks like on each layer's token grid (null for cross-attention layers).</summary>
    private ImageTokenMaps?[] TokenMaps(FaceImage image) =>
        _session.Geometries.Select(g => g is null ? null : ImageTokenMaps.Create(image, g)).ToArray();

    /// <summary>One batch: run it, then each row's features, loss and map sums (from the maps, or all from the graph).</summary>
    private void Process((FaceImage Image, int K)[] rows, NoisedRows inputs, DataSetFeatures result, ImageTokenMaps?[][] tokens,
        Action<string, int, HeadFeatures[], float>? onRow)
    {
        var layers = _session.Layers;
        bool graph = _session.ExposesGraphFeatures;
        inputs.Clear();
        foreach (var (image, k) in rows) inputs.Add(image, _timesteps[k]);
        var timer = Stopwatch.StartNew();
        using var batch = inputs.Run(parts: graph ? PartGrids(tokens) : null);
        ModelSeconds += timer.Elapsed.TotalSeconds;
        timer.Restart();
        if (graph)
            for (int l = 0; l < layers.Count; l++)
            {
                // Every row of a graph-features batch has one timestep (Run groups them so).
                var sum = result.MeanMaps[rows[0].K][l];
                var mapSum = batch.MapSum(l);
                for (int i = 0; i < mapSum.Length; i++) sum[i] += mapSum[i];
            }
        else AddMaps(batch, rows, result);
        // The rows' features on every core, each row with a calculator (scratch buffers) of its own.
        var features = IndependentPieces.Map(rows.Length, r => RowFeatures(batch, r, tokens[r], graph));
        for (int r = 0; r < rows.Length; r++)
        {
            var (image, k) = rows[r];
            float loss = inputs.LossMse(batch, r);
            CheckFinite(features[r], loss, image, inputs.Timesteps[r]);
            result.Features[k].Add(features[r]);
            result.LossMse[k].Add(loss);
            onRow?.Invoke(image.Id, inputs.Timesteps[r], features[r], loss);
        }
        FeatureSeconds += timer.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Adds each row's maps to its timestep's sums. The elements are split into blocks that run on every core; within an
    /// element the rows are added in row order, so the sums are the bits of one row after another.
    /// </summary>
    private void AddMaps(CaptureBatch batch, (FaceImage Image, int K)[] rows, DataSetFeatures result) =>
        IndependentPieces.Run(_mapBlocks.Length, p =>
        {
            var (l, start, length) = _mapBlocks[p];
            for (int r = 0; r < rows.Length; r++)
            {
                var maps = batch.Maps(l, r).Slice(start, length);
                var sum = result.MeanMaps[rows[r].K][l].AsSpan(start, length);
                for (int i = 0; i < length; i++) sum[i] += maps[i];
            }
        });

    /// <summary>Every head's features of row <paramref name="r"/>, from the graph's outputs or from its maps.</summary>
    private HeadFeatures[] RowFeatures(CaptureBatch batch, int r, ImageTokenMaps?[] tokens, bool graph)
    {
        var layers = _session.Layers;
        var calculator = new AttentionFeatureCalculator(_promptTokens);
        var features = new HeadFeatures[_session.TotalHeads];
        int offset = 0;
        for (int l = 0; l < layers.Count; l++)
        {
            var layer = layers[l];
            if (graph) GraphFeatures(batch, l, r, tokens[l], features.AsSpan(offset, layer.Heads));
            else
            {
                var maps = batch.Maps(l, r);
                int size = layer.QueryTokens * layer.KeyTokens;
                for (int h = 0; h < layer.Heads; h++)
                    features[offset + h] = calculator.Compute(maps.Slice(h * size, size), layer, _session.Geometries[l], tokens[l]);
            }
            offset += layer.Heads;
        }
        return features;
    }

    /// <summary>
    /// The features of one row of a layer from the graph's outputs: entropy, distance and mirror mass as computed there;
    /// edge and texture alignment from the received attention (C#, per key); semantic affinity as the same-part mass less
    /// its chance level. The same definitions as <see cref="AttentionFeatureCalculator.Compute"/> (tested to agree).
    /// </summary>
    private void GraphFeatures(CaptureBatch batch, int l, int r, ImageTokenMaps? tokens, Span<HeadFeatures> heads)
    {
        var layer = _session.Layers[l];
        var entropy = batch.Entropy(l, r);
        var geometry = _session.Geometries[l];
        for (int h = 0; h < heads.Length; h++)
        {
            ref var f = ref heads[h];
            f.EntropyNats = entropy[h];
            f.NormalizedEntropy = layer.KeyTokens > 1 ? f.EntropyNats / MathF.Log(layer.KeyTokens) : 0f;
            f.DistanceImageUnits = f.EdgeAlignment = f.TextureAlignment = f.SemanticAffinity = f.Symmetry = float.NaN;
            f.StartTokenMass = f.PromptTokenMass = f.PaddingMass = float.NaN;
        }
        if (layer.IsCrossAttention)
        {
            // On a cross-attention layer the attention each key receives is the mass on each token.
            var mass = batch.Received(l, r);
            for (int h = 0; h < heads.Length; h++)
                AttentionFeatureCalculator.SetTokenMasses(ref heads[h], mass.Slice(h * layer.KeyTokens, layer.KeyTokens), _promptTokens);
        }
        if (geometry == null) return;
        var distance = batch.DistanceImageUnits(l, r);
        var symmetry = batch.Symmetry(l, r);
        for (int h = 0; h < heads.Length; h++) (heads[h].DistanceImageUnits, heads[h].Symmetry) = (distance[h], (float)(symmetry[h] - geometry.UniformMirrorMass));
        if (tokens == null) return;
        var received = batch.Received(l, r);
        bool parts = tokens.PartFractions != null && _session.HasPartsInput(layer);
        var samePart = parts ? batch.SamePartMass(l, r) : default;
        for (int h = 0; h < heads.Length; h++)
        {
            (heads[h].EdgeAlignment, heads[h].TextureAlignment) = AttentionFeatureCalculator.Alignment(received.Slice(h * layer.KeyTokens, layer.KeyTokens), tokens);
            heads[h].SemanticAffinity = parts ? samePart[h] - tokens.PartShareTerm : float.NaN;
        }
    }

    /// <summary>Each graph layer's part grids (soft labels, [tokens, parts]) of the batch's rows (zeros where an image has no part mask).</summary>
    private float[]?[] PartGrids(ImageTokenMaps?[][] tokens)
    {
        int rows = tokens.Length;
        var layers = _session.Layers;
        var grids = new float[]?[layers.Count];
        for (int l = 0; l < layers.Count; l++)
        {
            if (!_session.HasPartsInput(layers[l])) continue;
            int size = layers[l].QueryTokens * FaceImage.PartCount;
            var grid = new float[rows * size];
            for (int r = 0; r < rows; r++)
                if (tokens[r][l]?.PartFractions is { } fractions && fractions.Length == size) fractions.CopyTo(grid, r * size);
            grids[l] = grid;
        }
        return grids;
    }

    /// <summary>NaN or infinities never reach the statistics: name where they appeared.</summary>
    private void CheckFinite(HeadFeatures[] features, float loss, FaceImage image, int t)
    {
        foreach (var head in _session.Discovery.Heads)
            if (!float.IsFinite(features[head.Index].EntropyNats))
                throw new InvalidDataException($"The model produced NaN or infinite attention in layer '{head.Layer}' (head {head.Name}) " +
                                               $"for image '{image.Id}' at t = {t}.");
        if (!float.IsFinite(loss))
            throw new InvalidDataException($"The model produced NaN or infinite predicted noise (attention was finite) for image '{image.Id}' at t = {t}.");
    }
}
