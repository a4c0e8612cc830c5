namespace DiffusionCircuits;

/// <summary>
/// An <see cref="IProgress{T}"/> that reports on the caller's thread, in order. <see cref="Progress{T}"/> posts each
/// report to the thread pool in a console app, so reports arrive late, out of order, and after the work has finished.
/// </summary>
public sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    /// <summary>Reports nowhere: for callers that pass no progress.</summary>
    public static readonly SynchronousProgress<T> None = new(_ => { });

    /// <inheritdoc/>
    public void Report(T value) => report(value);
}
