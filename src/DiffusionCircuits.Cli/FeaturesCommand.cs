using DiffusionCircuits.Capture;
using System.CommandLine;
using System.Diagnostics;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Transforms;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>`features`: per-head attention features of synthetic and real faces, their summaries and divergence.</summary>
internal static class FeaturesCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var real = CommonOptions.Real(" Without it only synthetic faces are analysed.");
        var heldout = CommonOptions.Heldout();
        var images = CommonOptions.Images(64);
        var synthSeed = CommonOptions.SyntheticSeed();
        var timesteps = CommonOptions.Timesteps();
        var seed = new Option<int>("--seed") { Description = "Seed for noise and bootstrap.", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "Rows (image x timestep) per ONNX Runtime run.", DefaultValueFactory = _ => 32 };
        var gpu = new Option<int?>("--gpu") { Description = "CUDA device id (needs the Microsoft.ML.OnnxRuntime.Gpu package; falls back to CPU with a message)." };
        var output = new Option<string>("--out") { Description = "Folder for features.csv, summary.csv and divergence.csv.", DefaultValueFactory = _ => "reports/features" };
        var cmd = new Command("features",
            "Capture every head's attention on synthetic (and real) faces at several timesteps and compute entropy, distance, edge/texture " +
            "alignment, semantic affinity and symmetry per head (METHOD.md sections 1-3), with summaries and the divergence between data sets.")
        {
            model, real, heldout, images, synthSeed, timesteps, seed, batch, gpu, output,
        };
        cmd.SetAction(parse =>
        {
            var watch = Stopwatch.StartNew();
            string outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var ts = EvaluateCommand.ParseTimesteps(parse.GetValue(timesteps)!);
            int n = parse.GetValue(images);
            if (n < 1) throw new UserFacingException($"--images must be at least 1 (got {n}).");
            if (parse.GetValue(batch) < 1) throw new UserFacingException($"--batch must be at least 1 (got {parse.GetValue(batch)}).");
            AttentionCaptureSession session;
            try { session = new AttentionCaptureSession(parse.GetValue(model)!, new CaptureOptions { GpuDeviceId = parse.GetValue(gpu) }); }
            catch (OnnxModelException e) { throw new UserFacingException(e.Message, e); }
            using var _ = session;
            Console.Error.WriteLine($"Running on {session.DeviceNote}; {session.Layers.Count} attention layers, {session.TotalHeads} heads.");
            var heads = session.Discovery.HeadNames.ToList();
            var sources = new List<(string Name, Func<IEnumerable<FaceImage>> Images)>
            {
                ("synthetic", () => new SyntheticFaceGenerator(parse.GetValue(synthSeed), session.Height).GenerateMany(n)),
            };
            if (parse.GetValue(real) is string realDir)
            {
                var (realImages, folder) = CommonOptions.LoadReal(realDir, parse.GetValue(heldout), session.Height, n);
                sources.Add((folder.IsCelebA ? "celeba" : "real", () => realImages));
            }

            var extractor = new FeatureExtractor(session, ts, parse.GetValue(seed), parse.GetValue(batch));
            var sets = new List<DataSetFeatures>();
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    foreach (var (name, source) in sources)
                    {
                        var task = ctx.AddTask($"capture {name}", maxValue: n);
                        sets.Add(extractor.Run(name, source(), progress: new SynchronousProgress<int>(c => task.Value = c)));
                        task.Value = n;
                    }
                });
            double captureSeconds = watch.Elapsed.TotalSeconds;
            FeatureAggregation.WriteFeaturesCsv(Path.Combine(outDir, "features.csv"), sets, heads);
            var summary = sets.SelectMany(s => FeatureAggregation.Summarise(s, heads, seed: parse.GetValue(seed))).ToList();
            FeatureAggregation.WriteSummaryCsv(Path.Combine(outDir, "summary.csv"), summary);

            var table = new Table().AddColumns("layer", "data", "entropy nats (mean over heads)", "normalised", "distance");
            foreach (var layer in session.Layers)
                foreach (var set in sets)
                {
                    var rows = summary.Where(r => r.DataSet == set.Name && r.Timestep == null && r.Head.StartsWith(layer.Name + ".h", StringComparison.Ordinal)).ToList();
                    double Mean(string f) => rows.Where(r => r.Feature == f).Select(r => r.Mean).DefaultIfEmpty(double.NaN).Average();
                    table.AddRow(layer.Name, set.Name, $"{Mean("EntropyNats"):F3}", $"{Mean("NormalizedEntropy"):F3}", $"{Mean("DistanceImageUnits"):F3}");
                }
            AnsiConsole.Write(table);
            if (sets.Count == 2)
            {
                var divergence = FeatureAggregation.Divergence(sets[0], sets[1], session.Layers);
                FeatureAggregation.WriteDivergenceCsv(Path.Combine(outDir, "divergence.csv"), divergence, heads);
                var d = new Table().AddColumns("t", "JSD mean (nats)", "JSD range over heads", "|entropy gap| (nats)");
                foreach (var r in divergence) d.AddRow(r.Timestep.ToString(), $"{r.MeanJsdNats:F4}", $"{r.MinJsdNats:F4} .. {r.MaxJsdNats:F4}", $"{r.MeanAbsEntropyGapNats:F4}");
                AnsiConsole.Write(d);
            }
            long rowsDone = sets.Sum(s => (long)s.ImageCount * ts.Length);
            Console.Out.WriteLine($"{rowsDone} image x timestep rows in {captureSeconds:F1} s ({rowsDone / captureSeconds:F1} rows/s; model {extractor.ModelSeconds:F1} s, " +
                                  $"features {extractor.FeatureSeconds:F1} s, {session.RunCalls} Run calls). Wrote {outDir}/features.csv, summary.csv{(sets.Count == 2 ? ", divergence.csv" : "")}.");
            return CliApp.Ok;
        });
        return cmd;
    }
}
