using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// What heads look at, as pictures, at the middle analysed timestep:
/// <see cref="Heads"/>: for the most specialised heads, the attention each position receives (mean over queries) on
/// example faces; <see cref="Regions"/>: per self-attention layer, where queries in the eyes and in the mouth look
/// (from the analysis' mean maps: over every face of a data set, and over the layer's heads), over the data set's mean face.
/// </summary>
internal sealed class ReportExamples : IDisposable
{
    /// <summary>Tile side in pixels: faces and maps are resampled smoothly to it, so overlays are not blocks of tokens.</summary>
    public const int Tile = 192;

    /// <summary>Faces per data set whose part masks are averaged into the query regions (the maps are the analysis' means over every face).</summary>
    public const int PartSampleFaces = 64;

    /// <summary>The query regions of <see cref="Regions"/>.</summary>
    public static readonly FacePart[] QueryParts = { FacePart.Eyes, FacePart.Mouth };

    private ReportExamples(TileFigure heads, TileFigure? regions, int timestep, string regionSource) =>
        (Heads, Regions, Timestep, RegionSource) = (heads, regions, timestep, regionSource);

    /// <summary>Rows: the clean faces, then one row per head; columns: the example faces.</summary>
    public TileFigure Heads { get; }
    /// <summary>Rows: self-attention layers; columns: query region per data set; null when no layer has a token grid.</summary>
    public TileFigure? Regions { get; }
    public int Timestep { get; }
    /// <summary>Where each data set's query regions come from (its own part masks, or the synthetic faces' for faces without masks).</summary>
    public string RegionSource { get; }

    /// <summary>
    /// The most specialised heads that attend over image positions (self-attention; a cross-attention head's keys are
    /// text tokens, with nothing to overlay): the four lowest entropies and the most important such head.
    /// </summary>
    public static List<string> SpecialisedHeads(ReportResults r)
    {
        var overImage = r.Model.Layers.Where(l => l.Kind == "self").SelectMany(l => Enumerable.Range(0, l.Heads).Select(h => HeadId.NameOf(l.Name, h))).ToHashSet();
        bool OverImage(string head) => overImage.Contains(head);
        var sharp = r.Entropy.Where(e => e.Timestep == null && OverImage(e.Head)).GroupBy(e => e.Head).Select(g => (Head: g.Key, Entropy: g.Average(e => e.MeanNats)))
            .OrderBy(x => x.Entropy).ThenBy(x => x.Head, StringComparer.Ordinal).Select(x => x.Head).Take(4).ToList();
        var important = r.Degradations.Where(d => d.Kind == ConditionKind.Head && OverImage(d.Condition))
            .MaxBy(d => d.DegradationPercent)?.Condition;
        if (important != null && !sharp.Contains(important)) sharp.Add(important);
        return sharp;
    }

    /// <summary>The head's label: name, role, entropy (mean over data sets) and single-head degradation, a line each.</summary>
    public static string HeadLabel(ReportResults r, string head)
    {
        string role = r.Roles.FirstOrDefault(x => x.Heads.Contains(head))?.Name ?? "no role";
        var entropy = r.Entropy.Where(e => e.Timestep == null && e.Head == head).Select(e => e.MeanNats).DefaultIfEmpty(double.NaN).Average();
        var degradation = r.Degradations.Where(d => d.Kind == ConditionKind.Head && d.Condition == head).Select(d => d.DegradationPercent).DefaultIfEmpty(double.NaN).Average();
        return $"{head}\nrole: {role}\nH = {entropy:F2} nats\nablated: {degradation:+0.0;-0.0}%";
    }

    public static ReportExamples Capture(AttentionCaptureSession session, IReadOnlyDictionary<DataSetId, IReadOnlyList<FaceImage>> images, ReportResults r, int seed,
        CircuitAnalysisResult analysis)
    {
        int k = r.Timesteps.Count / 2, t = r.Timesteps[k];
        var examples = images[DataSetId.Real].Take(2).Select(i => (DataSetId.Real, Image: i)).Concat(images[DataSetId.Synthetic].Take(2).Select(i => (DataSetId.Synthetic, Image: i))).ToList();
        var heads = HeadTiles(session, examples, r, seed, t);
        var (regions, source) = RegionTiles(session.Layers, analysis.FeaturesOf, images, r, k);
        return new ReportExamples(heads, regions, t, source);
    }

    /// <summary>The noisy inputs x_t of <paramref name="faces"/> at <paramref name="t"/> (the analysis' paired noise).</summary>
    private static float[] Noisy(AttentionCaptureSession session, IReadOnlyList<FaceImage> faces, int seed, int t)
    {
        int len = session.SampleLength;
        var noisy = new float[faces.Count * len];
        var eps = new float[len];
        for (int i = 0; i < faces.Count; i++) ForwardNoising.ApplyPaired(faces[i], seed, t, session.Schedule, eps, noisy.AsSpan(i * len, len));
        return noisy;
    }

    private static TileFigure HeadTiles(AttentionCaptureSession session, IReadOnlyList<(DataSetId Set, FaceImage Image)> examples, ReportResults r, int seed, int t)
    {
        var heads = SpecialisedHeads(r);
        var faces = examples.Select(e => e.Image).ToList();
        using var batch = session.Run(Noisy(session, faces, seed, t), Enumerable.Repeat(t, faces.Count).ToArray(), imageIds: faces.Select(i => i.Id).ToList());
        var tiles = new SKBitmap[heads.Count + 1, faces.Count];
        for (int i = 0; i < faces.Count; i++) tiles[0, i] = HeatOverlay.Draw(faces[i], Tile);
        for (int row = 1; row <= heads.Count; row++)
        {
            var head = session.Discovery.FindHead(heads[row - 1]) ?? throw new ArgumentException($"Unknown head '{heads[row - 1]}'.");
            int layer = session.Layers.Select(l => l.Name).ToList().IndexOf(head.Layer);
            var l = session.Layers[layer];
            for (int i = 0; i < faces.Count; i++)
            {
                var map = batch.Map(layer, i, head.InLayer);
                var received = new double[l.KeyTokens];
                for (int q = 0; q < l.QueryTokens; q++)
                    for (int k = 0; k < l.KeyTokens; k++) received[k] += map[q * l.KeyTokens + k] / (double)l.QueryTokens;
                tiles[row, i] = l.GridHeight * l.GridWidth == l.KeyTokens
                    ? HeatOverlay.Draw(faces[i], Tile, received, l.GridHeight, l.GridWidth)
                    : HeatOverlay.Draw(faces[i], Tile);
            }
        }
        return new TileFigure(tiles, faces.Select(f => f.Id).ToList(), examples.Select(e => r.Label(e.Set.Name)).ToList(),
            heads.Select(h => HeadLabel(r, h)).Prepend("clean image").ToList());
    }

    /// <summary>
    /// Per layer with a token grid, data set and query part, from the analysis' mean maps at timestep index
    /// <paramref name="k"/> (no forward pass of its own): sum over queries q of w_q A[q, k'] / sum w_q, averaged over the
    /// layer's heads, with w_q the part's mean area fraction in token q over the data set's faces.
    /// </summary>
    private static (TileFigure?, string) RegionTiles(IReadOnlyList<AttentionLayer> allLayers, Func<DataSetId, DataSetFeatures> features,
        IReadOnlyDictionary<DataSetId, IReadOnlyList<FaceImage>> images, ReportResults r, int k)
    {
        var layers = Enumerable.Range(0, allLayers.Count).Where(l => TokenGeometry.For(allLayers[l]) != null).ToList();
        if (layers.Count == 0) return (null, "");
        var sets = DataSetId.Compared.Where(images.ContainsKey).ToList();
        var faces = sets.ToDictionary(s => s, s => images[s].Take(PartSampleFaces).ToList());
        var grids = layers.ToDictionary(l => l, l => TokenGeometry.For(allLayers[l])!);
        // Faces without part masks (real photographs) take the mean part fractions of the faces that have them: aligned
        // faces put eyes and mouth at about the same place.
        var masked = faces.Values.SelectMany(f => f).Where(f => f.PartMask != null).ToList();
        float[]? MeanFractions(IEnumerable<FaceImage> of, TokenGeometry grid) => Mean(of.Select(f => ImageTokenMaps.PartFractionsOf(f, grid)).ToList());
        var sources = new List<string>();
        var columns = sets.SelectMany(set => QueryParts.Select(part => (set, part))).ToList();
        var tiles = new SKBitmap[layers.Count, columns.Count];
        var means = sets.ToDictionary(s => s, s => HeatOverlay.MeanFace(faces[s]));
        foreach (var set in sets)
        {
            bool own = faces[set].All(f => f.PartMask != null);
            sources.Add($"{r.Label(set.Name)}: {(own ? "its own part masks" : masked.Count > 0 ? "the synthetic faces' mean part masks (no masks of its own)" : "none")}");
        }
        for (int row = 0; row < layers.Count; row++)
        {
            int l = layers[row];
            var (layer, grid) = (allLayers[l], grids[l]);
            int tokens = grid.Tokens;
            // One set of mean part fractions per data set on this grid, shared by its eye and mouth columns.
            var fractionsOf = sets.ToDictionary(set => set, set => MeanFractions(faces[set].All(f => f.PartMask != null) ? faces[set] : masked, grid));
            for (int c = 0; c < columns.Count; c++)
            {
                var (set, part) = columns[c];
                var fractions = fractionsOf[set];
                var w = fractions == null ? null : Enumerable.Range(0, tokens).Select(q => (double)fractions[q * FaceImage.PartCount + (int)part]).ToArray();
                double total = w?.Sum() ?? 0;
                if (w == null || total <= 0) { tiles[row, c] = HeatOverlay.Draw(means[set], Tile); continue; }
                var map = features(set).MeanMaps[k][l];
                var heat = new double[tokens];
                for (int h = 0; h < layer.Heads; h++)
                    for (int q = 0; q < tokens; q++)
                    {
                        if (w[q] == 0) continue;
                        double scale = w[q] / total / layer.Heads;
                        int at = (h * tokens + q) * tokens;
                        for (int key = 0; key < tokens; key++) heat[key] += scale * map[at + key];
                    }
                double max = w.Max();
                tiles[row, c] = HeatOverlay.Draw(means[set], Tile, heat, grid.GridHeight, grid.GridWidth, w.Select(v => v / max).ToArray());
            }
        }
        var figure = new TileFigure(tiles, columns.Select(x => $"{FaceImage.PartName(x.part)} queries").ToList(),
            columns.Select(x => $"{r.Label(x.set.Name)}, {features(x.set).ImageCount} faces").ToList(),
            layers.Select(l => $"{allLayers[l].Name}\n{grids[l].GridHeight}x{grids[l].GridWidth} tokens").ToList());
        return (figure, string.Join("; ", sources));
    }

    private static float[]? Mean(IReadOnlyList<float[]?> arrays)
    {
        var present = arrays.Where(a => a != null).ToList();
        if (present.Count == 0) return null;
        var mean = new float[present[0]!.Length];
        foreach (var a in present)
            for (int i = 0; i < mean.Length; i++) mean[i] += a![i] / present.Count;
        return mean;
    }

    public void Dispose()
    {
        Heads.Dispose();
        Regions?.Dispose();
    }
}
