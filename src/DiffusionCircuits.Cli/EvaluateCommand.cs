using DiffusionCircuits.Analysis;
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Reporting;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>`evaluate`: how well a denoiser predicts noise on held-out faces, plus denoising and sampling pictures.</summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var denoiser = DenoiserOptions.Create();
        var inputs = FaceInputs.Create(300);
        var (real, heldout, images, synthSeed, timesteps) = inputs;
        var synthStart = new Option<int>("--synthetic-start") { Description = "Index of the first synthetic face.", DefaultValueFactory = _ => 0 };
        var seed = CommonOptions.Seed("the paired noise per image and timestep");
        var samples = new Option<int>("--samples") { Description = "DDIM samples to draw for the sample grid (0 = none).", DefaultValueFactory = _ => 64 };
        var ddimSteps = new Option<int>("--ddim-steps") { Description = "DDIM steps per sample.", DefaultValueFactory = _ => 50 };
        var output = CommonOptions.Out("reports/evaluate", "evaluation.json, denoising.png and samples.png");
        var cmd = new Command("evaluate",
            "Measure a denoiser's held-out eps-MSE per timestep on synthetic and real faces next to the network-free baselines " +
            "(eps_hat = 0, eps_hat = x_t), and draw denoised faces (predicted x0 from t = 200 and 400) and DDIM samples.")
        {
            synthStart, seed, samples, ddimSteps, output,
        };
        denoiser.AddTo(cmd);
        inputs.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var watch = Stopwatch.StartNew();
            var ts = CommonOptions.ParseTimesteps(parse.GetValue(timesteps)!);
            int n = parse.GetValue(images);
            CommonOptions.Check(() => { AnalysisLimits.CheckImages(n); AnalysisLimits.CheckTimesteps(ts); });
            var setup = denoiser.Resolve(parse);
            string outDir = parse.GetValue(output)!;
            using var claim = CommonOptions.ClaimOutput(outDir, $"evaluate {denoiser.Describe(parse)}");
            var conditioning = setup.LoadConditioning();
            var onnx = OnnxModel.Load(setup.ModelPath);
            var schedule = setup.LoadSchedule() ?? NoiseSchedule.FromModel(onnx);
            using var session = new DenoiserSession(onnx, setup.LatentSize ?? 32, conditioning: conditioning);
            if (session.Channels != 3 && !setup.IsLatent)
                throw new UserFacingException($"Model '{setup.ModelPath}' takes {session.Channels}-channel samples, but faces are RGB: a latent model needs its VAE encoder in front. " +
                                              "Pass --pipeline DIR or --vae-encoder FILE.");
            using var encoder = setup.OpenLatentEncoder(session.Channels, session.Height);
            int size = encoder?.Height ?? session.Height;

            var synthetic = OpenedDenoiser.Prepare(new SyntheticFaceGenerator(parse.GetValue(synthSeed), size).GenerateMany(n, parse.GetValue(synthStart)), encoder, conditioning);
            var sets = new List<(string Name, List<FaceImage> Images)> { ("synthetic", synthetic) };
            string? realDir = parse.GetValue(real);
            if (realDir != null)
            {
                var (realImages, folder) = CommonOptions.LoadReal(realDir, parse.GetValue(heldout), size, n);
                sets.Add((folder.IsCelebA ? "celeba" : "real", OpenedDenoiser.Prepare(realImages, encoder, conditioning)));
            }

            var results = new Dictionary<string, IReadOnlyList<EpsilonMse>>();
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    foreach (var (name, set) in sets)
                    {
                        var task = ctx.AddTask($"eps-MSE {name}", maxValue: set.Count);
                        results[name] = DenoiserEvaluation.Measure(session, schedule, set, ts, parse.GetValue(seed),
                            progress: new SynchronousProgress<int>(c => task.Value = c));
                        task.Value = set.Count;
                    }
                });

            var table = new Table().AddColumns("data", "images", "t", "eps-MSE model", "eps_hat = 0", "eps_hat = x_t");
            foreach (var (name, rows) in results)
                foreach (var r in rows)
                    table.AddRow(name, r.Images.ToString(), r.Timestep.ToString(), $"{r.ModelMse:F4}", $"{r.ZeroBaselineMse:F4}", $"{r.NoisyInputBaselineMse:F4}");
            AnsiConsole.Write(table);

            // Pictures are drawn in pixel space: a latent model's x0 would need the pipeline's VAE decoder, which this tool does not run.
            bool pictures = encoder == null && schedule.Prediction == PredictionType.Epsilon;
            if (!pictures) Console.Error.WriteLine("note: no denoising.png or samples.png: " + (encoder != null
                ? "the model denoises latents, and drawing them needs the pipeline's VAE decoder." : $"the model predicts {schedule.Prediction}, and the pictures assume eps."));
            if (pictures) DenoisingPicture(session, schedule, sets, parse.GetValue(seed), Path.Combine(outDir, "denoising.png"));
            int sampleCount = pictures ? parse.GetValue(samples) : 0;
            if (sampleCount > 0)
            {
                var x = DdimSampler.Sample((noisy, t) => session.PredictNoise(noisy, t), schedule, sampleCount, session.SampleLength, parse.GetValue(ddimSteps), parse.GetValue(seed));
                var grid = new ImageGrid(size, size, 3);
                int cols = (int)Math.Ceiling(Math.Sqrt(sampleCount));
                for (int r = 0; r * cols < sampleCount; r++)
                    grid.AddRow("", Enumerable.Range(r * cols, Math.Min(cols, sampleCount - r * cols))
                        .Select(i => ImageGrid.FromModelSpace(x.AsSpan(i * session.SampleLength, session.SampleLength))));
                grid.Save(Path.Combine(outDir, "samples.png"), $"{sampleCount} DDIM samples, {parse.GetValue(ddimSteps)} steps, seed {parse.GetValue(seed)}");
            }

            var json = new
            {
                model = setup.ModelPath,
                modelSha256 = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(setup.ModelPath))).ToLowerInvariant(),
                schedule = schedule.Name,
                prediction = schedule.Prediction.ToString(),
                latents = encoder?.Note,
                conditioning = conditioning?.Source,
                seed = parse.GetValue(seed),
                definition = "eps-MSE = mean over images and pixels of (eps_hat - eps)^2, paired seeded noise per (seed, image id, t)",
                sets = results.ToDictionary(kv => kv.Key, kv => kv.Value),
                seconds = Math.Round(watch.Elapsed.TotalSeconds, 1),
            };
            AtomicFile.WriteAllText(Path.Combine(outDir, "evaluation.json"),
                JsonFiles.Serialize(json));
            Console.Out.WriteLine($"Wrote {outDir}/evaluation.json{(pictures ? ", denoising.png" : "")}{(sampleCount > 0 ? ", samples.png" : "")} in {watch.Elapsed.TotalSeconds:F0} s.");
            return CliApp.Ok;
        });
        return cmd;
    }

    /// <summary>Rows: clean, x_t and predicted x0 at t = 200 and 400, for 8 faces of each data set.</summary>
    private static void DenoisingPicture(DenoiserSession denoiser, NoiseSchedule schedule, List<(string Name, List<FaceImage> Images)> sets, int seed, string path)
    {
        int len = denoiser.SampleLength, cols = 8;
        var grid = new ImageGrid(denoiser.Width, denoiser.Height, 3);
        foreach (var (name, images) in sets)
        {
            var faces = images.Take(cols).ToList();
            grid.AddRow($"{name}: clean x0", faces.Select(f => f.RgbPlanes));
            foreach (int t in new[] { 200, 400 })
            {
                var noisy = new float[faces.Count * len];
                var eps = new float[len];
                for (int i = 0; i < faces.Count; i++)
                {
                    ForwardNoising.ApplyPaired(faces[i], seed, t, schedule, eps, noisy.AsSpan(i * len, len));
                }
                var predicted = denoiser.PredictNoise(noisy, Enumerable.Repeat(t, faces.Count).ToArray());
                var clean = new float[noisy.Length];
                ForwardNoising.PredictClean(noisy, predicted, schedule, t, clean);
                grid.AddRow($"{name}: x_t, t={t}", Enumerable.Range(0, faces.Count).Select(i => ImageGrid.FromModelSpace(noisy.AsSpan(i * len, len))));
                grid.AddRow($"{name}: predicted x0", Enumerable.Range(0, faces.Count).Select(i => ImageGrid.FromModelSpace(clean.AsSpan(i * len, len))));
            }
        }
        grid.Save(path, "Held-out faces denoised in one step: x0 = (x_t - sqrt(1 - abar_t) eps_hat) / sqrt(abar_t)");
    }
}

