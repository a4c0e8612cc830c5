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
        var denoiser = DenoiserOptions.Create();
        var inputs = FaceInputs.Create(64, " Without it only synthetic faces are analysed.");
        var (real, heldout, images, synthSeed, timesteps) = inputs;
        var seed = CommonOptions.Seed("noise and bootstrap");
        var batch = CommonOptions.Batch(32);
        var gpu = CommonOptions.Gpu();
        var output = CommonOptions.Out("reports/features", "features.csv, summary.csv and divergence.csv");
        var cmd = new Command("features",
            "Capture every head's attention on synthetic (and real) faces at several timesteps and compute entropy, distance, edge/texture " +
            "alignment, semantic affinity and symmetry per head (METHOD.md sections 1-3), with summaries and the divergence between data sets.")
        {
            seed, batch, gpu, output,
        };
        denoiser.AddTo(cmd);
        inputs.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var watch = Stopwatch.StartNew();
            var ts = CommonOptions.ParseTimesteps(parse.GetValue(timesteps)!);
            int n = parse.GetValue(images);
            CommonOptions.Check(() => { AnalysisLimits.CheckImages(n); AnalysisLimits.CheckTimesteps(ts); AnalysisLimits.CheckBatch(parse.GetValue(batch)); });
            var setup = denoiser.Resolve(parse);
            string outDir = parse.GetValue(output)!;
            using var claim = CommonOptions.ClaimOutput(outDir, $"features {denoiser.Describe(parse)}");
            using var opened = OpenedDenoiser.Open(setup, new CaptureOptions { GpuDeviceId = parse.GetValue(gpu) });
            var session = opened.Session;
            Console.Error.WriteLine($"Running on {session.DeviceNote}; {session.Layers.Count} attention layers, {session.TotalHeads} heads" +
                                    (opened.Conditioning != null ? $"; conditioning: {opened.Conditioning.Source}" : "") + ".");
            var heads = session.Discovery.HeadNames.ToList();
            var sources = new List<(DataSetId DataSet, Func<IEnumerable<FaceImage>> Images)>
            {
                (DataSetId.Synthetic, () => opened.Prepare(new SyntheticFaceGenerator(parse.GetValue(synthSeed), opened.ImageSize).GenerateMany(n))),
            };
            if (parse.GetValue(real) is string realDir)
            {
                var (realImages, folder) = CommonOptions.LoadReal(realDir, parse.GetValue(heldout), opened.ImageSize, n);
                sources.Add((folder.IsCelebA ? new DataSetId("celeba") : DataSetId.Real, () => opened.Prepare(realImages)));
            }

            var extractor = new FeatureExtractor(session, ts, parse.GetValue(seed), parse.GetValue(batch));
            var sets = new List<DataSetFeatures>();
            StageProgress.Run(sources.Select(x => $"capture {x.Item1}").ToList(), progress =>
            {
                foreach (var (name, source) in sources)
                    sets.Add(extractor.Run(name, source(), progress: new SynchronousProgress<int>(c => progress.Report(($"capture {name}", c / (double)n)))));
                return 0;
            });
            double captureSeconds = watch.Elapsed.TotalSeconds;
            FeatureAggregation.WriteFeaturesCsv(Path.Combine(outDir, "features.csv"), sets, heads);
            var summary = sets.SelectMany(s => FeatureAggregation.Summarise(s, heads, seed: parse.GetValue(seed))).ToList();
            FeatureAggregation.WriteSummaryCsv(Path.Combine(outDir, "summary.csv"), summary);

            var table = new Table().AddColumns("layer", "data", "entropy nats (mean over heads)", "normalised", "distance");
            foreach (var layer in session.Layers)
                foreach (var set in sets)
                {
                    var inLayer = session.Discovery.HeadsOf(layer).Select(h => h.Name).ToHashSet();
                    var rows = summary.Where(r => r.DataSet == set.DataSet.Name && r.Timestep == null && inLayer.Contains(r.Head)).ToList();
                    double Mean(string f) => rows.Where(r => r.Feature == f).Select(r => r.Mean).DefaultIfEmpty(double.NaN).Average();
                    table.AddRow(layer.Name, set.DataSet.Name, $"{Mean("EntropyNats"):F3}", $"{Mean("NormalizedEntropy"):F3}", $"{Mean("DistanceImageUnits"):F3}");
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
