namespace DiffusionCircuits.Reporting;

/// <summary>
/// Claims an output folder for one run: an exclusive lock on <c>.run.lock</c> (released by the OS even when the process
/// is killed) and <c>.run.info</c> saying who holds it, so a second run on the same folder is refused by name; both
/// files are removed when the run ends. Every
/// command that writes into an output folder takes it; taking it removes the temporary files interrupted writes left.
/// </summary>
internal sealed class RunLock : IDisposable
{
    private readonly FileStream _lock;
    private readonly string _info;

    private RunLock(FileStream lockStream, string info) => (_lock, _info) = (lockStream, info);

    /// <param name="shard">
    /// A shard of a run shared by several processes takes a lock of its own (<c>.shard-K-of-N.lock</c>), so two copies of one
    /// shard cannot run at once, and leaves the folder's temporary files alone: the other shards are writing theirs.
    /// </param>
    public static RunLock Acquire(string folder, string description, WorkShard? shard = null)
    {
        // First: an unwritable folder (read-only mount, under a file) is said so, not taken for one in use.
        ReportRunner.CheckWritable(folder);
        string name = shard is { } s ? $"shard-{s.Index}-of-{s.Count}" : "run";
        string lockPath = Path.Combine(folder, $".{name}.lock"), info = Path.Combine(folder, $".{name}.info");
        FileStream stream;
        try
        {
            // The lock file goes when the run ends (DeleteOnClose); after a kill it stays, unlocked, and the next run takes it.
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException)
        {
            string other = File.Exists(info) ? File.ReadAllText(info).Trim() : "another process";
            throw new IOException(shard != null
                ? $"Shard {shard} of output folder '{folder}' is already running ({other})."
                : $"Output folder '{folder}' is in use by another run ({other}). Wait for it, or choose another --out.");
        }
        AtomicFile.WriteAllText(info, $"pid {Environment.ProcessId} on {Environment.MachineName}, started {DateTime.Now:yyyy-MM-dd HH:mm:ss}: {description}");
        // With the lock held no other run writes here: temporary files of interrupted writes are stale (not so for a shard).
        if (shard == null) AtomicFile.RemoveStaleTemporaries(folder);
        return new RunLock(stream, info);
    }

    public void Dispose()
    {
        try { File.Delete(_info); } catch (IOException) { }
        _lock.Dispose();
    }
}
