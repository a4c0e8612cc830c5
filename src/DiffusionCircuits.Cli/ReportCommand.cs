using DiffusionCircuits.Data;
using System.CommandLine;
using System.Text.Json;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Reporting;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>`report`: the whole analysis to report.pdf, results.json, CSV tables and charts.</summary>
internal static class ReportCommand
{
    public const string RealVariable = "DIFFCIRCUITS_REAL";
    public const string ConfigFile = "diffcircuits.json";

    public static Command Create()
    {
        var denoiser = DenoiserOptions.Create();
        var real = CommonOptions.Real($" Default: ${RealVariable}, else \"real\" in ./{ConfigFile}, else a procedural naturalistic stand-in (announced on the console and the report's first page).");
        var heldout = CommonOptions.Heldout();
        var images = CommonOptions.Images(64, " 2000 is the paper's scale.");
        var synthetic = new Option<int?>("--synthetic") { Description = "Synthetic images, when different from --images." };
        var timesteps = CommonOptions.Timesteps();
        var roles = CommonOptions.Roles();
        var seed = CommonOptions.Seed("synthetic faces, noise, clustering, bootstrap and permutations");
        var tau = CommonOptions.Tolerance();
        var bootstrap = CommonOptions.Bootstrap();
        var ablation = CommonOptions.Ablation();
        var draws = CommonOptions.ResampleDraws();
        var patchPairs = CommonOptions.PatchPairs();
        var output = new Option<string?>("--out", "-o") { Description = "Output folder. Default: reports/<timestamp>/, or the unfinished run there with the same inputs (resumed)." };
        var gpu = CommonOptions.Gpu();
        var batch = CommonOptions.SweepBatch();
        var chunk = new Option<int>("--chunk") { Description = "Images per checkpoint chunk (0 = automatic, max(16, n/32)). Finished chunks survive an interrupted run.", DefaultValueFactory = _ => 0 };
        var shard = new Option<string?>("--shard")
        {
            Description = "K/N: compute only shard K's chunks (K from 0 to N-1) into --out, shared with the other shards, up to the first stage they have " +
                          "not finished, and exit. A run without --shard on the same --out assembles the results (identical to one machine's). " +
                          "`diffcircuits slurm` and `diffcircuits k8s` write the jobs.",
        };
        var checkOptions = new Option<bool>("--check-options") { Description = "Check the options (and that the model and folders they name exist), then exit without running." };
        var cmd = new Command("report",
            "Analyse a diffusion UNet on synthetic vs real faces and write report.pdf, results.json, CSV tables and charts: attention entropy and divergence, " +
            "head features, functional roles, head and role ablation, circuits and the complexity ratio with every hypothesis test. " +
            "With no options: the bundled reference model, 64 + 64 faces, five timesteps (a few minutes on 2 cores). An interrupted run resumes when run again.")
        {
            real, heldout, images, synthetic, timesteps, roles, seed, tau, bootstrap, ablation, draws, patchPairs, output, gpu, batch, chunk, shard, checkOptions,
        };
        denoiser.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var (realDir, realSource) = ResolveReal(parse.GetValue(real));
            HashSet<string>? only = null;
            if (parse.GetValue(heldout) is string list)
            {
                if (!File.Exists(list)) throw new UserFacingException($"File list '{list}' (--heldout) does not exist.");
                only = File.ReadAllLines(list).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToHashSet();
                if (only.Count == 0) throw new UserFacingException($"File list '{list}' (--heldout) names no files.");
            }
            var options = new ReportOptions
            {
                Denoiser = denoiser.Resolve(parse), RealFolder = realDir, RealFolderSource = realSource, RealFiles = only,
                Images = parse.GetValue(images), SyntheticImages = parse.GetValue(synthetic),
                Analysis = new CircuitAnalysisOptions
                {
                    Timesteps = CommonOptions.ParseTimesteps(parse.GetValue(timesteps)!), Roles = parse.GetValue(roles), Seed = parse.GetValue(seed),
                    TolerancePercent = parse.GetValue(tau), Bootstrap = parse.GetValue(bootstrap), Ablation = parse.GetValue(ablation),
                    ResampleDraws = parse.GetValue(draws), PatchingPairs = parse.GetValue(patchPairs), BatchSize = parse.GetValue(batch),
                },
                OutDir = parse.GetValue(output), GpuDeviceId = parse.GetValue(gpu), ChunkImages = parse.GetValue(chunk),
                Shard = parse.GetValue(shard) is string k ? CommonOptions.Translate(() => WorkShard.Parse(k)) : null,
            };
            try { options.Validate(); }
            catch (ArgumentException e) { throw new UserFacingException(e.Message); }
            if (parse.GetValue(checkOptions))
            {
                if (!File.Exists(options.ModelPath)) throw new UserFacingException($"Model '{options.ModelPath}' does not exist.");
                if (realDir != null && !Directory.Exists(realDir)) throw new UserFacingException($"Real faces folder '{realDir}' does not exist.");
                // Through the invocation's output: slurm/k8s check report options in process with that output silenced.
                parse.InvocationConfiguration.Output.WriteLine("The options are valid.");
                return CliApp.Ok;
            }
            if (realDir == null) AnsiConsole.Write(new Panel(new Text(ReportRunner.StandInNotice, new Style(Color.Red, decoration: Decoration.Bold))) { Border = BoxBorder.Double, BorderStyle = new Style(Color.Red) });

            // The stand-in banner is printed here, once at the start and once with the summary, not again as a log line.
            var runner = new ReportRunner(options, line =>
            {
                if (line != ReportRunner.StandInNotice) StageProgress.Log(line);
            });
            var expected = new List<string>();
            foreach (var stage in new[] { "features", "single-head ablation" })
                expected.AddRange(new[] { $"{stage} real", $"{stage} synthetic" });
            expected.Add("roles");
            expected.AddRange(new[] { "role and circuit ablation real", "role and circuit ablation synthetic" });
            if (options.Analysis.PatchingPairs > 0) expected.Add("activation patching");
            expected.AddRange(new[] { "statistics", "charts and report" });
            ReportOutcome outcome;
            try { outcome = CommonOptions.Translate(() => StageProgress.Run(expected, progress => runner.Run(progress))); }
            catch (ShardStoppedException stopped)
            {
                // A shard's run ends at a barrier by design: its chunks are written, the rest is other shards' work.
                Console.Out.WriteLine(stopped.Message);
                return CliApp.Ok;
            }
            Summarise(outcome);
            if (realDir == null) AnsiConsole.Write(new Panel(new Text(ReportRunner.StandInNotice, new Style(Color.Red, decoration: Decoration.Bold))) { Border = BoxBorder.Double, BorderStyle = new Style(Color.Red) });
            return CliApp.Ok;
        });
        return cmd;
    }

    /// <summary>--real, else $DIFFCIRCUITS_REAL, else "real" in ./diffcircuits.json, else none (the stand-in).</summary>
    public static (string? Folder, string? Source) ResolveReal(string? option)
    {
        if (option != null) return (option, "--real");
        if (Environment.GetEnvironmentVariable(RealVariable) is { Length: > 0 } env) return (env, $"${RealVariable}");
        if (File.Exists(ConfigFile))
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(ConfigFile));
                if (doc.RootElement.TryGetProperty("real", out var r) && r.GetString() is { Length: > 0 } path) return (path, $"./{ConfigFile}");
            }
            catch (JsonException e) { throw new UserFacingException($"Config file '{Path.GetFullPath(ConfigFile)}' is not valid JSON: {e.Message}"); }
        }
        return (null, null);
    }

    private static void Summarise(ReportOutcome o)
    {
        var r = o.Results;
        var table = new Table().Title("Summary").AddColumns("measure", "value", "95% CI", "p");
        foreach (var q in r.ComplexityRatios)
            table.AddRow($"complexity ratio ({q.Measure})", $"{q.Ratio:F3}", q.CiText, q.PValueText);
        foreach (var c in r.Circuits) table.AddRow($"circuit {r.Label(c.DataSet.Name)}", $"{c.Size} heads, {c.EffectiveHeads:F2} effective", "", "");
        table.AddRow("JSD range over timesteps (nats)", $"{r.Divergence.Min(d => d.MeanJsdNats):F4} .. {r.Divergence.Max(d => d.MeanJsdNats):F4}", "", "");
        var single = r.Degradations.Where(d => d.Kind == ConditionKind.Head).ToList();
        table.AddRow("single-head degradation (%)", $"{single.Min(d => d.DegradationPercent):F1} .. {single.Max(d => d.DegradationPercent):F1}", "", "");
        foreach (var role in r.Roles) table.AddRow($"role {role.Name}", $"entropy {role.EntropyMeanNats:F2} +/- {role.EntropySdNats:F2} nats", CommonOptions.Count(role.Heads.Count, "head"), "");
        AnsiConsole.Write(table);
        foreach (var d in r.Data.Where(d => d.Skipped > 0)) Console.Out.WriteLine($"{d.Name}: {d.Skipped} file(s) skipped (reasons in results.json and the report).");
        Console.Out.WriteLine($"Wrote {Path.Combine(o.OutDir, "report.pdf")} ({o.PdfPages} pages), results.json, {o.Files.Count(f => f.EndsWith(".csv"))} CSV tables and " +
                              $"{o.Files.Count(f => f.StartsWith("charts/"))} chart files in {o.OutDir} ({o.TimingsSeconds["total"]:F0} s" +
                              (o.ChunksLoaded > 0 ? $"; resumed with {o.ChunksLoaded} finished chunk(s)" : "") + ").");
    }
}
