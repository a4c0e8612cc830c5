using System.Runtime.ExceptionServices;

namespace DiffusionCircuits.Capture;

/// <summary>
/// How many Runs of a sweep are in flight at once, and with how many ONNX Runtime threads each. A diffusion UNet's
/// small convolutions keep only part of the cores busy inside one Run (1.2-1.6 of 2 here), so on a CPU the conditions
/// of a batch (each a Run of a model part on the same rows) run side by side, each on fewer threads
/// (docs/PERFORMANCE.md). Every result is stored by condition and row, and ONNX Runtime gives the same floats at any
/// thread count (tested), so the numbers do not depend on it; the batches, and so the Run calls, do not either.
/// </summary>
/// <param name="Workers">Runs in flight at once.</param>
/// <param name="ThreadsPerRun">ONNX Runtime intra-op threads of each Run (0: its default, every core).</param>
public readonly record struct RunParallelism(int Workers, int ThreadsPerRun)
{
    /// <summary>One Run at a time, on ONNX Runtime's default threads.</summary>
    public static RunParallelism Sequential => new(1, 0);

    /// <summary>
    /// The default for sessions with <paramref name="options"/> on a machine with <paramref name="cores"/> cores
    /// (<see cref="Environment.ProcessorCount"/>, which follows affinity and container limits): one Run at a time on a
    /// GPU or when the caller fixed the thread count; on a CPU one single-threaded Run per core up to 4 cores, else
    /// Runs of 2 threads, at most 8 at once (each holds its own activations).
    /// </summary>
    public static RunParallelism For(CaptureOptions options, int? cores = null)
    {
        if (options.GpuDeviceId != null || options.Threads > 0) return new(1, options.Threads);
        int n = Math.Max(1, cores ?? Environment.ProcessorCount);
        if (n == 1) return Sequential;
        int threads = n <= 4 ? 1 : 2;
        return new(Math.Min(8, n / threads), threads);
    }

    /// <summary>
    /// Runs <paramref name="body"/> on every item (with its index), on <see cref="Workers"/> threads that each take the
    /// next item in order and keep a state of their own from <paramref name="newState"/> (masks, say). The first
    /// exception stops the other workers after their current item and is rethrown as it was. (Not Parallel.For: its
    /// replicas come and go, so a state would be made an unknown number of times, and failures come back aggregated.)
    /// </summary>
    public void ForEach<TItem, TState>(IReadOnlyList<TItem> items, Func<TState> newState, Action<int, TItem, TState> body)
    {
        int workers = Math.Clamp(Workers, 1, Math.Max(1, items.Count));
        if (workers == 1)
        {
            var state = newState();
            for (int i = 0; i < items.Count; i++) body(i, items[i], state);
            return;
        }
        int next = -1;
        ExceptionDispatchInfo? failure = null;
        void Work()
        {
            try
            {
                var state = newState();
                for (int i; Volatile.Read(ref failure) == null && (i = Interlocked.Increment(ref next)) < items.Count;) body(i, items[i], state);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, ExceptionDispatchInfo.Capture(e), null);
            }
        }
        var others = Enumerable.Range(1, workers - 1).Select(_ => Task.Run(Work)).ToArray();
        Work();
        Task.WaitAll(others);
        failure?.Throw();
    }
}
