using DiffusionCircuits.Data;
using System.Text;

namespace DiffusionCircuits.Diffusion;

/// <summary>
/// Seeded Gaussian noise that depends only on (run seed, image id, timestep): baseline and ablated runs of the same
/// image see the same eps (paired design), whatever the batch order or which process computes them.
/// </summary>
public static class PairedNoise
{
    /// <summary>Fills <paramref name="eps"/> with standard normal noise that depends only on (seed, image id, timestep).</summary>
    public static void Fill(Span<float> eps, int seed, string imageId, int timestep)
    {
        var rng = new Random(StableSeed.Of(seed, StableHash(imageId), timestep, 0xE95));
        for (int i = 0; i < eps.Length; i += 2)
        {
            // Box-Muller: two independent N(0, 1) values per pair of uniforms.
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            eps[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < eps.Length) eps[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
    }

    /// <summary>FNV-1a over UTF-8: stable across processes and platforms.</summary>
    public static long StableHash(string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(text)) h = (h ^ b) * 1099511628211UL;
        return (long)h;
    }
}

/// <summary>Forward noising of clean images into the model's space: pixels in [0, 1] to [-1, 1], or the image's latent.</summary>
public static class ForwardNoising
{
    /// <summary>x_t = sqrt(abar_t) (2 x0 - 1) + sqrt(1 - abar_t) eps, written into <paramref name="noisy"/>.</summary>
    public static void Apply(ReadOnlySpan<float> cleanUnit, ReadOnlySpan<float> eps, NoiseSchedule schedule, int t, Span<float> noisy)
    {
        float a = (float)schedule.SignalScale(t), s = (float)schedule.NoiseScale(t);
        for (int i = 0; i < noisy.Length; i++) noisy[i] = a * (2f * cleanUnit[i] - 1f) + s * eps[i];
    }

    /// <summary>
    /// x_t of a clean image with its paired noise: fills <paramref name="eps"/> with the noise of (seed, image id, t)
    /// and <paramref name="noisy"/> with x_t. Every stage noises images through this, so all of them see the same x_t.
    /// </summary>
    public static void ApplyPaired(FaceImage image, int seed, int t, NoiseSchedule schedule, Span<float> eps, Span<float> noisy)
    {
        PairedNoise.Fill(eps, seed, image.Id, t);
        if (image.Latent is { } latent) ApplyToClean(latent, eps, schedule, t, noisy);
        else Apply(image.RgbPlanes, eps, schedule, t, noisy);
    }

    /// <summary>x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps for x0 already in the model's space (a latent).</summary>
    public static void ApplyToClean(ReadOnlySpan<float> clean, ReadOnlySpan<float> eps, NoiseSchedule schedule, int t, Span<float> noisy)
    {
        float a = (float)schedule.SignalScale(t), s = (float)schedule.NoiseScale(t);
        for (int i = 0; i < noisy.Length; i++) noisy[i] = a * clean[i] + s * eps[i];
    }

    /// <summary>
    /// The noise eps_hat a model's output stands for (<see cref="NoiseSchedule.Prediction"/>): the output itself, or from
    /// v (eps = sqrt(abar) v + sqrt(1 - abar) x_t) or x0 (eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)). With the same x_t,
    /// losses on eps differ from losses on v or x0 by a factor per timestep, so degradation at a timestep is the same.
    /// </summary>
    public static void NoiseFromPrediction(ReadOnlySpan<float> output, ReadOnlySpan<float> noisy, NoiseSchedule schedule, int t, Span<float> eps)
    {
        float a = (float)schedule.SignalScale(t), s = (float)schedule.NoiseScale(t);
        switch (schedule.Prediction)
        {
            case PredictionType.Epsilon: output.CopyTo(eps); break;
            case PredictionType.VPrediction: for (int i = 0; i < eps.Length; i++) eps[i] = a * output[i] + s * noisy[i]; break;
            default: for (int i = 0; i < eps.Length; i++) eps[i] = (noisy[i] - a * output[i]) / s; break;
        }
    }

    /// <summary>The clean image the model implies: x0 = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t), in [-1, 1] space.</summary>
    public static void PredictClean(ReadOnlySpan<float> noisy, ReadOnlySpan<float> epsHat, NoiseSchedule schedule, int t, Span<float> clean)
    {
        float a = (float)schedule.SignalScale(t), s = (float)schedule.NoiseScale(t);
        for (int i = 0; i < clean.Length; i++) clean[i] = (noisy[i] - s * epsHat[i]) / a;
    }
}
