namespace DiffusionCircuits.Diffusion;

/// <summary>
/// Deterministic DDIM sampling (Song et al. 2021, eta = 0) from pure noise: at each step x0 is predicted from the
/// noise estimate, clipped to [-1, 1], and re-noised to the next (lower) timestep.
/// </summary>
public static class DdimSampler
{
    /// <summary>
    /// Draws <paramref name="count"/> samples of <paramref name="sampleLength"/> values with <paramref name="steps"/>
    /// evenly spaced timesteps. <paramref name="predictNoise"/> maps (x_t batch, timesteps) to eps_hat. Returns [-1, 1] values.
    /// </summary>
    public static float[] Sample(Func<float[], int[], float[]> predictNoise, NoiseSchedule schedule, int count, int sampleLength,
        int steps = 50, int seed = 0, IProgress<int>? progress = null)
    {
        if (steps < 1 || steps > schedule.Timesteps) throw new ArgumentOutOfRangeException(nameof(steps), steps, $"DDIM steps must be in 1..{schedule.Timesteps}.");
        var x = new float[count * sampleLength];
        for (int i = 0; i < count; i++) PairedNoise.Fill(x.AsSpan(i * sampleLength, sampleLength), seed, $"ddim-{i}", schedule.Timesteps);
        var times = Enumerable.Range(0, steps).Select(k => (int)Math.Round((double)(schedule.Timesteps - 1) * (steps - 1 - k) / Math.Max(1, steps - 1))).ToArray();
        if (steps == 1) times = new[] { schedule.Timesteps - 1 };
        for (int k = 0; k < times.Length; k++)
        {
            int t = times[k];
            var eps = predictNoise(x, Enumerable.Repeat(t, count).ToArray());
            double a = schedule.AlphaBar(t);
            double aNext = k + 1 < times.Length ? schedule.AlphaBar(times[k + 1]) : 1.0;
            for (int i = 0; i < x.Length; i++)
            {
                double x0 = Math.Clamp((x[i] - Math.Sqrt(1 - a) * eps[i]) / Math.Sqrt(a), -1, 1);
                double epsClipped = (x[i] - Math.Sqrt(a) * x0) / Math.Sqrt(1 - a);
                x[i] = (float)(Math.Sqrt(aNext) * x0 + Math.Sqrt(1 - aNext) * epsClipped);
            }
            progress?.Report(k + 1);
        }
        return x;
    }
}
