using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// Example images with attention overlaid for the most specialised heads: per head, the attention each key position
/// receives (mean over queries) at the middle analysed timestep, upsampled to the image and drawn as a heat map
/// over a grey copy of the clean image.
/// </summary>
internal sealed class ReportExamples : IDisposable
{
    private ReportExamples(SKBitmap bitmap, IReadOnlyList<string> heads, IReadOnlyList<string> images, int timestep)
    {
        (Bitmap, Heads, Images, Timestep) = (bitmap, heads, images, timestep);
    }

    public SKBitmap Bitmap { get; }
    public IReadOnlyList<string> Heads { get; }
    public IReadOnlyList<string> Images { get; }
    public int Timestep { get; }

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

    public static ReportExamples Capture(AttentionCaptureSession session, IReadOnlyList<FaceImage> images, ReportResults r, int seed)
    {
        var heads = SpecialisedHeads(r);
        int t = r.Timesteps[r.Timesteps.Count / 2];
        int len = session.SampleLength;
        var noisy = new float[images.Count * len];
        var eps = new float[len];
        for (int i = 0; i < images.Count; i++)
        {
            ForwardNoising.ApplyPaired(images[i], seed, t, session.Schedule, eps, noisy.AsSpan(i * len, len));
        }
        using var batch = session.Run(noisy, Enumerable.Repeat(t, images.Count).ToArray(), imageIds: images.Select(i => i.Id).ToList());
        const int cell = 96, gap = 4, labelWidth = 130, top = 22;
        var bitmap = new SKBitmap(labelWidth + images.Count * (cell + gap), top + (heads.Count + 1) * (cell + gap));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var font = PdfDocumentBuilder.Font(11, false);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        for (int i = 0; i < images.Count; i++)
            canvas.DrawText(images[i].Id, labelWidth + i * (cell + gap), top - 8, PdfDocumentBuilder.Font(9, false), ink);
        for (int row = 0; row <= heads.Count; row++)
        {
            int y = top + row * (cell + gap);
            canvas.DrawText(row == 0 ? "clean image" : heads[row - 1], 4, y + cell / 2 + 4, font, ink);
            for (int i = 0; i < images.Count; i++)
            {
                var image = images[i];
                float[]? heat = null;
                if (row > 0)
                {
                    var (layer, head) = Locate(session, heads[row - 1]);
                    var l = session.Layers[layer];
                    var map = batch.Map(layer, i, head);
                    var received = new float[l.KeyTokens];
                    for (int q = 0; q < l.QueryTokens; q++)
                        for (int k = 0; k < l.KeyTokens; k++) received[k] += map[q * l.KeyTokens + k] / l.QueryTokens;
                    heat = l.GridHeight * l.GridWidth == l.KeyTokens ? received : null;
                    if (heat != null) heat = TokenGeometry.Upsample(heat.Select(v => (double)v).ToArray(), l.GridHeight, l.GridWidth, image.Height, image.Width).Select(v => (float)v).ToArray();
                }
                using var tile = Overlay(image, heat);
                using var img = SKImage.FromBitmap(tile);
                canvas.DrawImage(img, SKRect.Create(labelWidth + i * (cell + gap), y, cell, cell), new SKSamplingOptions(SKFilterMode.Linear));
            }
        }
        canvas.Flush();
        return new ReportExamples(bitmap, heads, images.Select(i => i.Id).ToList(), t);
    }

    private static (int Layer, int Head) Locate(AttentionCaptureSession session, string name)
    {
        var head = session.Discovery.FindHead(name) ?? throw new ArgumentException($"Unknown head '{name}'.");
        return (session.Layers.Select(l => l.Name).ToList().IndexOf(head.Layer), head.InLayer);
    }

    /// <summary>The clean image, or a grey copy with the heat map (normalised to its maximum) blended in red-yellow.</summary>
    internal static SKBitmap Overlay(FaceImage image, float[]? heat)
    {
        int w = image.Width, h = image.Height, plane = w * h;
        var bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque);
        float max = heat?.Max() ?? 1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int p = y * w + x;
                float r = image.RgbPlanes[p], g = image.RgbPlanes[plane + p], b = image.RgbPlanes[2 * plane + p];
                if (heat != null)
                {
                    float grey = 0.3f * (0.299f * r + 0.587f * g + 0.114f * b);
                    float v = max > 0 ? heat[p] / max : 0;
                    (r, g, b) = (grey + 0.7f * Math.Min(1, 2 * v), grey + 0.7f * Math.Max(0, 2 * v - 1), grey);
                }
                bitmap.SetPixel(x, y, new SKColor(SkiaPixels.ToByte(r), SkiaPixels.ToByte(g), SkiaPixels.ToByte(b)));
            }
        return bitmap;
    }

    public void Save(string path) => SkiaPixels.SavePng(Bitmap, path);

    public void Dispose() => Bitmap.Dispose();
}
