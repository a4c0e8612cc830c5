using System.Runtime.ExceptionServices;

namespace DiffusionCircuits;

/// <summary>
/// Independent pieces of a computation (the seeded resamplings of the statistics, say) on every core, their results in
/// input order. Each piece owns its buffers and its random generator, so no result depends on which thread ran it or
/// when: the output is the same bits as one piece after the other.
/// </summary>
internal static class IndependentPieces
{
    /// <summary>
    /// <c>piece(0) .. piece(count - 1)</c>, computed on the thread pool; a failure comes back as itself (the first one
    /// seen), not wrapped in an <see cref="AggregateException"/>.
    /// </summary>
    public static T[] Map<T>(int count, Func<int, T> piece)
    {
        var results = new T[count];
        Run(count, i => results[i] = piece(i));
        return results;
    }

    /// <summary><c>piece(0) .. piece(count - 1)</c> for their effects (each writes its own part of a result), as <see cref="Map{T}"/>.</summary>
    public static void Run(int count, Action<int> piece)
    {
        try
        {
            Parallel.For(0, count, piece);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
    }
}
