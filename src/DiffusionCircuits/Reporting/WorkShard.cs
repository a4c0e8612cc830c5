using System.Globalization;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// One of <see cref="Count"/> processes that share a report's work folder (<c>report --shard K/N</c>): the chunks of
/// every stage are dealt round-robin, unit u to shard u mod N, in the order one machine would compute them, so the
/// shards never write the same file. <see cref="Index"/> counts from 0, as <c>SLURM_ARRAY_TASK_ID</c> (with
/// <c>--array=0-(N-1)</c>) and Kubernetes' <c>JOB_COMPLETION_INDEX</c> do.
/// </summary>
public readonly record struct WorkShard(int Index, int Count)
{
    /// <summary>Shards at most.</summary>
    public const int MaxCount = 10_000;

    /// <summary>Whether work unit <paramref name="unit"/> (its place in the run's order) is this shard's.</summary>
    public bool Owns(int unit) => unit % Count == Index;

    /// <summary>"K/N", as the option takes it.</summary>
    public override string ToString() => $"{Index}/{Count}";

    /// <summary>Parses "K/N" with 0 &lt;= K &lt; N &lt;= <see cref="MaxCount"/>; the message says what is allowed.</summary>
    public static WorkShard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int k)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= MaxCount && k < n)
            return new WorkShard(k, n);
        throw new ArgumentException($"--shard must be K/N with 0 <= K < N <= {MaxCount} (K counts from 0, as SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX do); got '{text}'.");
    }
}

/// <summary>
/// Ends a shard's run (<c>ReportOptions.Shard</c>) at a barrier: the shard has computed its chunks up to the
/// first stage that other shards have not finished (or the whole analysis is finished), and stops there. Not an error.
/// </summary>
public sealed class ShardStoppedException(string message, int chunksComputed, int chunksPending, bool allFinished) : Exception(message)
{
    /// <summary>Chunks this shard computed in this run.</summary>
    public int ChunksComputed { get; } = chunksComputed;
    /// <summary>Chunks of other shards not yet finished at the barrier (0 when <see cref="AllFinished"/>).</summary>
    public int ChunksPending { get; } = chunksPending;
    /// <summary>Every chunk of every stage is finished: a plain report on the folder assembles the results.</summary>
    public bool AllFinished { get; } = allFinished;
}
