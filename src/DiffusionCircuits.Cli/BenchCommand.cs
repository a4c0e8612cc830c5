using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Transforms;
using Microsoft.ML;
using Microsoft.ML.Data;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>
/// `bench`: throughput of the capture paths on the same model, images and timesteps, measured in one run so the
/// ratios are comparable on a shared, noisy machine.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var images = new Option<int>("--images") { Description = "Synthetic images (each at every timestep).", DefaultValueFactory = _ => 32 };
        var timesteps = CommonOptions.Timesteps();
        var batch = new Option<int>("--batch") { Description = "Rows per ONNX Runtime run for the batched paths.", DefaultValueFactory = _ => 32 };
        var output = new Option<string>("--out") { Description = "Where to write bench.json.", DefaultValueFactory = _ => "reports/bench" };
        var cmd = new Command("bench", "Measure capture throughput: raw ONNX Runtime (original and instrumented, batched), the ML.NET pipeline, and ML.NET's ApplyOnnxModel row by row.")
        {
            model, images, timesteps, batch, output,
        };
        cmd.SetAction(parse =>
        {
            string path = parse.GetValue(model)!;
            var ts = EvaluateCommand.ParseTimesteps(parse.GetValue(timesteps)!);
            int n = parse.GetValue(images), b = parse.GetValue(batch);
            if (n < 1 || b < 1) throw new UserFacingException("--images and --batch must be at least 1.");
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
                    PairedNoise.Fill(eps, 1, faces[i].Id, ts[k]);
                    ForwardNoising.Apply(faces[i].RgbPlanes, eps, capture.Schedule, ts[k], noisy.AsSpan(r * len, len));
                }
            var results = new List<(string Name, double RowsPerSecond, string Detail)>();
            void Measure(string name, string detail, Action run)
            {
                run();                                      // warm-up: session creation, first-run allocations
                var w = Stopwatch.StartNew();
                run();
                results.Add((name, rows / w.Elapsed.TotalSeconds, detail));
                Console.Error.WriteLine($"bench: {name}: {rows / w.Elapsed.TotalSeconds:F1} rows/s");
            }

            using (var denoiser = new DenoiserSession(onnx))
                Measure("raw ORT, original model, batched", $"batch {b}", () => ForBatches(rows, b, (s, c) => denoiser.PredictNoise(noisy[(s * len)..((s + c) * len)], t[s..(s + c)])));
            Measure("raw ORT, instrumented, maps exposed, batched", $"batch {b}", () => ForBatches(rows, b, (s, c) =>
            {
                using var r = capture.Run(noisy[(s * len)..((s + c) * len)], t[s..(s + c)]);
            }));
            Measure("ML.NET pipeline: capture + entropy + probes", $"batch {b}", () => RunPipeline(path, n, ts, b));
            Measure("ML.NET ApplyOnnxModel, row by row", "1 row per Run", () => RunApplyOnnxModel(capture, noisy, t));

            double baseline = results[1].RowsPerSecond;
            var table = new Table().AddColumns("path", "rows/s", "vs raw ORT with maps", "detail");
            foreach (var r in results) table.AddRow(r.Name, $"{r.RowsPerSecond:F1}", $"{r.RowsPerSecond / baseline:F2}x", r.Detail);
            AnsiConsole.Write(table);
            string outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            var json = new Dictionary<string, object>
            {
                ["model"] = Path.GetFullPath(path), ["rows"] = rows, ["images"] = n, ["timesteps"] = ts, ["batch"] = b,
                ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
                ["rows_per_second"] = results.ToDictionary(r => r.Name, r => Math.Round(r.RowsPerSecond, 2)),
                ["pipeline_vs_raw_ort_exposed"] = Math.Round(results[2].RowsPerSecond / baseline, 4),
                ["batched_vs_apply_onnx_model"] = Math.Round(baseline / results[3].RowsPerSecond, 4),
            };
            string file = Path.Combine(outDir, "bench.json");
            AtomicFile.WriteAllText(file, JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));
            Console.Out.WriteLine($"Wrote {file}");
            return CliApp.Ok;
        });
        return cmd;
    }

    private static void ForBatches(int rows, int batch, Action<int, int> run)
    {
        for (int s = 0; s < rows; s += batch) run(s, Math.Min(batch, rows - s));
    }

    private static void RunPipeline(string modelPath, int images, int[] timesteps, int batch)
    {
        var ml = new MLContext(seed: 1);
        var faces = ml.Data.SyntheticFaces(images, seed: 1, size: 32);
        var pipeline = ml.Transforms.AddDiffusionNoise(timesteps: timesteps, seed: 1)
            .Append(ml.Transforms.CaptureAttention(modelPath, batchSize: batch))
            .Append(ml.Transforms.AttentionEntropy())
            .Append(ml.Transforms.AttentionProbes());
        var fitted = pipeline.Fit(faces);
        var rows = fitted.Transform(faces);
        using var cursor = rows.GetRowCursor(rows.Schema.Where(c => c.Name is "EntropyNats" or "SemanticAffinity"));
        var entropy = cursor.GetGetter<VBuffer<float>>(rows.Schema["EntropyNats"]);
        var semantic = cursor.GetGetter<VBuffer<float>>(rows.Schema["SemanticAffinity"]);
        VBuffer<float> a = default, c = default;
        while (cursor.MoveNext())
        {
            entropy(ref a);
            semantic(ref c);
        }
        foreach (var t in (fitted as TransformerChain<ITransformer>)?.OfType<IDisposable>() ?? Enumerable.Empty<IDisposable>()) t.Dispose();
    }

    /// <summary>ML.NET's own ONNX scoring on the instrumented model: one Run per row, outputs copied per row.</summary>
    private static void RunApplyOnnxModel(AttentionCaptureSession capture, float[] noisy, int[] t)
    {
        var ml = new MLContext(seed: 1);
        string file = Path.Combine(Path.GetTempPath(), $"dc-bench-{Guid.NewGuid():N}.onnx");
        capture.Instrumented.Model.Save(file);
        try
        {
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
            var outputs = new[] { sig.NoiseOutput.Name }.Concat(capture.Layers.Select(l => l.MapsOutput)).ToArray();
            var transformer = ml.Transforms.ApplyOnnxModel(outputs, columns.Select(c => c.Name).ToArray(), file, shapes, gpuDeviceId: null, fallbackToCpu: false, recursionLimit: 100).Fit(data);
            var scored = transformer.Transform(data);
            using var cursor = scored.GetRowCursor(scored.Schema.Where(c => outputs.Contains(c.Name)));
            var getters = outputs.Select(o => cursor.GetGetter<VBuffer<float>>(scored.Schema[o])).ToArray();
            VBuffer<float> v = default;
            while (cursor.MoveNext())
                foreach (var g in getters) g(ref v);
            transformer.Dispose();
        }
        finally
        {
            File.Delete(file);
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
