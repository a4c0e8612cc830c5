using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using Microsoft.ML;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// ML.NET catalog entry points for DiffusionCircuits' stages:
/// <code>
/// var data = ml.Data.LoadFaceImages("img_align_celeba", size: 32);     // or ml.Data.SyntheticFaces(count, seed)
/// var pipe = ml.Transforms.AddDiffusionNoise(timesteps: new[] { 50, 200, 400, 600, 800 }, seed: 1)
///     .Append(ml.Transforms.CaptureAttention("models/reference-ddpm-32.onnx"))
///     .Append(ml.Transforms.AttentionEntropy())
///     .Append(ml.Transforms.AttentionProbes());
/// IDataView rows = pipe.Fit(data).Transform(data);                      // one row per (image, timestep)
/// </code>
/// Stages are lazy and stream: nothing is computed until a cursor reads a column, and memory does not grow with rows.
/// ML.NET cannot save these transformers in its model format (its ModelSaveContext and loader registration are
/// internal); keep their options instead. docs/STAGES.md shows a trainer on top.
/// </summary>
public static class DiffusionCircuitsCatalog
{
    /// <summary>Clean images from a folder (an img_align_celeba folder gets the CelebA crop and part template).</summary>
    public static FaceImageDataView LoadFaceImages(this DataOperationsCatalog data, string path, int size = 32, int maxImages = 0, int sampleSeed = 0)
    {
        var folder = new ImageFolder(path, size, maxImages, sampleSeed: sampleSeed);
        return new FaceImageDataView(folder.Read, size);
    }

    /// <summary>Procedural synthetic faces with exact part masks, deterministic from the seed.</summary>
    public static FaceImageDataView SyntheticFaces(this DataOperationsCatalog data, int count, int seed = 1, int size = 32, int start = 0)
    {
        var generator = new SyntheticFaceGenerator(seed, size);
        return new FaceImageDataView(() => generator.GenerateMany(count, start), size, count);
    }

    /// <summary>
    /// One row per (image, timestep) with paired seeded noise: columns Timestep, Noise and <paramref name="outputColumnName"/>
    /// (x_t). Without <paramref name="seed"/>, the seed comes from the MLContext (<c>new MLContext(seed: 1)</c>).
    /// </summary>
    public static DiffusionNoiseEstimator AddDiffusionNoise(this TransformsCatalog transforms, string outputColumnName = "Noisy", string inputColumnName = FaceImageDataView.ImageColumn,
        IReadOnlyList<int>? timesteps = null, int? seed = null, NoiseSchedule? schedule = null) =>
        new(outputColumnName, inputColumnName, timesteps, seed ?? ContextSeeds.Next(transforms, "AddDiffusionNoise"), schedule);

    /// <summary>Instruments the model and runs it in batches: PredictedNoise, LossMse and Attention.&lt;layer&gt; columns.</summary>
    public static AttentionCaptureEstimator CaptureAttention(this TransformsCatalog transforms, string modelPath, int batchSize = 32, CaptureOptions? options = null,
        string noisyColumnName = "Noisy") =>
        new(modelPath, options, batchSize, noisyColumnName);

    /// <summary>
    /// Per row, the loss with and without each condition's heads zero-ablated (default: every head alone), in one
    /// batch per row: BaseLossMse, AblatedLossMse and DegradationPercent columns.
    /// </summary>
    public static HeadAblationEstimator ScoreHeadAblation(this TransformsCatalog transforms, string modelPath,
        IReadOnlyList<Analysis.AblationCondition>? conditions = null, CaptureOptions? options = null, string noisyColumnName = "Noisy") =>
        new(modelPath, conditions, options, noisyColumnName);

    /// <summary>Entropy per head (<paramref name="outputColumnName"/>, nats) and normalised entropy, from the Attention.* columns.</summary>
    public static HeadFeatureEstimator AttentionEntropy(this TransformsCatalog transforms, string outputColumnName = "EntropyNats",
        string normalizedEntropyColumnName = "NormalizedEntropy") =>
        HeadFeatureEstimator.Entropy(outputColumnName, normalizedEntropyColumnName);

    /// <summary>
    /// DistanceImageUnits, EdgeAlignment, TextureAlignment, SemanticAffinity and Symmetry per head (column names
    /// prefixed with <paramref name="outputColumnNamePrefix"/>), from the Attention.* columns and the clean image.
    /// </summary>
    public static HeadFeatureEstimator AttentionProbes(this TransformsCatalog transforms, string outputColumnNamePrefix = "", string imageColumnName = "Image") =>
        HeadFeatureEstimator.Probes(outputColumnNamePrefix, imageColumnName);
}
