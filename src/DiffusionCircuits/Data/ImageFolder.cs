using SkiaSharp;

namespace DiffusionCircuits.Data;

/// <summary>How a folder's images are cropped before resizing.</summary>
public enum CropKind
{
    /// <summary>The largest centred square.</summary>
    CenterSquare,

    /// <summary>
    /// The standard crop for aligned CelebA (178x218): the 128x128 square centred on (89, 121), as used by DDPM/DDIM
    /// CelebA pipelines; scaled proportionally for other image sizes.
    /// </summary>
    CelebAAligned,
}

/// <summary>An image that could not be used, and why.</summary>
public sealed record SkippedImage(string Path, string Reason);

/// <summary>
/// Reads a folder of images (jpg, jpeg, png, bmp, webp, gif) in ordinal file-name order, crops and area-resamples
/// each to a square of <see cref="Size"/> pixels. A folder named <c>img_align_celeba</c> (or one that contains it)
/// gets the CelebA crop and the aligned-face part template. Files that cannot be decoded are skipped and recorded.
/// </summary>
public sealed class ImageFolder
{
    /// <summary>File endings read as images.</summary>
    public static readonly string[] Extensions = { ".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif" };

    /// <summary>Images that cannot be decoded at reduced scale (PNG, BMP) are refused above this many pixels.</summary>
    public const long MaxDecodedPixels = 40_000_000;

    private readonly List<SkippedImage> _skipped = new();
    private byte[]? _templateMask;

    /// <param name="onlyFiles">When given, only files with these names (for example a held-out list) are read.</param>
    public ImageFolder(string path, int size, int maxImages = 0, CropKind? crop = null, int sampleSeed = 0, IReadOnlyCollection<string>? onlyFiles = null)
    {
        if (size < 8 || size > 1024) throw new ArgumentOutOfRangeException(nameof(size), size, "Image size must be between 8 and 1024 pixels.");
        string dir = Path.GetFullPath(path);
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Image folder '{path}' does not exist.");
        string sub = Path.Combine(dir, "img_align_celeba");
        if (Directory.Exists(sub)) dir = sub;
        Root = dir;
        Size = size;
        IsCelebA = Path.GetFileName(dir).Equals("img_align_celeba", StringComparison.OrdinalIgnoreCase);
        Crop = crop ?? (IsCelebA ? CropKind.CelebAAligned : CropKind.CenterSquare);

        var files = Directory.EnumerateFiles(dir)
            .Where(f => Extensions.Contains(System.IO.Path.GetExtension(f).ToLowerInvariant()))
            .Where(f => onlyFiles == null || onlyFiles.Contains(System.IO.Path.GetFileName(f)))
            .OrderBy(f => System.IO.Path.GetFileName(f), StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0 && onlyFiles != null)
            throw new InvalidDataException($"Image folder '{path}' contains none of the {onlyFiles.Count} listed files.");
        if (files.Count == 0)
            throw new InvalidDataException($"Image folder '{path}' contains no images ({string.Join(", ", Extensions)}).");
        if (maxImages > 0 && files.Count > maxImages)
        {
            // A seeded sample spread over the whole folder, then put back in name order.
            var rng = new Random(sampleSeed);
            files = files.Select(f => (f, k: rng.NextDouble())).OrderBy(t => t.k).Take(maxImages)
                .Select(t => t.f).OrderBy(f => System.IO.Path.GetFileName(f), StringComparer.Ordinal).ToList();
        }
        Files = files;
    }

    /// <summary>The folder.</summary>
    public string Root { get; }
    /// <summary>Side of the square images produced.</summary>
    public int Size { get; }
    /// <summary>Whether the folder is an aligned CelebA folder (the CelebA crop is used).</summary>
    public bool IsCelebA { get; }
    /// <summary>How images are cropped before resizing.</summary>
    public CropKind Crop { get; }
    /// <summary>The image files that will be read, in order.</summary>
    public IReadOnlyList<string> Files { get; }

    /// <summary>Images skipped so far, with reasons.</summary>
    public IReadOnlyList<SkippedImage> Skipped => _skipped;

    /// <summary>Decodes, crops and resizes each readable file, lazily; unreadable files are skipped and recorded.</summary>
    public IEnumerable<FaceImage> Read()
    {
        foreach (var file in Files)
        {
            var image = TryLoad(file, out string? reason);
            if (image == null)
            {
                lock (_skipped) _skipped.Add(new SkippedImage(file, reason!));
                continue;
            }
            yield return image;
        }
    }

    /// <summary>Loads one file, or returns null with the reason it cannot be used.</summary>
    public FaceImage? TryLoad(string file, out string? reason)
    {
        reason = null;
        float[] planes;
        int w, h;
        try
        {
            using var stream = File.OpenRead(file);
            if (stream.Length == 0)
            {
                reason = "empty file";
                return null;
            }
            using var codec = SKCodec.Create(stream, out var result);
            if (codec == null)
            {
                reason = $"not a decodable image ({result})";
                return null;
            }
            // Large images are decoded at a reduced scale when the codec supports it (JPEG), to bound memory.
            var dims = codec.Info.Size;
            if (dims.Width < 1 || dims.Height < 1)
            {
                reason = $"no pixels ({dims.Width}x{dims.Height})";
                return null;
            }
            float scale = Math.Min(1f, 4f * Size / Math.Min(dims.Width, dims.Height));
            if (scale < 1f) dims = codec.GetScaledDimensions(scale);
            if ((long)dims.Width * dims.Height > MaxDecodedPixels)
            {
                reason = $"too large to decode ({codec.Info.Width}x{codec.Info.Height}; {codec.EncodedFormat} cannot be decoded at reduced scale " +
                         $"and the limit is {MaxDecodedPixels / 1_000_000} megapixels): downscale it first";
                return null;
            }
            var info = new SKImageInfo(dims.Width, dims.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            using var bitmap = new SKBitmap(info);
            var decode = codec.GetPixels(info, bitmap.GetPixels());
            if (decode != SKCodecResult.Success && decode != SKCodecResult.IncompleteInput)
            {
                reason = $"decoding failed ({decode})";
                return null;
            }
            if (decode == SKCodecResult.IncompleteInput)
            {
                reason = "truncated image data";
                return null;
            }
            w = bitmap.Width;
            h = bitmap.Height;
            planes = SkiaPixels.ToPlanes(bitmap);
        }
        catch (Exception e) when (e is FileNotFoundException && Path.GetFileName(file).Contains('\uFFFD'))
        {
            // .NET decodes file names as UTF-8; a name in another encoding does not survive the round trip.
            reason = "its name is not valid UTF-8, so .NET cannot open it: rename it (e.g. convmv -f latin1 -t utf8)";
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = $"cannot read file: {e.Message}";
            return null;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or OutOfMemoryException)
        {
            reason = $"decoding failed: {e.Message}";
            return null;
        }

        var (x0, y0, side) = CropBox(w, h);
        var pixels = ImageResampler.AreaResample(planes, 3, w, h, x0, y0, side, side, Size, Size);
        string id = System.IO.Path.GetFileName(file);
        byte[]? mask = Crop == CropKind.CelebAAligned ? (_templateMask ??= SyntheticFaceGenerator.AlignedTemplateMask(Size)) : null;
        return new FaceImage(id, Size, Size, pixels, mask);
    }

    private (double X0, double Y0, double Side) CropBox(int w, int h)
    {
        if (Crop == CropKind.CelebAAligned)
        {
            double s = w / 178.0;
            double side = Math.Min(128 * s, Math.Min(w, h));
            double x0 = Math.Clamp(89 * s - side / 2, 0, w - side);
            double y0 = Math.Clamp(121 * (h / 218.0) - side / 2, 0, h - side);
            return (x0, y0, side);
        }
        double sq = Math.Min(w, h);
        return ((w - sq) / 2, (h - sq) / 2, sq);
    }
}
