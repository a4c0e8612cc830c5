namespace DiffusionCircuits.Reporting;

/// <summary>
/// A report's outputs are written into <c>&lt;out&gt;/.next/</c> and moved over the finished ones only once all of
/// them exist, so a rerun that fails leaves the previous report, results and tables as they were. The move is a few
/// renames on one file system; a run killed during them leaves a <c>.commit</c> list, and the next run in the folder
/// finishes the move before anything else (results.json moves before report.pdf, so the PDF never describes
/// results that are not beside it).
/// </summary>
internal static class StagedOutputs
{
    private const string StageName = ".next", CommitList = ".commit";

    /// <summary>The staging folder of an output folder.</summary>
    public static string Stage(string outDir) => Path.Combine(outDir, StageName);

    /// <summary>
    /// Finishes a move that a killed run started, or drops the half-written outputs of one that did not get that far.
    /// Call with the output folder's run lock held.
    /// </summary>
    public static void Recover(string outDir)
    {
        string stage = Stage(outDir), list = Path.Combine(stage, CommitList);
        if (!Directory.Exists(stage)) return;
        if (File.Exists(list)) Move(outDir, File.ReadAllLines(list));
        Directory.Delete(stage, recursive: true);
    }

    /// <summary>A fresh staging folder; <see cref="Recover"/> has run since the lock was taken.</summary>
    public static string Begin(string outDir) => Directory.CreateDirectory(Stage(outDir)).FullName;

    /// <summary>Moves the staged <paramref name="files"/> (relative names, in order, last one last) over the outputs.</summary>
    public static void Commit(string outDir, IReadOnlyList<string> files)
    {
        string stage = Stage(outDir);
        AtomicFile.WriteAllText(Path.Combine(stage, CommitList), string.Join('\n', files));
        Move(outDir, files);
        Directory.Delete(stage, recursive: true);
    }

    private static void Move(string outDir, IEnumerable<string> files)
    {
        foreach (var name in files.Where(n => n.Length > 0))
        {
            string from = Path.Combine(Stage(outDir), name), to = Path.Combine(outDir, name);
            if (!File.Exists(from)) continue;           // moved before the run was killed
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Move(from, AtomicFile.FinalTarget(to), overwrite: true);
        }
    }
}
