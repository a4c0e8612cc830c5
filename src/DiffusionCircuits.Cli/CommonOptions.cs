using System.CommandLine;
using DiffusionCircuits.Data;

namespace DiffusionCircuits.Cli;

/// <summary>Options several commands share, defined once so their names, defaults and help text agree.</summary>
internal static class CommonOptions
{
    public static Option<string> Model() => new("--model") { Description = "The denoiser (ONNX).", DefaultValueFactory = _ => Defaults.ModelPath };

    public static Option<string?> Real(string extra = "") => new("--real") { Description = "Real faces: an img_align_celeba folder (or any image folder)." + extra };

    public static Option<string?> Heldout() => new("--heldout") { Description = "Only these files of --real (one name per line, # comments), e.g. models/heldout-celeba.txt." };

    public static Option<int> Images(int defaultCount) => new("--images") { Description = "Images per data set.", DefaultValueFactory = _ => defaultCount };

    public static Option<int> SyntheticSeed() => new("--synthetic-seed") { Description = "Seed of the synthetic faces.", DefaultValueFactory = _ => 1 };

    public static Option<string> Timesteps() => new("--timesteps") { Description = "Comma-separated timesteps in 0..999.", DefaultValueFactory = _ => "50,200,400,600,800" };

    public static int[] ParseTimesteps(string text) => EvaluateCommand.ParseTimesteps(text);

    /// <summary>Runs library work, turning its input errors (missing or bad files, bad models, bad options) into one-line user errors.</summary>
    public static T Translate<T>(Func<T> work)
    {
        try { return work(); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException or Onnx.OnnxModelException
                                      or ArgumentException or UnauthorizedAccessException or IOException)
        {
            throw new UserFacingException(e.Message, e);
        }
    }

    public static void Translate(Action work) => Translate(() => { work(); return 0; });

    /// <summary>Up to <paramref name="count"/> real faces of a folder, optionally restricted to a file list; errors name the folder or list.</summary>
    public static (List<FaceImage> Images, ImageFolder Folder) LoadReal(string folder, string? listFile, int size, int count)
    {
        HashSet<string>? only = null;
        if (listFile != null)
        {
            if (!File.Exists(listFile)) throw new UserFacingException($"File list '{listFile}' does not exist.");
            only = File.ReadAllLines(listFile).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToHashSet();
        }
        try
        {
            var images = new ImageFolder(folder, size, onlyFiles: only);
            return (images.Read().Take(count).ToList(), images);
        }
        catch (Exception e) when (e is DirectoryNotFoundException or InvalidDataException) { throw new UserFacingException(e.Message, e); }
    }
}
