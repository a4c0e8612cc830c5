using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Diffusion;

/// <summary>
/// A discrete DDPM noise schedule: beta_t for t = 0..T-1 and abar_t = prod_{s&lt;=t} (1 - beta_s), in double precision.
/// x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
/// </summary>
public sealed class NoiseSchedule
{
    private NoiseSchedule(string name, double[] betas)
    {
        Name = name;
        Betas = betas;
        AlphaBars = new double[betas.Length];
        double prod = 1;
        for (int t = 0; t < betas.Length; t++) AlphaBars[t] = prod *= 1 - betas[t];
    }

    /// <summary>The schedule's kind and parameters in words.</summary>
    public string Name { get; }
    /// <summary>beta_t for t = 0 .. T-1.</summary>
    public IReadOnlyList<double> Betas { get; }
    /// <summary>abar_t = prod over s &lt;= t of (1 - beta_s).</summary>
    public double[] AlphaBars { get; }
    /// <summary>T, the number of timesteps.</summary>
    public int Timesteps => AlphaBars.Length;

    /// <summary>abar_t.</summary>
    public double AlphaBar(int t) => AlphaBars[CheckT(t)];
    /// <summary>sqrt(abar_t), the weight of x0 in x_t.</summary>
    public double SignalScale(int t) => Math.Sqrt(AlphaBar(t));
    /// <summary>sqrt(1 - abar_t), the weight of eps in x_t.</summary>
    public double NoiseScale(int t) => Math.Sqrt(1 - AlphaBar(t));

    /// <summary>DDPM's linear betas (Ho et al. 2020): beta_start..beta_end over T steps.</summary>
    public static NoiseSchedule Linear(int timesteps = 1000, double betaStart = 1e-4, double betaEnd = 0.02)
    {
        if (timesteps < 2) throw new ArgumentOutOfRangeException(nameof(timesteps), "At least 2 timesteps.");
        var betas = Enumerable.Range(0, timesteps).Select(t => betaStart + (betaEnd - betaStart) * t / (timesteps - 1)).ToArray();
        return new NoiseSchedule($"linear({betaStart:G3}..{betaEnd:G3}, T={timesteps})", betas);
    }

    /// <summary>The cosine schedule (Nichol and Dhariwal 2021): abar(t) = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2), betas clipped at 0.999.</summary>
    public static NoiseSchedule Cosine(int timesteps = 1000, double s = 0.008)
    {
        double F(double t) => Math.Pow(Math.Cos((t / timesteps + s) / (1 + s) * Math.PI / 2), 2);
        var betas = Enumerable.Range(0, timesteps).Select(t => Math.Min(1 - F(t + 1) / F(t), 0.999)).ToArray();
        return new NoiseSchedule($"cosine(s={s}, T={timesteps})", betas);
    }

    /// <summary>
    /// The schedule a model declares in its metadata (keys <c>diffusion.schedule</c> = linear|cosine,
    /// <c>diffusion.timesteps</c>, <c>diffusion.beta_start</c>, <c>diffusion.beta_end</c>), else DDPM's linear default.
    /// </summary>
    public static NoiseSchedule FromModel(OnnxModel model)
    {
        var meta = model.Proto.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        string kind = meta.GetValueOrDefault("diffusion.schedule", "linear").ToLowerInvariant();
        int T = int.TryParse(meta.GetValueOrDefault("diffusion.timesteps"), out var tt) ? tt : 1000;
        double Get(string key, double fallback) =>
            double.TryParse(meta.GetValueOrDefault(key), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : fallback;
        return kind switch
        {
            "linear" => Linear(T, Get("diffusion.beta_start", 1e-4), Get("diffusion.beta_end", 0.02)),
            "cosine" => Cosine(T),
            _ => throw new OnnxModelException($"'{model.SourcePath ?? "model"}' declares diffusion.schedule='{kind}'; supported: linear, cosine."),
        };
    }

    private int CheckT(int t) => t >= 0 && t < AlphaBars.Length ? t
        : throw new ArgumentOutOfRangeException(nameof(t), t, $"Timestep must be in 0..{AlphaBars.Length - 1} for {Name}.");
}
