using DiffusionCircuits.Data;
using SkiaSharp;

namespace DiffusionCircuits.Tests.Data;

public class ImageFolderTests
{
    private static string SavePng(string dir, string name, int w, int h, Func<int, int, SKColor> color)
    {
        using var bmp = new SKBitmap(w, h);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) bmp.SetPixel(x, y, color(x, y));
        var path = Path.Combine(dir, name);
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }

    [Fact]
    public void Area_resampling_of_a_fine_checkerboard_gives_flat_grey_not_aliasing()
    {
        int n = 64;
        var planes = new float[3 * n * n];
        for (int c = 0; c < 3; c++) for (int y = 0; y < n; y++) for (int x = 0; x < n; x++) planes[c * n * n + y * n + x] = (x + y) % 2;
        var small = ImageResampler.AreaResample(planes, 3, n, n, 0, 0, n, n, 10, 10);   // non-integer ratio 6.4
        Assert.All(small, v => Assert.InRange(v, 0.45f, 0.55f));
    }

    [Fact]
    public void Area_resampling_preserves_the_mean()
    {
        var rng = new Random(1);
        var planes = Enumerable.Range(0, 3 * 50 * 30).Select(_ => (float)rng.NextDouble()).ToArray();
        var small = ImageResampler.AreaResample(planes, 3, 50, 30, 0, 0, 50, 30, 7, 5);
        Assert.Equal(planes.Average(), small.Average(), 4);
    }

    [Fact]
    public void A_file_whose_name_is_not_utf8_is_skipped_with_that_reason_not_as_missing()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        SavePng(dir, "a.png", 16, 16, (_, _) => SKColors.Green);
        SavePng(dir, "latin1.png", 16, 16, (_, _) => SKColors.Red);
        // A Latin-1 name (byte 0xE9, "é") that .NET cannot represent; only a shell can make one.
        var mv = System.Diagnostics.Process.Start("bash", new[] { "-c", $"cd '{dir}' && mv latin1.png \"$(printf 'caf\\xe9.png')\"" })!;
        mv.WaitForExit();
        Assert.Equal(0, mv.ExitCode);
        var folder = new ImageFolder(dir, 8);
        Assert.Single(folder.Read());
        var skipped = Assert.Single(folder.Skipped);
        Assert.Contains("not valid UTF-8", skipped.Reason);
    }

    [Fact]
    public void Reads_images_in_name_order_and_skips_bad_files_with_reasons()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        SavePng(dir, "b.png", 40, 20, (x, _) => x < 20 ? SKColors.Red : SKColors.Blue);
        SavePng(dir, "a.png", 16, 16, (_, _) => SKColors.Green);
        File.WriteAllBytes(Path.Combine(dir, "c.jpg"), Array.Empty<byte>());
        File.WriteAllText(Path.Combine(dir, "d.png"), "not an image");
        var good = File.ReadAllBytes(Path.Combine(dir, "b.png"));
        File.WriteAllBytes(Path.Combine(dir, "e.png"), good[..(good.Length / 2)]);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "ignored: not an image extension");

        var folder = new ImageFolder(dir, 8);
        var images = folder.Read().ToList();
        Assert.Equal(new[] { "a.png", "b.png" }, images.Select(i => i.Id));
        Assert.Equal(new[] { "c.jpg", "d.png", "e.png" }, folder.Skipped.Select(s => Path.GetFileName(s.Path)));
        Assert.Contains("empty", folder.Skipped[0].Reason);
        Assert.Contains("truncated", folder.Skipped[2].Reason);
        // b.png is 40x20: the centre square is half red, half blue.
        var b = images[1];
        Assert.Equal(1f, b.RgbPlanes[0], 2);                // left column red
        Assert.Equal(1f, b.RgbPlanes[2 * 64 + 7], 2);       // right column blue
        Assert.Null(b.PartMask);
    }

    [Fact]
    public void Max_images_takes_a_deterministic_sample()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        for (int i = 0; i < 12; i++) SavePng(dir, $"{i:D2}.png", 8, 8, (_, _) => SKColors.Gray);
        var a = new ImageFolder(dir, 8, maxImages: 5, sampleSeed: 3).Files;
        Assert.Equal(5, a.Count);
        Assert.Equal(a, new ImageFolder(dir, 8, maxImages: 5, sampleSeed: 3).Files);
        Assert.Equal(a.OrderBy(f => f, StringComparer.Ordinal), a);
    }

    [Fact]
    public void A_missing_or_empty_folder_is_a_clear_error()
    {
        Assert.Contains("does not exist", Assert.Throws<DirectoryNotFoundException>(() => new ImageFolder("/no/such/folder", 32)).Message);
        var empty = Directory.CreateTempSubdirectory().FullName;
        Assert.Contains("contains no images", Assert.Throws<InvalidDataException>(() => new ImageFolder(empty, 32)).Message);
    }

    [Fact]
    public void An_img_align_celeba_folder_gets_the_celeba_crop_and_part_template()
    {
        var root = Directory.CreateTempSubdirectory().FullName;
        var dir = Directory.CreateDirectory(Path.Combine(root, "img_align_celeba")).FullName;
        // 178x218 with a white square exactly where the standard crop (x 25..153, y 57..185) lies.
        SavePng(dir, "000001.jpg.png", 178, 218, (x, y) => x >= 25 && x < 153 && y >= 57 && y < 185 ? SKColors.White : SKColors.Black);
        var folder = new ImageFolder(root, 16);
        Assert.True(folder.IsCelebA);
        Assert.Equal(CropKind.CelebAAligned, folder.Crop);
        var face = folder.Read().Single();
        Assert.All(face.RgbPlanes, v => Assert.Equal(1f, v, 3));
        Assert.NotNull(face.PartMask);
    }

    [Fact]
    [Trait("Needs", "shared")]
    public void Shared_celeba_sample_reads_completely()
    {
        var path = Path.Combine(Support.ModelRunner.RepoRoot(), "..", "shared", "data", "celeba");
        Assert.True(Directory.Exists(path), $"This test needs ../shared/data/celeba beside the repository (looked in {Path.GetFullPath(path)}).");
        var folder = new ImageFolder(path, 32, maxImages: 300, sampleSeed: 1);
        Assert.Equal(300, folder.Read().Count());
        Assert.Empty(folder.Skipped);
    }
}
