using DiffusionCircuits.Capture;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>
/// `bench`: throughput of every capture path on the same model, images and timesteps, measured in one run so the
/// ratios are comparable on a shared, noisy machine, against the FLOP floor and a PyTorch-hooks peer; the ablation
/// sweep's cost against the naive one; peak memory at two image counts (child processes). Writes bench.json.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var images = new Option<int>("--images") { Description = "Synthetic images (each at every timestep) for the throughput paths.", DefaultValueFactory = _ => 64 };
        var timesteps = CommonOptions.Timesteps();
        var batch = CommonOptions.Batch(32);
        var output = new Option<string>("--out") { Description = "Where to write bench.json.", DefaultValueFactory = _ => "reports/bench" };
        var python = new Option<string?>("--python") { Description = "Python with Debian's python3-torch for the PyTorch-hooks peer (default /usr/bin/python3); \"none\" skips the peer.", DefaultValueFactory = _ => "/usr/bin/python3" };
        var memory = new Option<string>("--memory-images") { Description = "Image counts for the peak-memory runs (child processes, one timestep each); \"none\" skips them.", DefaultValueFactory = _ => "256,4000" };
        var probe = new Option<int>("--memory-probe") { Description = "Internal: stream N images through the pipeline and print the peak RSS.", Hidden = true };
        var cmd = new Command("bench",
            "Measure, in one run: the FLOP floor (model FLOPs / the machine's matrix-product GFLOP/s), raw ONNX Runtime (original and instrumented with maps, batched), " +
            "the ML.NET pipeline (capture + entropy + probes, and capture alone), ApplyOnnxModel row by row, a PyTorch forward-hooks peer (tools/bench/torch_peer.py), " +
            "the ablation sweep against the naive one-Run-per-ablation cost, and peak memory at two image counts. Writes bench.json (docs/PERFORMANCE.md).")
        {
            model, images, timesteps, batch, output, python, memory, probe,
        };
        cmd.SetAction(parse =>
        {
            string path = parse.GetValue(model)!;
            var ts = CommonOptions.ParseTimesteps(parse.GetValue(timesteps)!);
            int n = parse.GetValue(images), b = parse.GetValue(batch);
            if (n < 1 || n > 100_000) throw new UserFacingException($"--images must be between 1 and 100000 (got {n}).");
            CommonOptions.Check(() => AnalysisLimits.CheckBatch(b));
            if (parse.GetValue(probe) is int probeImages and > 0) return MemoryProbe(path, probeImages, b);
            var memoryCounts = ParseCounts(parse.GetValue(memory)!);
            OnnxModel onnx;
            try { onnx = OnnxModel.Load(path); }
            catch (OnnxModelException e) { throw new UserFacingException(e.Message, e); }
            using var capture = new AttentionCaptureSession(onnx);
            var faces = new SyntheticFaceGenerator(1, capture.Height).GenerateMany(n).ToList();
            int len = capture.SampleLength, rows = n * ts.Length;
            var noisy = new float[rows * len];
            var t = new int[rows];
            var eps = new float[len];
            for (int i = 0; i < n; i++)
                for (int k = 0; k < ts.Length; k++)
                {
                    int r = i * ts.Length + k;
                    t[r] = ts[k];
                    ForwardNoising.ApplyPaired(faces[i], 1, ts[k], capture.Schedule, eps, noisy.AsSpan(r * len, len));
                }
            var results = new List<(string Name, double RowsPerSecond, string Detail)>();
            // The paths are timed in rounds (each path once per round, five rounds) and each keeps its fastest pass:
            // on a shared machine a slow spell then hits every path alike instead of whichever ran during it.
            var paths = new List<(string Name, string Detail, Action Run)>();

            Console.Error.WriteLine("bench: the floor (model FLOPs and the machine's matrix-product GFLOP/s) ...");
            var (flopsPerRow, flopsByOp) = FlopCounter.Count(onnx, capture.Height);
            double floorGflops = FlopCounter.MeasureMatMulGflops();
            double floorRate = floorGflops * 1e9 / flopsPerRow;
            results.Add(("floor: model FLOPs / matrix-product GFLOP/s", floorRate, $"{flopsPerRow / 1e6:F0} MFLOP per row, {floorGflops:F1} GFLOP/s"));

            double[] ourEntropy = Array.Empty<double>();
            using var denoiser = new DenoiserSession(onnx);
            // Faces are drawn before timing, as the raw paths' inputs are: the bench measures capture, not drawing.
            var drawn = new FaceImageDataView(() => faces, capture.Height, faces.Count);
            using var full = new Pipeline(path, drawn, ts, b, features: true);
            using var captureAlone = new Pipeline(path, drawn, ts, b, features: false);
            using var apply = new ApplyOnnxPath(capture, noisy, t);
            paths.Add(("raw ORT, original model, batched", $"batch {b}", () => ForBatches(rows, b, (s, c) => denoiser.PredictNoise(noisy[(s * len)..((s + c) * len)], t[s..(s + c)]))));
            paths.Add(("raw ORT, instrumented, maps exposed, batched", $"batch {b}", () => ForBatches(rows, b, (s, c) =>
            {
                using var r = capture.Run(noisy[(s * len)..((s + c) * len)], t[s..(s + c)]);
            })));
            paths.Add(("ML.NET pipeline: capture + entropy + probes", $"batch {b}", () => ourEntropy = full.Pass()));
            paths.Add(("ML.NET pipeline: capture alone (loss read, maps unread)", $"batch {b}", () => captureAlone.Pass()));
            paths.Add(("ML.NET ApplyOnnxModel, row by row", "1 row per Run", apply.Pass));
            foreach (var p in paths) p.Run();                  // warm-up: first-run allocations, JIT
            var best = paths.Select(_ => double.MaxValue).ToArray();
            for (int round = 0; round < 5; round++)
                for (int i = 0; i < paths.Count; i++)
                {
                    var w = Stopwatch.StartNew();
                    paths[i].Run();
                    best[i] = Math.Min(best[i], w.Elapsed.TotalSeconds);
                }
            var rates = best.Select(s => rows / s).ToArray();
            for (int i = 0; i < paths.Count; i++)
            {
                results.Add((paths[i].Name, rates[i], paths[i].Detail));
                Console.Error.WriteLine($"bench: {paths[i].Name}: {rates[i]:F1} rows/s");
            }
            double rawOriginal = rates[0], rawMaps = rates[1], pipeline = rates[2], captureOnly = rates[3], applyOnnx = rates[4];

            string outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            double? peerAgreement = null;
            var peer = RunPeer(parse.GetValue(python), noisy, t, rows, capture, b, outDir);
            if (peer != null)
            {
                results.Add(("PyTorch forward hooks (peer): capture + entropy", peer.Value.RowsPerSecond, $"torch {peer.Value.Torch}, 2 threads, batch {b}"));
                var heads = capture.Discovery.HeadNames.ToList();
                double maxDiff = heads.Select((h, i) => Math.Abs(peer.Value.Entropy.GetValueOrDefault(h, double.NaN) - ourEntropy[i])).Max();
                Console.Error.WriteLine($"bench: peer agreement: max |mean entropy difference| over {heads.Count} heads = {maxDiff:G3} nats");
                peerAgreement = maxDiff;
            }

            Console.Error.WriteLine("bench: ablation sweep (single heads) against one Run per ablation ...");
            var (sweepCalls, sweepSeconds, naiveCalls, naiveSecondsEstimate) = MeasureAblation(path, faces, ts);
            var peaks = memoryCounts.ToDictionary(c => c, c => ChildPeakRssMb(path, c, b));

            var table = new Table().AddColumns("path", "rows/s", "vs raw ORT with maps", "detail");
            foreach (var r in results) table.AddRow(Markup.Escape(r.Name), $"{r.RowsPerSecond:F1}", $"{r.RowsPerSecond / rawMaps:F2}x", Markup.Escape(r.Detail));
            AnsiConsole.Write(table);
            double featureShare = Math.Max(0, 1 - pipeline / captureOnly);   // time per row: 1/pipeline vs 1/captureOnly
            var ratios = new Table().AddColumns("ratio", "value", "target");
            ratios.AddRow("pipeline / raw ORT with maps exposed", $"{pipeline / rawMaps:F2}", ">= 0.8");
            if (peer != null) ratios.AddRow("pipeline / PyTorch-hooks peer", $"{pipeline / peer.Value.RowsPerSecond:F2}", ">= 1.5");
            ratios.AddRow("feature computation share of pipeline time", $"{100 * featureShare:F1}%", "<= 10%");
            ratios.AddRow("ablation Run calls: naive / ours", $"{(double)naiveCalls / sweepCalls:F1} ({naiveCalls} / {sweepCalls})", ">= 8");
            ratios.AddRow("ablation seconds: naive (estimated) / ours", $"{naiveSecondsEstimate / sweepSeconds:F1} ({naiveSecondsEstimate:F1} s / {sweepSeconds:F1} s)", "");
            foreach (var (count, mb) in peaks) ratios.AddRow($"peak RSS, {count} images", $"{mb:F0} MB", "flat");
            ratios.AddRow("pipeline GFLOP/s (model FLOPs x rows/s)", $"{pipeline * flopsPerRow / 1e9:F2}", $"floor {floorGflops:F1}");
            AnsiConsole.Write(ratios);

            var json = new Dictionary<string, object?>
            {
                ["model"] = Path.GetFullPath(path), ["rows"] = rows, ["images"] = n, ["timesteps"] = ts, ["batch"] = b,
                ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
                ["rows_per_second"] = results.ToDictionary(r => r.Name, r => Math.Round(r.RowsPerSecond, 2)),
                ["model_mflops_per_row"] = Math.Round(flopsPerRow / 1e6, 2),
                ["model_mflops_by_op"] = flopsByOp.ToDictionary(p => p.Key, p => Math.Round(p.Value / 1e6, 2)),
                ["floor_gflops_per_s"] = Math.Round(floorGflops, 3),
                ["floor_rows_per_s"] = Math.Round(floorRate, 1),
                ["pipeline_gflops_per_s"] = Math.Round(pipeline * flopsPerRow / 1e9, 4),
                ["pipeline_vs_floor"] = Math.Round(pipeline / floorRate, 4),
                ["raw_ort_original_vs_floor"] = Math.Round(rawOriginal / floorRate, 4),
                ["pipeline_vs_raw_ort_exposed"] = Math.Round(pipeline / rawMaps, 4),
                ["raw_ort_exposed_vs_original"] = Math.Round(rawMaps / rawOriginal, 4),
                ["pipeline_vs_pytorch_peer"] = peer == null ? null : Math.Round(pipeline / peer.Value.RowsPerSecond, 4),
                ["pytorch_peer_rows_per_s"] = peer == null ? null : Math.Round(peer.Value.RowsPerSecond, 2),
                ["pytorch_peer_max_entropy_difference_nats"] = peer == null ? null : peerAgreement,
                ["features_share_of_pipeline"] = Math.Round(featureShare, 4),
                ["batched_vs_apply_onnx_model"] = Math.Round(rawMaps / applyOnnx, 4),
                ["ablation_run_calls"] = sweepCalls,
                ["ablation_run_calls_naive"] = naiveCalls,
                ["ablation_run_calls_vs_naive"] = Math.Round((double)naiveCalls / sweepCalls, 3),
                ["ablation_seconds"] = Math.Round(sweepSeconds, 3),
                ["ablation_seconds_naive_estimated"] = Math.Round(naiveSecondsEstimate, 3),
            };
            foreach (var (count, mb) in peaks) json[$"peak_rss_mb_{count}"] = Math.Round(mb, 1);
            string file = Path.Combine(outDir, "bench.json");
            AtomicFile.WriteAllText(file, JsonFiles.Serialize(json));
            Console.Out.WriteLine($"Wrote {file}");
            return CliApp.Ok;
        });
        return cmd;
    }

    private static int[] ParseCounts(string text)
    {
        if (text == "none") return Array.Empty<int>();
        try
        {
            var counts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
            if (counts.Any(c => c < 1)) throw new FormatException();
            return counts;
        }
        catch (FormatException) { throw new UserFacingException($"--memory-images must be comma-separated counts >= 1 or \"none\" (got '{text}')."); }
    }

    private static void ForBatches(int rows, int batch, Action<int, int> run)
    {
        for (int s = 0; s < rows; s += batch) run(s, Math.Min(batch, rows - s));
    }

    /// <summary>Ours: every single-head ablation of every row, batched with per-row masks. Naive: one Run per (ablation or baseline, row), timed on a sample.</summary>
    private static (long Calls, double Seconds, long NaiveCalls, double NaiveSeconds) MeasureAblation(string modelPath, IReadOnlyList<FaceImage> faces, int[] ts)
    {
        using var session = new AttentionCaptureSession(modelPath, new CaptureOptions { ExposeMaps = false });
        var sweep = new AblationSweep(session, ts, 1);
        var conditions = AblationSweep.SingleHeads(session);
        sweep.Run(new DataSetId("bench"), faces.Take(2).ToList(), conditions);          // warm-up
        var result = sweep.Run(new DataSetId("bench"), faces, conditions);
        long naive = (long)faces.Count * ts.Length * (conditions.Count + 1);
        // The naive cost, timed on 64 single-row Runs with one head masked each.
        using var one = new AttentionCaptureSession(modelPath, new CaptureOptions { ExposeMaps = false });
        int len = one.SampleLength, samples = 64;
        var x = new float[len];
        var rng = new Random(1);
        for (int i = 0; i < len; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var masks = one.Layers.Select(l => Enumerable.Repeat(1f, l.Heads).ToArray()).ToArray();
        using (one.Run(x, new[] { ts[0] }, masks)) { }
        var watch = Stopwatch.StartNew();
        for (int s = 0; s < samples; s++)
        {
            foreach (var m in masks) Array.Fill(m, 1f);
            masks[s % masks.Length][s % masks[s % masks.Length].Length] = 0f;
            using (one.Run(x, new[] { ts[s % ts.Length] }, masks)) { }
        }
        double perRun = watch.Elapsed.TotalSeconds / samples;
        return (result.RunCalls, result.Seconds, naive, perRun * naive);
    }

    /// <summary>Peak RSS of a child process streaming <paramref name="images"/> images (one timestep) through the ML.NET pipeline.</summary>
    private static double ChildPeakRssMb(string modelPath, int images, int batch)
    {
        Console.Error.WriteLine($"bench: peak memory with {images} images (child process) ...");
        var info = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (Path.GetFileNameWithoutExtension(info.FileName) == "dotnet") info.ArgumentList.Add(typeof(BenchCommand).Assembly.Location);
        foreach (var a in new[] { "bench", "--model", modelPath, "--batch", batch.ToString(CultureInfo.InvariantCulture), "--memory-probe", images.ToString(CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith("peak_rss_kb=", StringComparison.Ordinal));
        if (p.ExitCode != 0 || line == null) throw new InvalidOperationException($"The memory probe with {images} images failed (exit {p.ExitCode}): {stderr.Trim()}");
        return long.Parse(line["peak_rss_kb=".Length..].Trim(), CultureInfo.InvariantCulture) / 1024.0;
    }

    /// <summary>The child side: streams images x one timestep through capture + entropy + probes, then prints VmHWM.</summary>
    private static int MemoryProbe(string modelPath, int images, int batch)
    {
        // Faces drawn lazily as the cursor moves, so nothing grows with the image count.
        using (var pipeline = new Pipeline(modelPath, new MLContext(seed: 1).Data.SyntheticFaces(images, seed: 1, size: 32), new[] { 200 }, batch, features: true))
            pipeline.Pass();
        var hwm = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        Console.Out.WriteLine("peak_rss_kb=" + hwm["VmHWM:".Length..].Replace("kB", "").Trim());
        return CliApp.Ok;
    }

    /// <summary>Runs tools/bench/torch_peer.py on the same noisy rows; null (with a message) when Python or torch is missing.</summary>
    private static (double RowsPerSecond, string Torch, Dictionary<string, double> Entropy)? RunPeer(string? python, float[] noisy, int[] t, int rows,
        AttentionCaptureSession capture, int batch, string outDir)
    {
        if (python is null or "none") return null;
        string script = Path.Combine(Path.GetDirectoryName(Defaults.ModelPath)!, "..", "tools", "bench", "torch_peer.py");
        string weights = Path.ChangeExtension(Defaults.ModelPath, ".pt");
        if (!File.Exists(script) || !File.Exists(weights))
        {
            Console.Error.WriteLine($"bench: PyTorch peer skipped: {script} or {weights} not found (the peer runs the bundled reference model only).");
            return null;
        }
        string x = Path.Combine(outDir, "peer-inputs.npy"), tf = Path.Combine(outDir, "peer-timesteps.npy"), json = Path.Combine(outDir, "peer.json");
        NpyFile.WriteFloat32(x, noisy, rows, capture.Channels, capture.Height, capture.Width);
        NpyFile.WriteInt32(tf, t, rows);
        Console.Error.WriteLine("bench: PyTorch forward-hooks peer ...");
        var info = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { script, "--weights", weights, "--inputs", x, "--timesteps", tf, "--batch", batch.ToString(CultureInfo.InvariantCulture), "--threads", "2", "--out", json })
            info.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(info)!;
            string stderr = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                Console.Error.WriteLine($"bench: PyTorch peer failed (exit {p.ExitCode}; needs Debian's python3-torch: apt-get install python3-torch): {stderr.Trim().Split('\n').LastOrDefault()}");
                return null;
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.Error.WriteLine($"bench: PyTorch peer skipped: cannot start '{python}' ({e.Message}).");
            return null;
        }
        finally
        {
            File.Delete(x);
            File.Delete(tf);
        }
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var entropy = new Dictionary<string, double>();
        foreach (var layer in doc.RootElement.GetProperty("mean_entropy_nats").EnumerateObject())
        {
            int h = 0;
            foreach (var v in layer.Value.EnumerateArray()) entropy[$"{layer.Name}.h{h++}"] = v.GetDouble();
        }
        return (doc.RootElement.GetProperty("rows_per_second").GetDouble(), doc.RootElement.GetProperty("torch").GetString() ?? "?", entropy);
    }

    /// <summary>
    /// The public ML.NET API: noise, capture, and (with <paramref name="features"/>) entropy and probes, fitted once
    /// (model load and instrumentation are not timed). Without features only the loss is read, so the difference
    /// between the two passes is the feature stages' work.
    /// </summary>
    private sealed class Pipeline : IDisposable
    {
        private readonly ITransformer _fitted;
        private readonly IDataView _rows;
        private readonly string[] _wanted;
        private readonly bool _features;

        public Pipeline(string modelPath, FaceImageDataView faces, int[] timesteps, int batch, bool features)
        {
            var ml = new MLContext(seed: 1);
            var capture = ml.Transforms.AddDiffusionNoise(timesteps: timesteps, seed: 1).Append(ml.Transforms.CaptureAttention(modelPath, batchSize: batch));
            _fitted = features
                ? capture.Append(ml.Transforms.AttentionEntropy()).Append(ml.Transforms.AttentionProbes()).Fit(faces)
                : capture.Fit(faces);
            _rows = _fitted.Transform(faces);
            _features = features;
            // Capture alone reads only the loss, so the model runs with maps exposed but nothing consumes them:
            // the difference to the full pipeline is then all of the feature stages' work.
            _wanted = features ? new[] { "EntropyNats", "SemanticAffinity" } : new[] { AttentionCaptureTransformer.LossColumn };
        }

        /// <summary>One pass over all rows; the mean entropy per head (empty without features).</summary>
        public double[] Pass()
        {
            using var cursor = _rows.GetRowCursor(_rows.Schema.Where(c => _wanted.Contains(c.Name)));
            var getters = _features ? _wanted.Select(w => cursor.GetGetter<VBuffer<float>>(_rows.Schema[w])).ToArray() : Array.Empty<ValueGetter<VBuffer<float>>>();
            var loss = _features ? null! : cursor.GetGetter<float>(_rows.Schema[AttentionCaptureTransformer.LossColumn]);
            float lossValue = 0;
            var buffers = new VBuffer<float>[getters.Length];
            double[] sum = Array.Empty<double>();
            long count = 0;
            while (cursor.MoveNext())
            {
                if (!_features)
                {
                    loss(ref lossValue);
                    continue;
                }
                for (int g = 0; g < getters.Length; g++) getters[g](ref buffers[g]);
                var e = buffers[0].GetValues();
                if (sum.Length == 0) sum = new double[e.Length];
                for (int h = 0; h < e.Length; h++) sum[h] += e[h];
                count++;
            }
            return sum.Select(v => v / Math.Max(1, count)).ToArray();
        }

        public void Dispose()
        {
            foreach (var t in (_fitted as TransformerChain<ITransformer>)?.OfType<IDisposable>() ?? Enumerable.Empty<IDisposable>()) t.Dispose();
        }
    }

    /// <summary>ML.NET's own ONNX scoring on the instrumented model: one Run per row, outputs copied per row. Fitted once, outside timing.</summary>
    private sealed class ApplyOnnxPath : IDisposable
    {
        private readonly string _file = Path.Combine(Path.GetTempPath(), $"dc-bench-{Guid.NewGuid():N}.onnx");
        private readonly ITransformer _transformer;
        private readonly IDataView _scored;
        private readonly string[] _outputs;

        public ApplyOnnxPath(AttentionCaptureSession capture, float[] noisy, int[] t)
        {
            var ml = new MLContext(seed: 1);
            capture.Instrumented.Model.Save(_file);
            int len = capture.SampleLength;
            var sig = capture.Discovery.Signature;
            var columns = new List<InMemoryColumns.Column>
            {
                InMemoryColumns.Floats(sig.Sample.Name, len, r => noisy.AsSpan(r * len, len).ToArray()),
                InMemoryColumns.Int64s(sig.Timestep.Name, r => t[r]),
            };
            var shapes = new Dictionary<string, int[]> { [sig.Sample.Name] = new[] { 1, capture.Channels, capture.Height, capture.Width }, [sig.Timestep.Name] = new[] { 1 } };
            foreach (var l in capture.Layers)
            {
                columns.Add(InMemoryColumns.Floats(l.MaskInput, l.Heads, _ => Enumerable.Repeat(1f, l.Heads).ToArray()));
                int meanLength = l.Heads * l.QueryTokens * l.HeadDim;
                columns.Add(InMemoryColumns.Floats(l.MeanInput, meanLength, _ => new float[meanLength]));
                shapes[l.MaskInput] = new[] { 1, l.Heads };
                shapes[l.MeanInput] = l.Layout == AttentionLayout.Heads4D ? new[] { 1, l.Heads, l.QueryTokens, l.HeadDim } : new[] { l.Heads, l.QueryTokens, l.HeadDim };
            }
            var data = new InMemoryColumns(t.Length, columns);
            _outputs = new[] { sig.NoiseOutput.Name }.Concat(capture.Layers.Select(l => l.MapsOutput)).ToArray();
            _transformer = ml.Transforms.ApplyOnnxModel(_outputs, columns.Select(c => c.Name).ToArray(), _file, shapes, gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100).Fit(data);
            _scored = _transformer.Transform(data);
        }

        public void Pass()
        {
            using var cursor = _scored.GetRowCursor(_scored.Schema.Where(c => _outputs.Contains(c.Name)));
            var getters = _outputs.Select(o => cursor.GetGetter<VBuffer<float>>(_scored.Schema[o])).ToArray();
            VBuffer<float> v = default;
            while (cursor.MoveNext())
                foreach (var g in getters) g(ref v);
        }

        public void Dispose()
        {
            (_transformer as IDisposable)?.Dispose();
            File.Delete(_file);
        }
    }
}

/// <summary>A minimal in-memory IDataView of float-vector and int64-vector columns, for feeding ApplyOnnxModel.</summary>
internal sealed class InMemoryColumns : IDataView
{
    public sealed record Column(string Name, DataViewType Type, Delegate Getter);

    private readonly int _rows;
    private readonly IReadOnlyList<Column> _columns;

    public InMemoryColumns(int rows, IReadOnlyList<Column> columns)
    {
        (_rows, _columns) = (rows, columns);
        var b = new DataViewSchema.Builder();
        foreach (var c in columns) b.AddColumn(c.Name, c.Type);
        Schema = b.ToSchema();
    }

    public static Column Floats(string name, int length, Func<int, float[]> values) =>
        new(name, new VectorDataViewType(NumberDataViewType.Single, length), values);

    public static Column Int64s(string name, Func<int, long> value) =>
        new(name, new VectorDataViewType(NumberDataViewType.Int64, 1), (Func<int, long[]>)(r => new[] { value(r) }));

    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _rows;
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded) };

    private sealed class Cursor(InMemoryColumns view) : DataViewRowCursor
    {
        private long _position = -1;
        public override DataViewSchema Schema => view.Schema;
        public override long Position => _position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => true;
        public override bool MoveNext() => ++_position < view._rows;
        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            var source = view._columns[column.Index].Getter;
            if (source is Func<int, float[]> f)
                return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => v = new VBuffer<float>(f((int)_position).Length, f((int)_position)));
            var l = (Func<int, long[]>)source;
            return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<long>>)((ref VBuffer<long> v) => v = new VBuffer<long>(1, l((int)_position)));
        }
    }
}
