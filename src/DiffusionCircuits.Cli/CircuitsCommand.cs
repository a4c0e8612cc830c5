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
        var denoiser = DenoiserOptions.Create();
        var inputs = FaceInputs.Create(64, realRequired: true);
        var (real, heldout, images, synthSeed, timesteps) = inputs;
        var roles = CommonOptions.Roles();
        var tau = CommonOptions.Tolerance();
        var seed = CommonOptions.Seed();
        var bootstrap = CommonOptions.Bootstrap();
        var ablation = CommonOptions.Ablation();
        var draws = CommonOptions.ResampleDraws();
        var patchPairs = CommonOptions.PatchPairs();
        var batch = CommonOptions.SweepBatch();
        var output = CommonOptions.Out("reports/circuits", "degradation.csv, roles.csv, patching.csv and circuits.json");
        var cmd = new Command("circuits",
            "Ablate (zero, mean or resample) every head and role on real and synthetic faces, group heads into roles, find each data set's circuit and the " +
            "complexity ratio real/synthetic with bootstrap CI and permutation p (METHOD.md sections 4-6).")
        {
            roles, tau, seed, bootstrap, ablation, draws, patchPairs, batch, output,
        };
        denoiser.AddTo(cmd);
        inputs.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            int n = parse.GetValue(images);
            var options = new CircuitAnalysisOptions
            {
                Timesteps = CommonOptions.ParseTimesteps(parse.GetValue(timesteps)!), Seed = parse.GetValue(seed), Roles = parse.GetValue(roles),
                TolerancePercent = parse.GetValue(tau), Bootstrap = parse.GetValue(bootstrap), Ablation = parse.GetValue(ablation),
                ResampleDraws = parse.GetValue(draws), PatchingPairs = parse.GetValue(patchPairs), BatchSize = parse.GetValue(batch),
            };
            CommonOptions.Check(() => { AnalysisLimits.CheckImages(n); options.Validate(); });
            var setup = denoiser.Resolve(parse);
            string outDir = parse.GetValue(output)!;
            using var claim = CommonOptions.ClaimOutput(outDir, $"circuits {denoiser.Describe(parse)}");
            using var opened = OpenedDenoiser.Open(setup, new CaptureOptions());
            var maps = opened.Session;
            using var noMaps = new AttentionCaptureSession(setup.ModelPath, new CaptureOptions
            {
                ExposeMaps = false, ExposeHeadOutputs = CircuitAnalysis.NeedsHeadOutputs(options), Conditioning = opened.Conditioning, Schedule = maps.Schedule, SampleSize = maps.Height,
            });
            var (loaded, _) = CommonOptions.LoadReal(parse.GetValue(real)!, parse.GetValue(heldout), opened.ImageSize, n);
            if (loaded.Count < 2) throw new UserFacingException($"Only {loaded.Count} readable real image(s) in '{parse.GetValue(real)}'.");
            var realImages = opened.Prepare(loaded);
            var synthetic = opened.Prepare(new SyntheticFaceGenerator(parse.GetValue(synthSeed), opened.ImageSize).GenerateMany(realImages.Count));

            var stages = new[] { "features real", "features synthetic", "single-head ablation real", "single-head ablation synthetic", "roles",
                "role and circuit ablation real", "role and circuit ablation synthetic" }.Concat(options.PatchingPairs > 0 ? new[] { "activation patching" } : Array.Empty<string>()).ToList();
            var result = StageProgress.Run(stages, progress => new CircuitAnalysis(maps, noMaps, options).Run(realImages, synthetic, progress));
            var patching = result.Patching == null ? null : PatchingSummary.Of(result.Patching, options.Bootstrap, options.Seed);
            Write(result, patching, outDir);
            Print(result, patching);
            return CliApp.Ok;
        });
        return cmd;
    }

    private static void Print(CircuitAnalysisResult r, PatchingSummary? patching)
    {
        var roles = new Table().AddColumns("role", "heads", "entropy nats (mean +/- SD)", "importance %", "probe profile (z)", "silhouette");
        foreach (var role in RoleSummary.Of(r))
            roles.AddRow(role.Name, string.Join(" ", role.Heads), $"{role.EntropyMeanNats:F3} +/- {role.EntropySdNats:F3}", $"{role.ImportancePercent:F1}",
                ReportAssembler.ProbeProfile(role), $"{role.Silhouette:F2}");
        AnsiConsole.Write(roles);
        Console.Out.WriteLine($"Role stability (mean adjusted Rand index over bootstrap resamples of images): {r.RoleStabilityAri:F3}");
        foreach (var set in DataSetId.Compared)
        {
            var single = r.Degradations.Where(d => d.DataSet == set && d.Kind == ConditionKind.Head).Select(d => d.DegradationPercent).ToList();
            Console.Out.WriteLine($"{set}: single-head degradation {single.Min():F1}% .. {single.Max():F1}%");
        }
        var circuits = new Table().AddColumns("data", "circuit size (tau)", "effective heads", "circuit");
        foreach (var c in r.Circuits) circuits.AddRow(c.DataSet.Name, $"{c.Size} ({c.TolerancePercent:G3}%)", $"{c.EffectiveHeads:F2}", string.Join(" ", c.Heads));
        AnsiConsole.Write(circuits);
        var ratios = new Table().AddColumns("complexity ratio real/synthetic", "real", "synthetic", "ratio", "95% CI", "permutation p");
        foreach (var q in r.Ratios)
            ratios.AddRow(q.Measure, $"{q.Real:F3}", $"{q.Synthetic:F3}", $"{q.Ratio:F3}", RatioRow.Of(q).CiText, RatioRow.Of(q).PValueText);
        AnsiConsole.Write(ratios);
        if (patching != null) Console.Out.WriteLine(ReportAssembler.PatchingSentence(patching, "real"));
        Console.Out.WriteLine($"Ablation cost: {r.ForwardPasses} forward passes in {r.RunCalls} Run calls, {r.ForwardGflop:N0} GFLOP, {r.AblationSeconds:F1} s " +
                              $"(naive: {r.NaiveForwardGflop:N0} GFLOP at one full pass per condition; {r.NaiveRunCalls} Run calls for single heads alone); {r.SweepSharing}.");
    }

    private static void Write(CircuitAnalysisResult r, PatchingSummary? patching, string dir)
    {
        ReportTables.WriteDegradationCsv(Path.Combine(dir, "degradation.csv"), r);
        ReportTables.WriteRolesCsv(Path.Combine(dir, "roles.csv"), r);
        if (patching != null) ReportTables.WritePatchingCsv(Path.Combine(dir, "patching.csv"), patching, r.Patching!.Timesteps);
        var json = new
        {
            roles = r.Roles.Roles.Select(x => new { x.Name, x.Heads, centroidZ = HeadRoles.Probes.Zip(x.CentroidZ).Where(p => double.IsFinite(p.Second)).ToDictionary(p => p.First, p => p.Second), x.Silhouette }),
            roleStabilityAri = r.RoleStabilityAri,
            circuits = r.Circuits,
            patching,
            ratios = r.Ratios.Select(q => new { q.Measure, q.Real, q.Synthetic, q.Ratio, ciLow = q.Ci.Low, ciHigh = q.Ci.High, p = q.Permutation.Defined ? q.Permutation.PValue : (double?)null, q.Permutation.Permutations, q.Permutation.AtResolution, q.Note }),
            cost = new { r.ForwardPasses, r.RunCalls, naiveRunCallsSingleHeads = r.NaiveRunCalls, r.ForwardGflop, r.NaiveForwardGflop, seconds = r.AblationSeconds },
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "circuits.json"), JsonFiles.Serialize(json));
    }
}
