using DiffusionCircuits.Capture;
using System.CommandLine;
using System.Text.Json;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Transforms;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>`circuits`: ablation, roles, circuits and the complexity ratio of real to synthetic faces.</summary>
internal static class CircuitsCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var real = CommonOptions.Real();
        real.Required = true;
        var heldout = CommonOptions.Heldout();
        var images = CommonOptions.Images(64);
        var synthSeed = CommonOptions.SyntheticSeed();
        var timesteps = CommonOptions.Timesteps();
        var roles = new Option<int>("--roles") { Description = "Number of roles k for k-means (capped at the number of heads).", DefaultValueFactory = _ => 8 };
        var tau = new Option<double>("--tolerance") { Description = "Circuit tolerance tau, % degradation of the joint ablation.", DefaultValueFactory = _ => 10 };
        var seed = new Option<int>("--seed") { Description = "Seed for noise, clustering, bootstrap and permutations.", DefaultValueFactory = _ => 1 };
        var bootstrap = new Option<int>("--bootstrap") { Description = "Bootstrap resamples (and permutations).", DefaultValueFactory = _ => 2000 };
        var ablation = new Option<AblationKind>("--ablation") { Description = "Zero (z = 0) or Mean (z = its mean over the data set at the same timestep and position).", DefaultValueFactory = _ => AblationKind.Zero };
        var output = new Option<string>("--out") { Description = "Folder for degradation.csv, roles.csv and circuits.json.", DefaultValueFactory = _ => "reports/circuits" };
        var cmd = new Command("circuits",
            "Zero-ablate every head and role on real and synthetic faces, group heads into roles, find each data set's circuit and the " +
            "complexity ratio real/synthetic with bootstrap CI and permutation p (METHOD.md sections 4-6).")
        {
            model, real, heldout, images, synthSeed, timesteps, roles, tau, seed, bootstrap, ablation, output,
        };
        cmd.SetAction(parse =>
        {
            string outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            int n = parse.GetValue(images);
            if (n < 2) throw new UserFacingException($"--images must be at least 2 (got {n}).");
            if (parse.GetValue(roles) < 1) throw new UserFacingException($"--roles must be at least 1 (got {parse.GetValue(roles)}).");
            if (parse.GetValue(bootstrap) < 100) throw new UserFacingException($"--bootstrap must be at least 100 (got {parse.GetValue(bootstrap)}).");
            var options = new CircuitAnalysisOptions
            {
                Timesteps = EvaluateCommand.ParseTimesteps(parse.GetValue(timesteps)!), Seed = parse.GetValue(seed), Roles = parse.GetValue(roles),
                TolerancePercent = parse.GetValue(tau), Bootstrap = parse.GetValue(bootstrap), Permutations = parse.GetValue(bootstrap), Ablation = parse.GetValue(ablation),
            };
            AttentionCaptureSession maps, noMaps;
            try
            {
                maps = new AttentionCaptureSession(parse.GetValue(model)!);
                noMaps = new AttentionCaptureSession(parse.GetValue(model)!, new CaptureOptions { ExposeMaps = false, ExposeHeadOutputs = options.Ablation == AblationKind.Mean });
            }
            catch (OnnxModelException e) { throw new UserFacingException(e.Message, e); }
            using var _1 = maps;
            using var _2 = noMaps;
            var (realImages, _) = CommonOptions.LoadReal(parse.GetValue(real)!, parse.GetValue(heldout), maps.Height, n);
            if (realImages.Count < 2) throw new UserFacingException($"Only {realImages.Count} readable real image(s) in '{parse.GetValue(real)}'.");
            var synthetic = new SyntheticFaceGenerator(parse.GetValue(synthSeed), maps.Height).GenerateMany(realImages.Count).ToList();

            CircuitAnalysisResult result = null!;
            AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    var progress = new SynchronousProgress<(string Stage, double Fraction)>(p =>
                    {
                        if (!tasks.TryGetValue(p.Stage, out var task)) tasks[p.Stage] = task = ctx.AddTask(p.Stage, maxValue: 1);
                        task.Value = p.Fraction;
                    });
                    result = new CircuitAnalysis(maps, noMaps, options).Run(realImages, synthetic, progress);
                    foreach (var t in tasks.Values) t.Value = 1;
                });
            Write(result, outDir);
            Print(result);
            return CliApp.Ok;
        });
        return cmd;
    }

    private static void Print(CircuitAnalysisResult r)
    {
        var roles = new Table().AddColumns("role", "heads", "entropy nats (mean +/- SD)", "importance %", "probe profile (z)", "silhouette");
        foreach (var role in ReportAssembler.Roles(r))
            roles.AddRow(role.Name, string.Join(" ", role.Heads), $"{role.EntropyMeanNats:F3} +/- {role.EntropySdNats:F3}", $"{role.ImportancePercent:F1}",
                ReportAssembler.ProbeProfile(role), $"{role.Silhouette:F2}");
        AnsiConsole.Write(roles);
        Console.Out.WriteLine($"Role stability (mean adjusted Rand index over bootstrap resamples of images): {r.RoleStabilityAri:F3}");
        foreach (var set in new[] { "real", "synthetic" })
        {
            var single = r.Degradations.Where(d => d.DataSet == set && r.HeadNames.Contains(d.Degradation.Condition)).Select(d => d.Degradation.DegradationPercent).ToList();
            Console.Out.WriteLine($"{set}: single-head degradation {single.Min():F1}% .. {single.Max():F1}%");
        }
        var circuits = new Table().AddColumns("data", "circuit size (tau)", "effective heads", "circuit");
        foreach (var c in r.Circuits) circuits.AddRow(c.DataSet, $"{c.Size} ({c.TolerancePercent:G3}%)", $"{c.EffectiveHeads:F2}", string.Join(" ", c.Heads));
        AnsiConsole.Write(circuits);
        var ratios = new Table().AddColumns("complexity ratio real/synthetic", "real", "synthetic", "ratio", "95% CI", "permutation p");
        foreach (var q in r.Ratios)
            ratios.AddRow(q.Measure, $"{q.Real:F3}", $"{q.Synthetic:F3}", $"{q.Ratio:F3}", $"{q.Ci.Low:F3} .. {q.Ci.High:F3}",
                q.Permutation.AtResolution ? $"< {q.Permutation.Resolution:G3}" : $"{q.Permutation.PValue:G3}");
        AnsiConsole.Write(ratios);
        Console.Out.WriteLine($"Ablation cost: {r.ForwardPasses} forward passes in {r.RunCalls} Run calls, {r.AblationSeconds:F1} s " +
                              $"(naive heads x images x timesteps: {r.NaiveRunCalls} Run calls for single heads alone).");
    }

    private static void Write(CircuitAnalysisResult r, string dir)
    {
        ReportTables.WriteDegradationCsv(Path.Combine(dir, "degradation.csv"), r);
        ReportTables.WriteRolesCsv(Path.Combine(dir, "roles.csv"), r);
        var json = new
        {
            roles = r.Roles.Roles.Select(x => new { x.Name, x.Heads, centroidZ = HeadRoles.Probes.Zip(x.CentroidZ).ToDictionary(p => p.First, p => p.Second), x.Silhouette }),
            roleStabilityAri = r.RoleStabilityAri,
            circuits = r.Circuits,
            ratios = r.Ratios.Select(q => new { q.Measure, q.Real, q.Synthetic, q.Ratio, ciLow = q.Ci.Low, ciHigh = q.Ci.High, p = q.Permutation.PValue, q.Permutation.Permutations, q.Permutation.AtResolution, q.Note }),
            cost = new { r.ForwardPasses, r.RunCalls, naiveRunCallsSingleHeads = r.NaiveRunCalls, seconds = r.AblationSeconds },
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "circuits.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
    }
}
