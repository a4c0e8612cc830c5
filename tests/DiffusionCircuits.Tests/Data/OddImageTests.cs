using DiffusionCircuits.Data;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Data;

/// <summary>Odd but valid images decode to what they show; broken ones are skipped with a reason (tools/fixtures/odd_images.py).</summary>
public class OddImageTests
{
    private static readonly string Folder = ModelRunner.Fixture("images");
    private static readonly float[] Red = { 220 / 255f, 30 / 255f, 40 / 255f };

    private static FaceImage? Load(string name, out string? reason) => new ImageFolder(Folder, 8).TryLoad(Path.Combine(Folder, name), out reason);

    private static void AssertColour(FaceImage image, float[] rgb, float tolerance)
    {
        int n = image.Width * image.Height;
        for (int c = 0; c < 3; c++)
            Assert.InRange(image.RgbPlanes.Skip(c * n).Take(n).Average(), rgb[c] - tolerance, rgb[c] + tolerance);
    }

    [Theory]
    [InlineData("progressive.jpg", 0.03f)]
    [InlineData("photo.bmp", 0.01f)]
    [InlineData("photo.webp", 0.01f)]
    [InlineData("one-pixel.png", 0.01f)]
    [InlineData("png-named.jpg", 0.01f)]      // content decides, not the extension
    [InlineData("huge.jpg", 0.03f)]           // 10,000 x 10,000, decoded at reduced scale
    [InlineData("visage-été-顔.png", 0.01f)]
    public void Valid_images_in_any_supported_form_decode_to_their_colour(string name, float tolerance)
    {
        var image = Load(name, out var reason);
        Assert.True(image != null, $"{name}: {reason}");
        Assert.Equal((8, 8), (image!.Width, image.Height));
        AssertColour(image, Red, tolerance);
    }

    [Fact]
    public void Cmyk_grey_16_bit_palette_and_transparent_images_decode_to_rgb()
    {
        AssertColour(Load("gray.png", out _)!, new[] { 128 / 255f, 128 / 255f, 128 / 255f }, 0.01f);
        AssertColour(Load("gray16.png", out _)!, new[] { 0.859f, 0.859f, 0.859f }, 0.01f);
        AssertColour(Load("transparent.png", out _)!, new[] { 1f, 1f, 1f }, 0.01f);        // alpha over white
        var cmyk = Load("cmyk.jpg", out var reason);
        Assert.True(cmyk != null, reason);
        Assert.True(cmyk!.RgbPlanes[0] > 0.5f && cmyk.RgbPlanes[64] < 0.3f, "CMYK (0, 220, 200, 30) is a red");
        Assert.NotNull(Load("palette.png", out _));
    }

    [Fact]
    public void A_huge_image_that_cannot_be_decoded_at_reduced_scale_is_skipped_saying_why()
    {
        Assert.Null(Load("huge.png", out var reason));
        Assert.Contains("too large", reason);
        Assert.Contains("10000x10000", reason);
    }

    [Fact]
    public void Garbage_with_an_image_extension_is_skipped_not_fatal()
    {
        Assert.Null(Load("garbage.png", out var reason));
        Assert.Contains("not a decodable image", reason);
    }

    [Fact]
    public void The_whole_folder_reads_without_crashing_and_counts_what_it_skipped()
    {
        var folder = new ImageFolder(Folder, 8);
        var images = folder.Read().ToList();
        Assert.Equal(folder.Files.Count, images.Count + folder.Skipped.Count);
        Assert.Equal(new[] { "garbage.png", "huge.png" }, folder.Skipped.Select(s => Path.GetFileName(s.Path)).OrderBy(x => x, StringComparer.Ordinal));
    }

    [Fact]
    public void Symbolic_links_to_images_are_followed()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        File.CreateSymbolicLink(Path.Combine(dir, "link.png"), Path.Combine(Folder, "one-pixel.png"));
        var image = new ImageFolder(dir, 8).Read().Single();
        AssertColour(image, Red, 0.01f);
    }

    [Fact]
    public void A_fuzzed_image_never_crashes_the_reader()
    {
        var original = File.ReadAllBytes(Path.Combine(Folder, "progressive.jpg"));
        var png = File.ReadAllBytes(Path.Combine(Folder, "photo.bmp"));
        var dir = Directory.CreateTempSubdirectory().FullName;
        var rng = new Random(12345);
        int decoded = 0, skipped = 0;
        for (int k = 0; k < 300; k++)
        {
            var source = k % 2 == 0 ? original : png;
            var bytes = (byte[])source.Clone();
            if (k % 3 == 0) bytes = bytes[..rng.Next(1, bytes.Length)];                       // truncation
            else for (int f = 0; f < 1 + rng.Next(8); f++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));   // bit flips
            var path = Path.Combine(dir, $"fuzz{k}{(k % 2 == 0 ? ".jpg" : ".bmp")}");
            File.WriteAllBytes(path, bytes);
            var image = new ImageFolder(dir, 8).TryLoad(path, out var reason);
            if (image == null) { skipped++; Assert.False(string.IsNullOrEmpty(reason)); }
            else { decoded++; Assert.All(image.RgbPlanes, v => Assert.True(float.IsFinite(v) && v >= 0 && v <= 1)); }
        }
        Assert.Equal(300, decoded + skipped);
        Assert.True(skipped > 0 && decoded > 0, $"decoded {decoded}, skipped {skipped}");
    }
}
