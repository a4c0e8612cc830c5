using DiffusionCircuits.Data;

namespace DiffusionCircuits.Diffusion;

/// <summary>Held-out denoising error at one timestep, next to the two network-free baselines.</summary>
public sealed record EpsilonMse(int Timestep, int Images, double ModelMse, double ZeroBaselineMse, double NoisyInputBaselineMse);

/// <summary>
/// Measures a denoiser: mean over images and pixels of (eps_hat - eps)^2 with paired seeded noise, and the same for
/// eps_hat = 0 and eps_hat = x_t. Streams images in batches; memory does not grow with the image count.
/// </summary>
public static class DenoiserEvaluation
{
    /// <summary>eps-MSE per timestep on the images, next to the baselines eps_hat = 0 and eps_hat = x_t.</summary>
    public static IReadOnlyList<EpsilonMse> Measure(DenoiserSession denoiser, NoiseSchedule schedule, IEnumerable<FaceImage> images,
        IReadOnlyList<int> timesteps, int seed, int batchSize = 64, IProgress<int>? progress = null)
    {
        int len = denoiser.SampleLength;
        var sums = timesteps.Select(_ => new double[3]).ToArray();
        int count = 0;
        var batch = new List<FaceImage>(batchSize);
        void Flush()
        {
            if (batch.Count == 0) return;
            int b = batch.Count;
            for (int k = 0; k < timesteps.Count; k++)
            {
                int t = timesteps[k];
                var noisy = new float[b * len];
                var eps = new float[b * len];
                for (int i = 0; i < b; i++)
                {
                    CheckSize(batch[i], denoiser);
                    ForwardNoising.ApplyPaired(batch[i], seed, t, schedule, eps.AsSpan(i * len, len), noisy.AsSpan(i * len, len));
                }
                var predicted = denoiser.PredictNoise(noisy, Enumerable.Repeat(t, b).ToArray(), batch.Select(i => i.Id).ToArray());
                if (schedule.Prediction != PredictionType.Epsilon)
                    for (int i = 0; i < b; i++)
                        ForwardNoising.NoiseFromPrediction(predicted.AsSpan(i * len, len).ToArray(), noisy.AsSpan(i * len, len), schedule, t, predicted.AsSpan(i * len, len));
                for (int i = 0; i < b; i++)
                    if (!System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(predicted.AsSpan(i * len, len)))
                        throw new InvalidDataException($"The model produced NaN or infinite noise for image '{batch[i].Id}' at t = {t}.");
                for (int j = 0; j < noisy.Length; j++)
                {
                    double e = eps[j];
                    sums[k][0] += (predicted[j] - e) * (predicted[j] - e);
                    sums[k][1] += e * e;
                    sums[k][2] += (noisy[j] - e) * (noisy[j] - e);
                }
            }
            count += b;
            progress?.Report(count);
            batch.Clear();
        }
        foreach (var image in images)
        {
            batch.Add(image);
            if (batch.Count == batchSize) Flush();
        }
        Flush();
        if (count == 0) throw new InvalidDataException("No images to evaluate the denoiser on.");
        double n = (double)count * len;
        return timesteps.Select((t, k) => new EpsilonMse(t, count, sums[k][0] / n, sums[k][1] / n, sums[k][2] / n)).ToList();
    }

    internal static void CheckSize(FaceImage image, DenoiserSession denoiser) => CheckSize(image, denoiser.Channels, denoiser.Height, denoiser.Width);

    /// <summary>
    /// Images (or, for a latent model, their latents) must match the model's input exactly; the message names the
    /// image, the input and both sizes.
    /// </summary>
    public static void CheckSize(FaceImage image, int channels, int height, int width, string inputName = "sample")
    {
        int sampleLength = channels * height * width;
        if (image.Latent is { } latent)
        {
            if (latent.Length != sampleLength)
                throw new InvalidDataException($"The latent of image '{image.Id}' has {latent.Length} values; the model's input '{inputName}' takes {channels}x{height}x{width}.");
            return;
        }
        if (image.Width != width || image.Height != height || image.RgbPlanes.Length != sampleLength)
            throw new InvalidDataException(
                $"Image '{image.Id}' is {image.RgbPlanes.Length / Math.Max(1, image.Width * image.Height)}x{image.Height}x{image.Width} (channels x height x width); " +
                $"the model's input '{inputName}' takes {channels}x{height}x{width}" +
                (channels != 3 ? $" ({channels} channels: a latent model, which needs its VAE encoder: --pipeline DIR or --vae-encoder FILE)." : "."));
    }
}
