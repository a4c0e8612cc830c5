using System.CommandLine;
using DiffusionCircuits.Data;

namespace DiffusionCircuits.Cli;

internal static class PrepareCommand
{
    public static Command Create()
    {
        var source = new Option<string>("--source") { Description = "Image folder (an img_align_celeba folder gets the CelebA crop).", Required = true };
        var size = new Option<int>("--image-size", "--size") { Description = "Output side in pixels.", DefaultValueFactory = _ => 32 };
        var max = new Option<int>("--images", "--max-images") { Description = "At most this many images, a seeded sample over the folder (0 = all).", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out", "-o") { Description = "Output folder: images.npy (uint8 N x H x W x 3), files.txt, skipped.txt.", Required = true };
        var sheet = new Option<int>("--sheet") { Description = "Also write contact-sheet.png with this many images.", DefaultValueFactory = _ => 0 };
        var cmd = new Command("prepare", "Crop and resize an image folder exactly as the analysis does, into a NumPy array (used by the model trainer).")
        {
            source, size, max, output, sheet,
        };
        cmd.SetAction(parse =>
        {
            int s = parse.GetValue(size);
            ImageFolder folder;
            try { folder = new ImageFolder(parse.GetValue(source)!, s, parse.GetValue(max)); }
            catch (Exception e) when (e is DirectoryNotFoundException or InvalidDataException or ArgumentOutOfRangeException)
            { throw new UserFacingException(e.Message, e); }
            string dir = parse.GetValue(output)!;
            Directory.CreateDirectory(dir);
            var pixels = new List<byte>(folder.Files.Count * s * s * 3);
            var names = new List<string>();
            var faces = new List<FaceImage>();
            var buffer = new byte[s * s * 3];
            foreach (var face in folder.Read())
            {
                SynthCommand.CopyHwc(face, buffer, Span<byte>.Empty);
                pixels.AddRange(buffer);
                names.Add(face.Id);
                if (faces.Count < parse.GetValue(sheet)) faces.Add(face);
                if (names.Count % 1000 == 0) Console.Error.WriteLine($"prepare: {names.Count}/{folder.Files.Count} images");
            }
            if (names.Count == 0) throw new UserFacingException($"No readable images in '{folder.Root}' ({folder.Skipped.Count} skipped).");
            NpyFile.WriteUInt8(Path.Combine(dir, "images.npy"), pixels.ToArray(), names.Count, s, s, 3);
            AtomicFile.WriteAllText(Path.Combine(dir, "files.txt"), string.Join("\n", names) + "\n");
            AtomicFile.WriteAllText(Path.Combine(dir, "skipped.txt"), string.Concat(folder.Skipped.Select(x => $"{x.Path}\t{x.Reason}\n")));
            if (faces.Count > 0) ContactSheet.Save(faces, Path.Combine(dir, "contact-sheet.png"));
            Console.Out.WriteLine($"Prepared {names.Count} images ({s}x{s}, crop {folder.Crop}) from {folder.Root} into {dir}; skipped {folder.Skipped.Count}.");
            return CliApp.Ok;
        });
        return cmd;
    }
}
