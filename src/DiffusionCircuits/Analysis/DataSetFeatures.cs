using DiffusionCircuits.Data;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Analysis;

/// <summary>Per-head features of every (image, timestep) of one data set, and its mean attention maps per timestep.</summary>
public sealed class DataSetFeatures
{
    /// <param name="mapSizes">Per layer, H x S_q x S_k (the size of the mean maps kept); empty when maps are not averaged.</param>
    public DataSetFeatures(DataSetId dataSet, IReadOnlyList<int> timesteps, IReadOnlyList<int> headsPerLayer, IReadOnlyList<int> mapSizes)
    {
        DataSet = dataSet;
        Timesteps = timesteps;
        HeadsPerLayer = headsPerLayer;
        MeanMaps = timesteps.Select(_ => mapSizes.Select(n => new double[n]).ToArray()).ToArray();
        Features = timesteps.Select(_ => new List<HeadFeatures[]>()).ToArray();
        LossMse = timesteps.Select(_ => new List<float>()).ToArray();
    }

    /// <summary>Which data set these are the features of.</summary>
    public DataSetId DataSet { get; }
    /// <summary>The timesteps, in the order of the per-timestep lists.</summary>
    public IReadOnlyList<int> Timesteps { get; }
    internal IReadOnlyList<int> HeadsPerLayer { get; }
    /// <summary>The images, in the order of the per-image lists.</summary>
    public List<string> ImageIds { get; } = new();
    /// <summary>[timestep index][image][head]: features.</summary>
    public List<HeadFeatures[]>[] Features { get; }
    /// <summary>[timestep index][image]: mean squared error of the predicted noise.</summary>
    public List<float>[] LossMse { get; }
    /// <summary>[timestep index][layer]: sum, then mean, of the maps [H, S_q, S_k] over images.</summary>
    public double[][][] MeanMaps { get; }
    /// <summary>Number of images.</summary>
    public int ImageCount => ImageIds.Count;

    /// <summary>Values of one feature of one head over images at timestep index <paramref name="k"/> (or all timesteps).</summary>
    public double[] Values(int head, HeadFeature feature, int? k = null) =>
        (k is int kk ? Features[kk] : Features.SelectMany(x => x)).Select(row => (double)row[head][feature]).ToArray();

    /// <summary>Per image, the feature averaged over timesteps (the unit of resampling is the image).</summary>
    public double[] PerImageMeans(int head, HeadFeature feature) =>
        Enumerable.Range(0, ImageCount).Select(i => Timesteps.Select((_, k) => (double)Features[k][i][head][feature]).Average()).ToArray();
}
