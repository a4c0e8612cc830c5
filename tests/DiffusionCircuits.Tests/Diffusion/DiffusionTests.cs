using System.Text.Json;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Diffusion;

public class DiffusionTests
{
    [Theory]
    // numpy: np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    [InlineData(0, 0.9999)]
    [InlineData(50, 0.9699514935950494)]
    [InlineData(200, 0.6563470055193468)]
    [InlineData(400, 0.19357200966664662)]
    [InlineData(600, 0.025567492265459)]
    [InlineData(800, 0.0015075210597816765)]
    [InlineData(999, 4.035829765375676e-05)]
    public void Linear_schedule_alpha_bar_matches_the_closed_form_product(int t, double expected) =>
        Assert.Equal(expected, NoiseSchedule.Linear().AlphaBar(t), 1e-12);

    [Theory]
    // f(t+1)/f(0) with f(t) = cos^2((t/T + s)/(1 + s) * pi/2), s = 0.008
    [InlineData(0, 0.999958715775178)]
    [InlineData(499, 0.49384359044063764)]
    [InlineData(900, 0.023616108794393825)]
    public void Cosine_schedule_alpha_bar_matches_the_closed_form(int t, double expected) =>
        Assert.Equal(expected, NoiseSchedule.Cosine().AlphaBar(t), 1e-9);

    [Fact]
    public void A_model_can_declare_its_schedule_in_metadata()
    {
        var model = OnnxModel.Load(ModelRunner.Fixture("exports/heads4d.onnx"));
        Assert.StartsWith("linear", NoiseSchedule.FromModel(model).Name);
        model.Proto.MetadataProps.Add(new DiffusionCircuits.Onnx.Proto.StringStringEntryProto { Key = "diffusion.schedule", Value = "cosine" });
        Assert.StartsWith("cosine", NoiseSchedule.FromModel(model).Name);
    }

    [Fact]
    public void Paired_noise_depends_only_on_seed_image_and_timestep()
    {
        var a = new float[100];
        var b = new float[100];
        PairedNoise.Fill(a, 1, "000123.jpg", 200);
        PairedNoise.Fill(b, 1, "000123.jpg", 200);
        Assert.Equal(a, b);
        PairedNoise.Fill(b, 1, "000123.jpg", 400);
        Assert.NotEqual(a, b);
        PairedNoise.Fill(b, 2, "000123.jpg", 200);
        Assert.NotEqual(a, b);
        // Pinned values: the same in every process and on every platform.
        Assert.Equal(920588507, StableSeed.Of(1, 2, 3));
    }

    [Fact]
    public void Paired_noise_is_standard_normal()
    {
        var eps = new float[200_001];
        PairedNoise.Fill(eps, 7, "x", 1);
        double mean = eps.Average(v => (double)v), variance = eps.Average(v => (v - mean) * (v - mean));
        double kurtosis = eps.Average(v => Math.Pow(v - mean, 4)) / (variance * variance);
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(variance, 0.98, 1.02);
        Assert.InRange(kurtosis, 2.9, 3.1);
    }

    [Fact]
    public void Noising_has_the_forward_process_statistics_and_inverts_exactly()
    {
        var schedule = NoiseSchedule.Linear();
        int n = 100_000, t = 400;
        var clean = Enumerable.Repeat(0.75f, n).ToArray();          // 0.5 in model space
        var eps = new float[n];
        PairedNoise.Fill(eps, 3, "img", t);
        var noisy = new float[n];
        ForwardNoising.Apply(clean, eps, schedule, t, noisy);
        double mean = noisy.Average(v => (double)v), variance = noisy.Average(v => (v - mean) * (v - mean));
        Assert.Equal(0.5 * Math.Sqrt(schedule.AlphaBar(t)), mean, 2);
        Assert.Equal(1 - schedule.AlphaBar(t), variance, 2);
        var back = new float[n];
        ForwardNoising.PredictClean(noisy, eps, schedule, t, back);
        Assert.All(back, v => Assert.Equal(0.5f, v, 4));
    }

    [Fact]
    public void Ddim_with_the_exact_denoiser_of_a_one_point_distribution_returns_that_point()
    {
        var schedule = NoiseSchedule.Linear();
        var target = new[] { 0.3f, -0.7f, 0.9f, 0f };
        // For data that is always `target`, the exact eps given x_t is (x_t - sqrt(abar) target) / sqrt(1 - abar).
        float[] Oracle(float[] x, int[] ts)
        {
            var eps = new float[x.Length];
            for (int i = 0; i < x.Length; i++)
            {
                double a = schedule.AlphaBar(ts[i / target.Length]);
                eps[i] = (float)((x[i] - Math.Sqrt(a) * target[i % target.Length]) / Math.Sqrt(1 - a));
            }
            return eps;
        }
        var samples = DdimSampler.Sample(Oracle, schedule, count: 3, sampleLength: target.Length, steps: 20, seed: 1);
        for (int i = 0; i < samples.Length; i++) Assert.Equal(target[i % target.Length], samples[i], 4);
    }

    [Fact]
    public void Denoiser_session_predicts_what_torch_predicted()
    {
        var reference = ModelRunner.ExportReference("heads4d");
        using var session = new DenoiserSession(OnnxModel.Load(ModelRunner.Fixture("exports/heads4d.onnx")), sampleSize: 16);
        var x = ModelRunner.Floats(reference, "input_sample");
        var t = reference.GetProperty("input_timestep").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var eps = session.PredictNoise(x, t);
        var torch = ModelRunner.Floats(reference, "output_eps");
        Assert.True(ModelRunner.MaxAbsDiff(torch, eps) <= 1e-4f);
    }
}
