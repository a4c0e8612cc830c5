using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace DiffusionCircuits;

/// <summary>
/// Writes files atomically: to a temporary file beside the target, then rename over it. A symbolic link is written
/// through (its final target is replaced, the link stays); a character device or FIFO (<c>/dev/null</c>, a pipe) is
/// written directly, since it cannot be renamed over and holds no earlier content to lose.
/// </summary>
internal static partial class AtomicFile
{
    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, fs => fs.Write(bytes));

    public static void WriteAllText(string path, string text) =>
        WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Lets <paramref name="write"/> fill a stream that becomes <paramref name="path"/> only when it returns.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        string target = FinalTarget(path);
        if (IsDeviceOrPipe(target))
        {
            using var direct = new FileStream(target, FileMode.Open, FileAccess.Write);
            write(direct);
            return;
        }
        string tmp = TempPath(target);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                write(fs);
                if (fs.CanWrite) fs.Flush(flushToDisk: true);   // a writer that closed the stream has flushed it
            }
            File.Move(tmp, target, overwrite: true);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>The path a write to <paramref name="path"/> lands on: the final target of a symbolic link, else the path itself.</summary>
    public static string FinalTarget(string path)
    {
        var info = new FileInfo(Path.GetFullPath(path));
        return info.LinkTarget == null ? info.FullName : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? info.FullName;
    }

    /// <summary>
    /// Removes the temporary files that interrupted writes left in <paramref name="folder"/> and the subfolders our
    /// commands write (<c>charts</c>, <c>.work</c>); not the rest of a tree a user may have pointed --out at. Only call it
    /// while holding the folder's run lock: then no other writer of ours is using them.
    /// </summary>
    public static int RemoveStaleTemporaries(string folder)
    {
        int removed = 0;
        foreach (var dir in new[] { folder, Path.Combine(folder, "charts"), Path.Combine(folder, ".work") }.Where(Directory.Exists))
            foreach (var file in Directory.EnumerateFiles(dir, ".*.tmp"))
                if (TempName().IsMatch(Path.GetFileName(file)) && TryDelete(file)) removed++;
        return removed;
    }

    private static string TempPath(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");

    [GeneratedRegex(@"^\..+\.[0-9a-f]{8}\.tmp$")]
    private static partial Regex TempName();

    private static bool TryDelete(string path)
    {
        try { File.Delete(path); return true; } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return false;
    }

    /// <summary>Whether an existing path is a character or block device, FIFO or socket (stat through .NET's own native shim).</summary>
    internal static bool IsDeviceOrPipe(string path)
    {
        if (OperatingSystem.IsWindows() || !File.Exists(path)) return false;
        Span<byte> status = stackalloc byte[512];   // System.Native's FileStatus: Flags (int), then Mode (int), ...
        unsafe
        {
            fixed (byte* p = status)
                if (SystemNativeStat(path, p) != 0) return false;
        }
        int type = BitConverter.ToInt32(status.Slice(4, 4)) & 0xF000;
        return type is 0x1000 or 0x2000 or 0x6000 or 0xC000;    // S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", CharSet = CharSet.Ansi)]
    private static extern unsafe int SystemNativeStat(string path, byte* status);
}
