using System.Text.Json;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Diffusion;

/// <summary>What a denoiser outputs (diffusers' <c>prediction_type</c>). The analysis compares noise: other outputs are converted (<see cref="ForwardNoising.NoiseFromPrediction"/>).</summary>
public enum PredictionType
{
    /// <summary>The noise eps (DDPM; Stable Diffusion 1.x, 2.x base).</summary>
    Epsilon,
    /// <summary>v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Stable Diffusion 2.x at 768 px).</summary>
    VPrediction,
    /// <summary>The clean sample x0.</summary>
    Sample,
}

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
    /// <summary>What the model trained on this schedule outputs.</summary>
    public PredictionType Prediction { get; init; } = PredictionType.Epsilon;
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

    /// <summary>diffusers' scaled_linear betas (Stable Diffusion): sqrt(beta) linear from sqrt(beta_start) to sqrt(beta_end) over T steps.</summary>
    public static NoiseSchedule ScaledLinear(int timesteps = 1000, double betaStart = 0.00085, double betaEnd = 0.012)
    {
        if (timesteps < 2) throw new ArgumentOutOfRangeException(nameof(timesteps), "At least 2 timesteps.");
        double a = Math.Sqrt(betaStart), b = Math.Sqrt(betaEnd);
        var betas = Enumerable.Range(0, timesteps).Select(t => Math.Pow(a + (b - a) * t / (timesteps - 1), 2)).ToArray();
        return new NoiseSchedule($"scaled_linear({betaStart:G3}..{betaEnd:G3}, T={timesteps})", betas);
    }

    /// <summary>
    /// The schedule of a diffusers <c>scheduler_config.json</c> (any of its schedulers): <c>num_train_timesteps</c>,
    /// <c>beta_schedule</c> (linear, scaled_linear, squaredcos_cap_v2) with <c>beta_start</c>/<c>beta_end</c>, or
    /// <c>trained_betas</c>; and <c>prediction_type</c> (epsilon, v_prediction, sample). Anything else is refused by name.
    /// </summary>
    public static NoiseSchedule FromSchedulerConfig(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Scheduler config '{path}' does not exist.", path);
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            root = doc.RootElement.Clone();
        }
        catch (JsonException e) { throw new InvalidDataException($"Scheduler config '{path}' is not valid JSON: {e.Message}", e); }
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"Scheduler config '{path}' is not a JSON object.");
        double Number(string key, double fallback) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
        string Text(string key, string fallback) => root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : fallback;
        int T = (int)Number("num_train_timesteps", 1000);
        if (T < 2) throw new InvalidDataException($"Scheduler config '{path}': num_train_timesteps must be at least 2 (got {T}).");
        var prediction = Text("prediction_type", "epsilon") switch
        {
            "epsilon" => PredictionType.Epsilon,
            "v_prediction" => PredictionType.VPrediction,
            "sample" => PredictionType.Sample,
            var other => throw new InvalidDataException($"Scheduler config '{path}': prediction_type '{other}' is not supported (epsilon, v_prediction, sample)."),
        };
        NoiseSchedule schedule;
        if (root.TryGetProperty("trained_betas", out var trained) && trained.ValueKind == JsonValueKind.Array && trained.GetArrayLength() > 0)
        {
            var betas = trained.EnumerateArray().Select(b => b.GetDouble()).ToArray();
            if (betas.Any(b => !(b > 0 && b < 1))) throw new InvalidDataException($"Scheduler config '{path}': trained_betas must lie in (0, 1).");
            schedule = new NoiseSchedule($"trained_betas(T={betas.Length})", betas);
        }
        else
        {
            double start = Number("beta_start", 1e-4), end = Number("beta_end", 0.02);
            schedule = Text("beta_schedule", "linear") switch
            {
                "linear" => Linear(T, start, end),
                "scaled_linear" => ScaledLinear(T, start, end),
                "squaredcos_cap_v2" => Cosine(T),
                var other => throw new InvalidDataException(
                    $"Scheduler config '{path}': beta_schedule '{other}' is not supported (linear, scaled_linear, squaredcos_cap_v2, or trained_betas)."),
            };
        }
        return new NoiseSchedule(schedule.Name, schedule.Betas.ToArray()) { Prediction = prediction };
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
