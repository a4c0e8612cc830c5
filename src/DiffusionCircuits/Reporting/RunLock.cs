namespace DiffusionCircuits.Reporting;

/// <summary>
/// Claims an output folder for one run: an exclusive lock on <c>.run.lock</c> (released by the OS even when the process
/// is killed) and <c>.run.info</c> saying who holds it, so a second run on the same folder is refused by name. Every
/// command that writes into an output folder takes it; taking it removes the temporary files interrupted writes left.
/// </summary>
internal sealed class RunLock : IDisposable
{
    private readonly FileStream _lock;
    private readonly string _info;

    private RunLock(FileStream lockStream, string info) => (_lock, _info) = (lockStream, info);

    public static RunLock Acquire(string folder, string description)
    {
        // First: an unwritable folder (read-only mount, under a file) is said so, not taken for one in use.
        ReportRunner.CheckWritable(folder);
        string lockPath = Path.Combine(folder, ".run.lock"), info = Path.Combine(folder, ".run.info");
        FileStream stream;
        try
        {
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            string other = File.Exists(info) ? File.ReadAllText(info).Trim() : "another process";
            throw new IOException($"Output folder '{folder}' is in use by another run ({other}). Wait for it, or choose another --out.");
        }
        AtomicFile.WriteAllText(info, $"pid {Environment.ProcessId} on {Environment.MachineName}, started {DateTime.Now:yyyy-MM-dd HH:mm:ss}: {description}");
        // With the lock held no other run writes here: temporary files of interrupted writes are stale.
        AtomicFile.RemoveStaleTemporaries(folder);
        return new RunLock(stream, info);
    }

    public void Dispose()
    {
        try { File.Delete(_info); } catch (IOException) { }
        _lock.Dispose();
    }
}
