using DiffusionCircuits.Data;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Where the analysis keeps finished work. A checkpoint may split a data set's images into chunks, compute each chunk
/// with the given function (or load it when an earlier, interrupted run finished it) and join them in order.
/// </summary>
public interface IAnalysisCheckpoint
{
    /// <summary>The features of a data set: loaded where finished, computed (in chunks) where not.</summary>
    DataSetFeatures Features(DataSetId dataSet, IReadOnlyList<FaceImage> images, Func<IReadOnlyList<FaceImage>, IProgress<double>, DataSetFeatures> compute,
        IProgress<double>? progress);

    /// <param name="stage">Names the sweep (its conditions are part of what the stored work is valid for).</param>
    AblationResult Ablation(string stage, DataSetId dataSet, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions,
        Func<IReadOnlyList<FaceImage>, IProgress<double>, AblationResult> compute, IProgress<double>? progress);

    /// <summary>Activation patching of the pairs: loaded where finished, computed (in chunks of pairs) where not. By default, all at once.</summary>
    PatchingResult Patching(IReadOnlyList<PatchPair> pairs, Func<IReadOnlyList<PatchPair>, IProgress<double>, PatchingResult> compute, IProgress<double>? progress) =>
        compute(pairs, progress ?? SynchronousProgress<double>.None);

    /// <summary>
    /// The end of a stage that later stages need whole (after the features and single-head sweeps, and after the joint
    /// sweeps and patching, <paramref name="last"/>). A checkpoint shared by several processes may end the run here:
    /// until then, a stage whose chunks are not all finished returns null. By default, nothing.
    /// </summary>
    void Barrier(string stage, bool last = false) { }
}

/// <summary>Keeps nothing: every stage runs on the whole data set at once.</summary>
public sealed class NoCheckpoint : IAnalysisCheckpoint
{
    /// <summary>The one instance.</summary>
    public static readonly NoCheckpoint Instance = new();

    /// <summary>Computes the features of the whole data set.</summary>
    public DataSetFeatures Features(DataSetId dataSet, IReadOnlyList<FaceImage> images, Func<IReadOnlyList<FaceImage>, IProgress<double>, DataSetFeatures> compute,
        IProgress<double>? progress) => compute(images, progress ?? SynchronousProgress<double>.None);

    /// <summary>Computes the sweep on the whole data set.</summary>
    public AblationResult Ablation(string stage, DataSetId dataSet, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions,
        Func<IReadOnlyList<FaceImage>, IProgress<double>, AblationResult> compute, IProgress<double>? progress) => compute(images, progress ?? SynchronousProgress<double>.None);
}
