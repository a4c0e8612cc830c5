using DiffusionCircuits.Analysis;
using System.Diagnostics;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Transforms;

namespace DiffusionCircuits.Bench;

/// <summary>What the end-to-end run measures on.</summary>
/// <param name="ModelPath">The denoiser.</param>
/// <param name="Images">Synthetic images, each at every timestep.</param>
/// <param name="Timesteps">Timesteps of the rows.</param>
/// <param name="Batch">Rows per ONNX Runtime run on the batched paths.</param>
/// <param name="OutDir">Where the peer's files go.</param>
/// <param name="Python">Python with torch for the PyTorch peer; null or "none" skips it.</param>
/// <param name="PeerScript">tools/bench/torch_peer.py.</param>
/// <param name="PeerWeights">The bundled model's PyTorch weights (the peer runs that model only).</param>
/// <param name="MemoryImages">Image counts of the peak-memory runs (none: skipped).</param>
/// <param name="MemoryProbe">How to start a child that streams N images and prints <c>peak_rss_kb=</c> (see <see cref="MemoryProbe"/>).</param>
public sealed record EndToEndOptions(string ModelPath, int Images, int[] Timesteps, int Batch, string OutDir, string? Python, string PeerScript, string PeerWeights,
    IReadOnlyList<int> MemoryImages, Func<int, ProcessStartInfo> MemoryProbe);

/// <summary>One measured path: rows per second and how it ran.</summary>
public sealed record PathRate(string Name, double RowsPerSecond, string Detail);

/// <summary>A ratio of the run with its target (empty when there is none).</summary>
public sealed record BenchRatio(string Name, string Value, string Target);

/// <summary>What the end-to-end run measured: the paths, the ratios, and bench.json's content.</summary>
public sealed record EndToEndResult(IReadOnlyList<PathRate> Paths, double BaselineRowsPerSecond, IReadOnlyList<BenchRatio> Ratios, Dictionary<string, object?> Json);

/// <summary>
/// The end-to-end benchmark: throughput of every capture path on the same model, images and timesteps, measured in one
/// run so that ratios are comparable on a shared, noisy machine, against the FLOP floor and a PyTorch-hooks peer; the
/// ablation sweep's cost against the naive one; peak memory at several image counts (child processes).
/// </summary>
public static class EndToEndBench
{
    /// <summary>Runs every measurement; <paramref name="log"/> hears what is being measured.</summary>
    public static EndToEndResult Run(EndToEndOptions o, Action<string> log)
    {
        var onnx = OnnxModel.Load(o.ModelPath);
        using var capture = new AttentionCaptureSession(onnx);
        var ts = o.Timesteps;
        int b = o.Batch;
        var faces = new SyntheticFaceGenerator(1, capture.Height).GenerateMany(o.Images).ToList();
        int len = capture.SampleLength, rows = o.Images * ts.Length;
        var noisy = new float[rows * len];
        var t = new int[rows];
        var eps = new float[len];
        for (int i = 0; i < o.Images; i++)
            for (int k = 0; k < ts.Length; k++)
            {
                int r = i * ts.Length + k;
                t[r] = ts[k];
                ForwardNoising.ApplyPaired(faces[i], 1, ts[k], capture.Schedule, eps, noisy.AsSpan(r * len, len));
            }
        var results = new List<PathRate>();

        log("the floor (model FLOPs and the machine's matrix-product GFLOP/s) ...");
        var (flopsPerRow, flopsByOp) = FlopCounter.Count(onnx, capture.Height);
        double floorGflops = FlopCounter.MeasureMatMulGflops();
        double floorRate = floorGflops * 1e9 / flopsPerRow;
        results.Add(new("floor: model FLOPs / matrix-product GFLOP/s", floorRate, $"{flopsPerRow / 1e6:F0} MFLOP per row, {floorGflops:F1} GFLOP/s"));

        double[] ourEntropy = Array.Empty<double>();
        using var denoiser = new DenoiserSession(onnx);
        // Faces are drawn before timing, as the raw paths' inputs are: the bench measures capture, not drawing.
        var drawn = new FaceImageDataView(() => faces, capture.Height, faces.Count);
        using var full = new MlNetPipelinePath(o.ModelPath, drawn, ts, b, features: true);
        using var captureAlone = new MlNetPipelinePath(o.ModelPath, drawn, ts, b, features: false);
        using var apply = new ApplyOnnxModelPath(capture, noisy, t);
        // The analysis' own extractor with every feature computed in the graph (no map leaves the runtime).
        using var graphSession = new AttentionCaptureSession(onnx, new CaptureOptions { ExposeMaps = false, GraphFeatures = true });
        var extractor = new FeatureExtractor(graphSession, ts, seed: 1, batchSize: b);
        var fromMaps = new FeatureExtractor(capture, ts, seed: 1, batchSize: b);
        var paths = new List<(string Name, string Detail, Action Run)>
        {
            ("raw ORT, original model, batched", $"batch {b}", () => ForBatches(rows, b, (s, c) => denoiser.PredictNoise(noisy[(s * len)..((s + c) * len)], t[s..(s + c)]))),
            ("raw ORT, instrumented, maps exposed, batched", $"batch {b}", () => ForBatches(rows, b, (s, c) =>
            {
                using var r = capture.Run(noisy[(s * len)..((s + c) * len)], t[s..(s + c)]);
            })),
            ("ML.NET pipeline: capture + entropy + probes", $"batch {b}", () => ourEntropy = full.Pass()),
            ("ML.NET pipeline: capture alone (loss read, maps unread)", $"batch {b}", () => captureAlone.Pass()),
            ("ML.NET ApplyOnnxModel, row by row", "1 row per Run", apply.Pass),
            ("feature extractor: every feature in the graph", $"batch {b}, one timestep per batch", () => extractor.Run(new DataSetId("bench"), faces)),
            ("feature extractor: features from the maps (C#)", $"batch {b}", () => fromMaps.Run(new DataSetId("bench"), faces)),
        };
        var rates = TimeInRounds(paths.Select(p => p.Run).ToList(), rounds: 5).Select(s => rows / s).ToArray();
        for (int i = 0; i < paths.Count; i++)
        {
            results.Add(new(paths[i].Name, rates[i], paths[i].Detail));
            log($"{paths[i].Name}: {rates[i]:F1} rows/s");
        }
        double rawOriginal = rates[0], rawMaps = rates[1], pipeline = rates[2], captureOnly = rates[3], applyOnnx = rates[4], graphExtractor = rates[5], mapsExtractor = rates[6];

        Directory.CreateDirectory(o.OutDir);
        double? peerAgreement = null;
        var peer = TorchPeer.Run(o, noisy, t, rows, capture, log);
        if (peer != null)
        {
            results.Add(new("PyTorch forward hooks (peer): capture + entropy", peer.RowsPerSecond, $"torch {peer.Torch}, 2 threads, batch {b}"));
            var heads = capture.Discovery.HeadNames.ToList();
            peerAgreement = heads.Select((h, i) => Math.Abs(peer.EntropyNats.GetValueOrDefault(h, double.NaN) - ourEntropy[i])).Max();
            log($"peer agreement: max |mean entropy difference| over {heads.Count} heads = {peerAgreement:G3} nats");
        }

        log("ablation sweep (single heads) against one Run per ablation ...");
        var ablation = AblationCost.Measure(o.ModelPath, faces, ts);
        var peaks = o.MemoryImages.ToDictionary(c => c, c =>
        {
            log($"peak memory with {c} images (child process) ...");
            return MemoryProbe.ChildPeakRssMb(o.MemoryProbe(c), c);
        });

        var measured = new Measured(o, rows, results, rawOriginal, rawMaps, pipeline, captureOnly, applyOnnx, graphExtractor, mapsExtractor, floorGflops, floorRate, flopsPerRow,
            flopsByOp, peer, peerAgreement, ablation, peaks);
        return new EndToEndResult(results, rawMaps, Ratios(measured), Json(measured));
    }

    /// <summary>Everything one run measured, for the ratios and bench.json.</summary>
    private sealed record Measured(EndToEndOptions Options, int Rows, List<PathRate> Paths, double RawOriginal, double RawMaps, double Pipeline, double CaptureOnly,
        double ApplyOnnx, double GraphExtractor, double MapsExtractor, double FloorGflops, double FloorRate, double FlopsPerRow, IReadOnlyDictionary<string, double> FlopsByOp, PeerResult? Peer,
        double? PeerAgreement, AblationCostResult Ablation, Dictionary<int, double> Peaks)
    {
        /// <summary>Share of the pipeline's time spent on features: time per row is 1/pipeline against 1/captureOnly.</summary>
        public double FeatureShare => Math.Max(0, 1 - Pipeline / CaptureOnly);
    }

    private static List<BenchRatio> Ratios(Measured m)
    {
        var ratios = new List<BenchRatio>
        {
            new("pipeline / raw ORT on the original model", $"{m.Pipeline / m.RawOriginal:F2}", ">= 0.85"),
            new("pipeline / raw ORT with maps exposed", $"{m.Pipeline / m.RawMaps:F2}", ">= 0.8"),
            new("graph-feature extractor / raw ORT on the original model", $"{m.GraphExtractor / m.RawOriginal:F2}", ">= 0.85"),
        };
        if (m.Peer != null) ratios.Add(new("pipeline / PyTorch-hooks peer", $"{m.Pipeline / m.Peer.RowsPerSecond:F2}", ">= 3"));
        ratios.Add(new("feature computation share of pipeline time", $"{100 * m.FeatureShare:F1}%", "<= 5%"));
        ratios.Add(new("ablation Run calls: naive / ours", $"{(double)m.Ablation.NaiveCalls / m.Ablation.Calls:F1} ({m.Ablation.NaiveCalls} / {m.Ablation.Calls})", ">= 8"));
        ratios.Add(new("ablation seconds: naive (estimated) / ours",
            $"{m.Ablation.NaiveSeconds / m.Ablation.Seconds:F1} ({m.Ablation.NaiveSeconds:F1} s / {m.Ablation.Seconds:F1} s)", ">= 2.5"));
        ratios.Add(new("ablation seconds: full passes batched / shared prefix",
            $"{m.Ablation.FullPassSeconds / m.Ablation.Seconds:F2} ({m.Ablation.FullPassSeconds:F1} s / {m.Ablation.Seconds:F1} s)", "> 1"));
        ratios.Add(new($"ablation seconds: one condition at a time / {m.Ablation.Parallelism.Workers} at once ({m.Ablation.Parallelism.ThreadsPerRun} thread{(m.Ablation.Parallelism.ThreadsPerRun == 1 ? "" : "s")} each)",
            $"{m.Ablation.OneAtATimeSeconds / m.Ablation.Seconds:F2} ({m.Ablation.OneAtATimeSeconds:F1} s / {m.Ablation.Seconds:F1} s)", "> 1"));
        ratios.Add(new($"ablation seconds: 64 rows per Run / {CircuitAnalysisOptions.DefaultBatchSize}",
            $"{m.Ablation.Rows64Seconds / m.Ablation.Seconds:F2} ({m.Ablation.Rows64Seconds:F1} s / {m.Ablation.Seconds:F1} s)", "> 1"));
        ratios.Add(new("ablation GFLOP: naive / ours", $"{m.Ablation.NaiveGflop / m.Ablation.Gflop:F2} ({m.Ablation.NaiveGflop:F0} / {m.Ablation.Gflop:F0})", "> 1"));
        foreach (var (count, mb) in m.Peaks) ratios.Add(new($"peak RSS, {count} images", $"{mb:F0} MB", "flat"));
        ratios.Add(new("pipeline GFLOP/s (model FLOPs x rows/s)", $"{m.Pipeline * m.FlopsPerRow / 1e9:F2}", $"floor {m.FloorGflops:F1}"));
        return ratios;
    }

    private static Dictionary<string, object?> Json(Measured m)
    {
        var o = m.Options;
        var json = new Dictionary<string, object?>
        {
            ["model"] = Path.GetFullPath(o.ModelPath), ["rows"] = m.Rows, ["images"] = o.Images, ["timesteps"] = o.Timesteps, ["batch"] = o.Batch,
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            ["rows_per_second"] = m.Paths.ToDictionary(r => r.Name, r => Math.Round(r.RowsPerSecond, 2)),
            ["model_mflops_per_row"] = Math.Round(m.FlopsPerRow / 1e6, 2),
            ["model_mflops_by_op"] = m.FlopsByOp.ToDictionary(p => p.Key, p => Math.Round(p.Value / 1e6, 2)),
            ["floor_gflops_per_s"] = Math.Round(m.FloorGflops, 3),
            ["floor_rows_per_s"] = Math.Round(m.FloorRate, 1),
            ["pipeline_gflops_per_s"] = Math.Round(m.Pipeline * m.FlopsPerRow / 1e9, 4),
            ["pipeline_vs_floor"] = Math.Round(m.Pipeline / m.FloorRate, 4),
            ["raw_ort_original_vs_floor"] = Math.Round(m.RawOriginal / m.FloorRate, 4),
            ["pipeline_vs_raw_ort_exposed"] = Math.Round(m.Pipeline / m.RawMaps, 4),
            ["pipeline_vs_raw_ort_original"] = Math.Round(m.Pipeline / m.RawOriginal, 4),
            ["graph_extractor_vs_raw_ort_original"] = Math.Round(m.GraphExtractor / m.RawOriginal, 4),
            ["maps_extractor_vs_raw_ort_original"] = Math.Round(m.MapsExtractor / m.RawOriginal, 4),
            ["raw_ort_exposed_vs_original"] = Math.Round(m.RawMaps / m.RawOriginal, 4),
            ["pipeline_vs_pytorch_peer"] = m.Peer == null ? null : Math.Round(m.Pipeline / m.Peer.RowsPerSecond, 4),
            ["pytorch_peer_rows_per_s"] = m.Peer == null ? null : Math.Round(m.Peer.RowsPerSecond, 2),
            ["pytorch_peer_max_entropy_difference_nats"] = m.PeerAgreement,
            ["features_share_of_pipeline"] = Math.Round(m.FeatureShare, 4),
            ["batched_vs_apply_onnx_model"] = Math.Round(m.RawMaps / m.ApplyOnnx, 4),
            ["ablation_run_calls"] = m.Ablation.Calls,
            ["ablation_run_calls_naive"] = m.Ablation.NaiveCalls,
            ["ablation_run_calls_vs_naive"] = Math.Round((double)m.Ablation.NaiveCalls / m.Ablation.Calls, 3),
            ["ablation_seconds"] = Math.Round(m.Ablation.Seconds, 3),
            ["ablation_seconds_naive_estimated"] = Math.Round(m.Ablation.NaiveSeconds, 3),
            ["ablation_seconds_vs_naive"] = Math.Round(m.Ablation.NaiveSeconds / m.Ablation.Seconds, 3),
            ["ablation_seconds_full_passes"] = Math.Round(m.Ablation.FullPassSeconds, 3),
            ["ablation_seconds_vs_full_passes"] = Math.Round(m.Ablation.FullPassSeconds / m.Ablation.Seconds, 3),
            ["ablation_seconds_one_condition_at_a_time"] = Math.Round(m.Ablation.OneAtATimeSeconds, 3),
            ["ablation_seconds_vs_one_condition_at_a_time"] = Math.Round(m.Ablation.OneAtATimeSeconds / m.Ablation.Seconds, 3),
            ["ablation_seconds_64_rows_per_run"] = Math.Round(m.Ablation.Rows64Seconds, 3),
            ["ablation_seconds_vs_64_rows_per_run"] = Math.Round(m.Ablation.Rows64Seconds / m.Ablation.Seconds, 3),
            ["ablation_rows_per_run"] = CircuitAnalysisOptions.DefaultBatchSize,
            ["ablation_conditions_in_flight"] = m.Ablation.Parallelism.Workers,
            ["ablation_threads_per_run"] = m.Ablation.Parallelism.ThreadsPerRun,
            ["ablation_gflop"] = Math.Round(m.Ablation.Gflop, 3),
            ["ablation_gflop_naive"] = Math.Round(m.Ablation.NaiveGflop, 3),
            ["ablation_gflop_vs_naive"] = Math.Round(m.Ablation.NaiveGflop / m.Ablation.Gflop, 3),
        };
        foreach (var (count, mb) in m.Peaks) json[$"peak_rss_mb_{count}"] = Math.Round(mb, 1);
        return json;
    }

    /// <summary>
    /// Seconds of each path's fastest pass, after one warm-up pass each (first-run allocations, JIT). The paths are timed
    /// in rounds, each path once per round: on a shared machine a slow spell then hits every path alike.
    /// </summary>
    public static double[] TimeInRounds(IReadOnlyList<Action> paths, int rounds)
    {
        foreach (var p in paths) p();
        var best = paths.Select(_ => double.MaxValue).ToArray();
        for (int round = 0; round < rounds; round++)
            for (int i = 0; i < paths.Count; i++)
            {
                var w = Stopwatch.StartNew();
                paths[i]();
                best[i] = Math.Min(best[i], w.Elapsed.TotalSeconds);
            }
        return best;
    }

    private static void ForBatches(int rows, int batch, Action<int, int> run)
    {
        for (int s = 0; s < rows; s += batch) run(s, Math.Min(batch, rows - s));
    }
}
