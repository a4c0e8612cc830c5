using System.CommandLine;
using System.Text.Json;
using DiffusionCircuits.Data;
using SkiaSharp;

namespace DiffusionCircuits.Cli;

internal static class SynthCommand
{
    public static Command Create()
    {
        var count = new Option<int>("--images", "--count") { Description = "Number of faces to generate.", DefaultValueFactory = _ => 64 };
        var size = new Option<int>("--image-size", "--size") { Description = "Side of each image in pixels (8..1024).", DefaultValueFactory = _ => 64 };
        var seed = new Option<int>("--seed") { Description = "Seed: the same seed gives the same faces.", DefaultValueFactory = _ => 1 };
        var start = new Option<int>("--start") { Description = "Index of the first face (faces are independent of each other).", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out", "-o") { Description = "Output folder for PNGs, masks and manifest.json.", Required = true };
        var npy = new Option<bool>("--npy") { Description = "Also write images.npy (uint8, N x H x W x 3) and masks.npy (uint8, N x H x W)." };
        var sheet = new Option<int>("--sheet") { Description = "Also write contact-sheet.png with this many faces (0 = none).", DefaultValueFactory = _ => 0 };
        var cmd = new Command("synth", "Generate procedural synthetic faces with per-pixel part masks (background, hair, skin, brows, eyes, nose, mouth).")
        {
            count, size, seed, start, output, npy, sheet,
        };
        cmd.SetAction(parse =>
        {
            int n = parse.GetValue(count), s = parse.GetValue(size);
            if (n < 1) throw new UserFacingException($"--count must be at least 1 (got {n}).");
            if (s < 8 || s > 1024) throw new UserFacingException($"--size must be between 8 and 1024 (got {s}).");
            string dir = parse.GetValue(output)!;
            Directory.CreateDirectory(Path.Combine(dir, "images"));
            Directory.CreateDirectory(Path.Combine(dir, "masks"));
            var gen = new SyntheticFaceGenerator(parse.GetValue(seed), s);
            bool writeNpy = parse.GetValue(npy);
            var images = writeNpy ? new byte[n * s * s * 3] : null;
            var masks = writeNpy ? new byte[n * s * s] : null;
            var entries = new List<object>();
            int first = parse.GetValue(start);
            var faces = new List<FaceImage>();
            int k = 0;
            foreach (var face in gen.GenerateMany(n, first))
            {
                using (var bmp = SkiaPixels.FromPlanes(face.RgbPlanes, s, s)) SkiaPixels.SavePng(bmp, Path.Combine(dir, "images", face.Id + ".png"));
                using (var maskBmp = MaskBitmap(face.PartMask!, s)) SkiaPixels.SavePng(maskBmp, Path.Combine(dir, "masks", face.Id + ".png"));
                if (writeNpy) CopyHwc(face, images!.AsSpan(k * s * s * 3, s * s * 3), masks!.AsSpan(k * s * s, s * s));
                entries.Add(new { id = face.Id, image = $"images/{face.Id}.png", mask = $"masks/{face.Id}.png" });
                if (k < parse.GetValue(sheet)) faces.Add(face);
                k++;
                if (k % 500 == 0) Console.Error.WriteLine($"synth: {k}/{n} faces");
            }
            if (writeNpy)
            {
                NpyFile.WriteUInt8(Path.Combine(dir, "images.npy"), images, n, s, s, 3);
                NpyFile.WriteUInt8(Path.Combine(dir, "masks.npy"), masks, n, s, s);
            }
            var manifest = new
            {
                generator = "DiffusionCircuits.SyntheticFaceGenerator",
                seed = parse.GetValue(seed), size = s, start = first, count = n,
                parts = Enum.GetNames<FacePart>().Select(x => x.ToLowerInvariant()).ToArray(),
                maskEncoding = "mask PNG red channel = part index (0 background .. 6 mouth); RGB shows the part palette",
                faces = entries,
            };
            AtomicFile.WriteAllText(Path.Combine(dir, "manifest.json"), JsonFiles.Serialize(manifest));
            if (faces.Count > 0) ContactSheet.Save(faces, Path.Combine(dir, "contact-sheet.png"));
            Console.Out.WriteLine($"Wrote {n} synthetic faces ({s}x{s}) to {dir}");
            return CliApp.Ok;
        });
        return cmd;
    }

    internal static void CopyHwc(FaceImage face, Span<byte> rgb, Span<byte> mask)
    {
        int n = face.Width * face.Height;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                rgb[i * 3 + c] = SkiaPixels.ToByte(face.RgbPlanes[c * n + i]);
        if (!mask.IsEmpty) face.PartMask?.CopyTo(mask);
    }

    /// <summary>Mask as a PNG: red channel holds the part index exactly, green/blue show the palette for people.</summary>
    private static SKBitmap MaskBitmap(byte[] mask, int s)
    {
        var bmp = new SKBitmap(new SKImageInfo(s, s, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var px = bmp.GetPixelSpan();
        for (int i = 0; i < mask.Length; i++)
        {
            var c = SkiaPixels.PartPalette[mask[i]];
            px[i * 4] = mask[i];
            px[i * 4 + 1] = c.Green;
            px[i * 4 + 2] = c.Blue;
            px[i * 4 + 3] = 255;
        }
        return bmp;
    }
}
