using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Diffusion;

namespace DiffusionCircuits.Reporting;

/// <summary>What a finished report run wrote and measured.</summary>
public sealed record ReportOutcome(ReportResults Results, string OutDir, IReadOnlyList<string> Files, IReadOnlyDictionary<string, double> TimingsSeconds,
    int ChunksLoaded, int ChunksComputed, int PdfPages);

/// <summary>
/// The whole analysis behind `diffcircuits report`: data, features, ablation, roles, circuits, statistics, then
/// results.json, CSV tables, charts and the PDF. Finished work is kept in <c>&lt;out&gt;/.work</c> so that an
/// interrupted run resumes; outputs are written atomically, results.json last but one and report.pdf last.
/// </summary>
public sealed class ReportRunner
{
    /// <summary>Shown on the console, on page 1 and in results.json when no real faces were given.</summary>
    public const string StandInNotice =
        "NO REAL FACES GIVEN: the 'real' data set is a procedural naturalistic stand-in (textured backgrounds, skin texture, " +
        "uneven light, blur and sensor noise over synthetic faces), not photographs. Numbers comparing it with synthetic faces " +
        "say nothing about real faces. Pass --real DIR (an img_align_celeba folder) or set DIFFCIRCUITS_REAL.";

    private readonly ReportOptions _o;
    private readonly Action<string> _log;

    /// <summary>A run with these options; <paramref name="log"/> hears one line per notable event.</summary>
    public ReportRunner(ReportOptions options, Action<string>? log = null)
    {
        _o = options;
        _log = log ?? (_ => { });
    }

    /// <summary>
    /// Runs the whole report: sessions, data, analysis (resumable), statistics, tables, charts, results.json and report.pdf.
    /// With <see cref="ReportOptions.Shard"/>, only that shard's chunks, ending with <see cref="ShardStoppedException"/>.
    /// </summary>
    public ReportOutcome Run(IProgress<(string Stage, double Fraction)>? progress = null)
    {
        var o = _o;
        o.Validate();
        var timings = new SortedDictionary<string, double>(StringComparer.Ordinal);
        var watch = Stopwatch.StartNew();
        void Lap(string name) { timings[name] = Math.Round(watch.Elapsed.TotalSeconds, 2); watch.Restart(); }

        if (!File.Exists(o.ModelPath)) throw new FileNotFoundException($"Model '{o.ModelPath}' does not exist.", o.ModelPath);
        if (o.RealFolder != null && !Directory.Exists(o.RealFolder)) throw new DirectoryNotFoundException($"Real faces folder '{o.RealFolder}' does not exist.");
        CheckWritable(o.OutDir ?? o.ReportsRoot);
        var notices = new List<string>();

        string modelSha = Sha256File(o.ModelPath);
        var conditioning = o.Denoiser.LoadConditioning();
        if (conditioning != null) _log($"Conditioning: {conditioning.Source}.");
        var (maps, ablation) = OpenSessions(conditioning);
        using var _1 = maps;
        using var _2 = ablation;
        using var encoder = o.Denoiser.OpenLatentEncoder(maps.Channels, maps.Height);
        if (encoder != null) _log($"Latents: faces of {encoder.Height}x{encoder.Width} through {DenoiserSetup.ShortName(o.Denoiser.VaeEncoderPath!)}, {encoder.Note} ({o.Denoiser.ScalingFactorSource}).");
        int imageSize = encoder?.Height ?? maps.Height;
        var (real, realInfo) = RealFaces(imageSize, notices, progress);
        var synthetic = new SyntheticFaceGenerator(o.Analysis.Seed, imageSize).GenerateMany(o.SyntheticImages ?? o.Images).ToList();
        var synthInfo = new DataSetInfo(DataSetId.Synthetic.Name, "procedural faces with exact part masks", $"SyntheticFaceGenerator(seed {o.Analysis.Seed})",
            synthetic.Count, HashImages(synthetic), 0, Array.Empty<SkippedFile>());
        // Conditioning with a row per image: row i conditions the i-th image of each data set.
        conditioning?.AssignRows(real.Select(i => i.Id).ToList());
        conditioning?.AssignRows(synthetic.Select(i => i.Id).ToList());
        foreach (var n in notices) _log(n);
        Lap("data");

        var key = new WorkKey(modelSha, new SortedDictionary<string, string> { [DataSetId.Real.Name] = realInfo.Sha256, [DataSetId.Synthetic.Name] = synthInfo.Sha256 },
            JsonFiles.Serialize(new { options = o.Describe(), denoiser = o.Denoiser.Describe(conditioning) }));
        string outDir = o.OutDir ?? UnfinishedRun(o.ReportsRoot, key) ?? Path.Combine(o.ReportsRoot, DateTime.Now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
        if (o.OutDir == null) _log($"Output folder: {outDir}");
        using var runLock = RunLock.Acquire(outDir, $"report --model {o.ModelPath}" + (o.Shard is { } shard ? $" --shard {shard}" : ""), o.Shard);
        if (o.Shard == null) StagedOutputs.Recover(outDir);
        var checkpoint = new ChunkedCheckpoint(Path.Combine(outDir, ".work"), key, o.ChunkImages, _log, o.Shard);
        if (checkpoint.FinishedWork(new Dictionary<DataSetId, int> { [DataSetId.Real] = real.Count, [DataSetId.Synthetic] = synthetic.Count },
                o.Analysis.PatchingPairs) is { } finished)
            _log($"Resumed: {finished}; the rest follows.");
        else if (o.Shard == null) _log(EstimateAtStart(ablation, real.Count + synthetic.Count));
        if (encoder != null)
        {
            // Each face goes through the VAE encoder once; the latents are kept with the run's work.
            real = checkpoint.Latents(DataSetId.Real, real, encoder, Stage(progress, "latents real"));
            synthetic = checkpoint.Latents(DataSetId.Synthetic, synthetic, encoder, Stage(progress, "latents synthetic"));
            checkpoint.Barrier("features");   // a shard goes on only when every face has its latent
            Lap("latents");
        }
        var analysis = new CircuitAnalysis(maps, ablation, o.Analysis).Run(real, synthetic, progress, checkpoint);
        if (checkpoint.ChunksLoaded > 0) _log($"Kept {checkpoint.ChunksLoaded} finished chunk(s) from {Path.Combine(outDir, ".work")}, {checkpoint.ChunksComputed} computed.");
        if (checkpoint.ChunksComputed > 0)
            _log($"Ablation: {analysis.ForwardGflop:N0} GFLOP against {analysis.NaiveForwardGflop:N0} at one full pass per condition; {analysis.SweepSharing}.");
        Lap("analysis");

        progress?.Report(("statistics", 0));
        var heads = analysis.HeadNames;
        var summaries = analysis.Features.SelectMany(s => FeatureAggregation.Summarise(s, heads, o.Analysis.Bootstrap, o.Analysis.Seed)).ToList();
        var divergences = FeatureAggregation.Divergence(analysis.FeaturesOf(DataSetId.Real), analysis.FeaturesOf(DataSetId.Synthetic), maps.Layers);
        var results = ReportAssembler.Assemble(o, maps, modelSha, new[] { realInfo, synthInfo }, notices, analysis, summaries, divergences, encoder, conditioning);
        progress?.Report(("statistics", 1));
        Lap("statistics");

        var files = new List<string>();
        // Everything is written into a staging folder first: the finished report of an earlier run is replaced only by a complete one.
        string stage = StagedOutputs.Begin(outDir);
        string Out(string name) { files.Add(name); return Path.Combine(stage, name); }
        WriteTables(Out, analysis, summaries, divergences, results);
        Lap("tables");

        progress?.Report(("charts and report", 0));
        var faces = new Dictionary<DataSetId, IReadOnlyList<FaceImage>> { [DataSetId.Real] = real, [DataSetId.Synthetic] = synthetic };
        using var examples = ReportExamples.Capture(maps, faces, results, o.Analysis.Seed, analysis);
        using var tokenMaps = results.CrossAttention is { } cross ? CrossAttentionFigure.Create(results, cross, analysis, maps.Layers, faces) : null;
        var charts = ReportCharts.All(results, analysis, maps.Layers);
        Directory.CreateDirectory(Path.Combine(stage, "charts"));
        foreach (var chart in charts)
        {
            ReportCharts.SavePng(chart, Out($"charts/{chart.Name}.png"));
            ReportCharts.SaveSvg(chart, Out($"charts/{chart.Name}.svg"));
        }
        examples.Heads.Save(Out("charts/attention-examples.png"));
        examples.Regions?.Save(Out("charts/attention-regions.png"));
        tokenMaps?.Save(Out("charts/token-maps.png"));
        // results.json before the PDF: a report.pdf is only ever next to the results it shows.
        AtomicFile.WriteAllText(Out("results.json"), results.ToJson());
        Lap("charts");
        timings["total"] = Math.Round(timings.Values.Sum(), 2);
        ReportDocument.WriteHtml(Out("report.html"), results, charts, examples, timings, tokenMaps);
        int pages = ReportDocument.WritePdf(Out("report.pdf"), results, charts, examples, timings, tokenMaps);
        timings["pdf"] = Math.Round(watch.Elapsed.TotalSeconds, 2);
        AtomicFile.WriteAllText(Out("timings.json"), JsonFiles.Serialize(timings));
        // results.json just before report.pdf, which moves last.
        StagedOutputs.Commit(outDir, files.Where(f => f is not ("results.json" or "report.pdf")).Append("results.json").Append("report.pdf").ToList());
        progress?.Report(("charts and report", 1));
        return new ReportOutcome(results, outDir, files, timings, checkpoint.ChunksLoaded, checkpoint.ChunksComputed, pages);
    }

    /// <summary>
    /// The run's length as far as it can be known before it starts: one forward pass timed now on this machine, times
    /// the passes the run needs at most (one full pass per image, timestep and condition; circuit prefixes counted as
    /// one per head). The sweep's shared computation makes the real run shorter; the live estimate follows.
    /// </summary>
    private string EstimateAtStart(AttentionCaptureSession session, int images)
    {
        var a = _o.Analysis;
        int rows = Math.Min(8, a.BatchSize), t = a.Timesteps[0];
        var noisy = new float[rows * session.SampleLength];
        var timesteps = Enumerable.Repeat(t, rows).ToArray();
        session.Run(noisy, timesteps).Dispose();   // the first run pays for allocations
        var watch = Stopwatch.StartNew();
        session.Run(noisy, timesteps).Dispose();
        double secondsPerPass = watch.Elapsed.TotalSeconds / rows;
        long heads = session.TotalHeads, steps = a.Timesteps.Count;
        long draws = a.Ablation == AblationKind.Resample ? a.ResampleDraws : 1;
        long passes = images * steps * (1 + 1 + draws * (heads + a.Roles + heads)) + a.PatchingPairs * steps * 2 * heads;
        var seconds = passes * secondsPerPass;
        string time = seconds < 90 ? $"{seconds:F0} s" : seconds < 5400 ? $"{seconds / 60:F0} min" : $"{seconds / 3600:F1} h";
        return $"Estimate before starting: at most about {time} ({passes:N0} forward passes at {1000 * secondsPerPass:F1} ms each, timed just now on this machine); " +
               "sharing in the ablation sweep makes it shorter, and the live estimate follows.";
    }

    /// <summary>The model with maps exposed (features, examples) and without (the ablation sweeps); a bad model is bad input.</summary>
    private (AttentionCaptureSession Maps, AttentionCaptureSession Ablation) OpenSessions(ModelConditioning? conditioning)
    {
        var o = _o;
        AttentionCaptureSession maps, ablation;
        var schedule = o.Denoiser.LoadSchedule();
        int sampleSize = o.Denoiser.LatentSize ?? 32;
        try
        {
            // Features from the maps (C#): measured faster than the same features as separate graph operators (bench,
            // docs/PERFORMANCE.md); CaptureOptions.GraphFeatures computes them in the graph instead.
            maps = new AttentionCaptureSession(o.ModelPath, new CaptureOptions { GpuDeviceId = o.GpuDeviceId, Conditioning = conditioning, Schedule = schedule, SampleSize = sampleSize });
            ablation = new AttentionCaptureSession(o.ModelPath, new CaptureOptions
            {
                GpuDeviceId = o.GpuDeviceId, ExposeMaps = false, ExposeHeadOutputs = CircuitAnalysis.NeedsHeadOutputs(o.Analysis), Conditioning = conditioning,
                Schedule = schedule, SampleSize = sampleSize,
            });
        }
        catch (OnnxModelException e) { throw new InvalidDataException(e.Message, e); }
        try
        {
            o.Validate(maps.Schedule.Timesteps);
            _log($"Model {DenoiserSetup.ShortName(o.ModelPath)}: {maps.Layers.Count} attention layers ({maps.Layers.Count(l => l.IsCrossAttention)} cross-attention), {maps.TotalHeads} heads, " +
                 $"{maps.Channels}x{maps.Height}x{maps.Width} samples, schedule {maps.Schedule.Name}; {maps.DeviceNote}.");
            foreach (var note in maps.Discovery.Notes) _log(note);
            if (maps.Layers.Count == 0) throw new InvalidDataException($"Model '{o.ModelPath}' has no attention heads to analyse.");
            if (maps.Channels != 3 && !o.Denoiser.IsLatent)
                throw new InvalidDataException($"Model '{o.ModelPath}': input '{maps.Discovery.Signature.Sample.Name}' takes {maps.Channels} channels, but face images have 3 (RGB): " +
                                               "a latent model needs its VAE encoder in front. Pass --pipeline DIR (a diffusers/optimum ONNX export) or --vae-encoder FILE.");
            return (maps, ablation);
        }
        catch
        {
            maps.Dispose();
            ablation.Dispose();
            throw;
        }
    }

    /// <summary>Real faces from the folder (skipped files named), or the announced naturalistic stand-in.</summary>
    private (List<FaceImage> Images, DataSetInfo Info) RealFaces(int imageSize, List<string> notices, IProgress<(string Stage, double Fraction)>? progress)
    {
        var o = _o;
        if (o.RealFolder == null)
        {
            notices.Add(StandInNotice);
            var standIn = new NaturalisticFaceGenerator(o.Analysis.Seed, imageSize).GenerateMany(o.Images).ToList();
            return (standIn, new DataSetInfo(DataSetId.Real.Name, "naturalistic stand-in (procedural)", $"NaturalisticFaceGenerator(seed {o.Analysis.Seed})",
                standIn.Count, HashImages(standIn), 0, Array.Empty<SkippedFile>()));
        }
        var folder = new ImageFolder(o.RealFolder, imageSize, onlyFiles: o.RealFiles);
        var real = new List<FaceImage>();
        foreach (var image in folder.Read())
        {
            real.Add(image);
            progress?.Report(("read real faces", real.Count / (double)o.Images));
            if (real.Count == o.Images) break;
        }
        var skipped = folder.Skipped.Select(s => new SkippedFile(Path.GetRelativePath(folder.Root, s.Path), s.Reason)).ToList();
        foreach (var s in skipped.Take(20)) _log($"skipped {s.File}: {s.Reason}");
        if (skipped.Count > 20) _log($"... and {skipped.Count - 20} more skipped files (all listed in results.json).");
        if (real.Count < AnalysisLimits.MinImages)
            throw new InvalidDataException($"Real faces folder '{o.RealFolder}' has {real.Count} usable image(s) (at least {AnalysisLimits.MinImages} needed; {skipped.Count} skipped" +
                                           (skipped.Count > 0 ? $", e.g. {skipped[0].File}: {skipped[0].Reason}" : "") + ").");
        if (real.Count < o.Images) notices.Add($"Only {real.Count} usable real images in '{o.RealFolder}' (asked for {o.Images}).");
        return (real, new DataSetInfo(DataSetId.Real.Name, folder.IsCelebA ? "CelebA (aligned, cropped)" : "image folder",
            $"{Path.GetFileName(Path.GetFullPath(o.RealFolder).TrimEnd('/'))} ({o.RealFolderSource ?? "--real"})", real.Count, HashImages(real), skipped.Count, skipped));
    }

    private static IProgress<double> Stage(IProgress<(string Stage, double Fraction)>? progress, string name) =>
        new SynchronousProgress<double>(f => progress?.Report((name, f)));

    /// <summary>The CSV tables behind the charts.</summary>
    private static void WriteTables(Func<string, string> output, CircuitAnalysisResult analysis, IReadOnlyList<HeadSummary> summaries,
        IReadOnlyList<TimestepDivergence> divergences, ReportResults results)
    {
        FeatureAggregation.WriteFeaturesCsv(output("features.csv"), analysis.Features, analysis.HeadNames);
        FeatureAggregation.WriteSummaryCsv(output("summary.csv"), summaries);
        ReportTables.WriteDegradationCsv(output("degradation.csv"), analysis);
        ReportTables.WriteRolesCsv(output("roles.csv"), analysis);
        ReportTables.WriteTestsCsv(output("tests.csv"), results);
        FeatureAggregation.WriteDivergenceCsv(output("divergence.csv"), divergences, analysis.HeadNames);
        if (results.CrossAttention != null) ReportTables.WriteTokensCsv(output("tokens.csv"), results.CrossAttention);
        if (results.Patching != null) ReportTables.WritePatchingCsv(output("patching.csv"), results.Patching, results.Timesteps);
    }

    /// <summary>The newest folder under <paramref name="root"/> whose kept work has this key and that has no results yet.</summary>
    private string? UnfinishedRun(string root, WorkKey key)
    {
        if (!Directory.Exists(root)) return null;
        string wanted = JsonFiles.Serialize(key);
        foreach (var dir in Directory.EnumerateDirectories(root).Order(StringComparer.Ordinal).Reverse())
        {
            string keyPath = Path.Combine(dir, ".work", "key.json");
            if (File.Exists(keyPath) && !File.Exists(Path.Combine(dir, "results.json")) && File.ReadAllText(keyPath) == wanted)
            {
                _log($"Resuming the unfinished run in {dir} (same model, data, options and seed).");
                return dir;
            }
        }
        return null;
    }

    /// <summary>Fails before any work when the output folder cannot be created or written.</summary>
    public static void CheckWritable(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
            string probe = Path.Combine(folder, $".write-test-{Environment.ProcessId}");
            File.WriteAllBytes(probe, new byte[4096]);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Output folder '{folder}' cannot be written: {e.Message}", e);
        }
    }

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static string Sha256File(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream)).ToLowerInvariant();
    }

    /// <summary>SHA-256 over the images' ids and pixel values in order: what the analysis actually saw.</summary>
    public static string HashImages(IEnumerable<FaceImage> images)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var image in images)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(image.Id + "\n"));
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(image.RgbPlanes.AsSpan()));
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}
