using DiffusionCircuits.Bench;
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
/// `bench`, the thin entry point of <see cref="EndToEndBench"/> (bench/DiffusionCircuits.Bench): throughput of every capture path on the same model, images and timesteps, measured in one run so the
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
        var output = new Option<string>("--out", "-o") { Description = "Where to write bench.json.", DefaultValueFactory = _ => "reports/bench" };
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
            if (n < 1 || n > AnalysisLimits.MaxImages) throw new UserFacingException($"--images must be between 1 and {AnalysisLimits.MaxImages} (got {n}).");
            CommonOptions.Check(() => AnalysisLimits.CheckBatch(b));
            if (parse.GetValue(probe) is int probeImages and > 0)
            {
                MemoryProbe.Probe(path, probeImages, b, Console.Out);
                return CliApp.Ok;
            }
            var options = new EndToEndOptions(path, n, ts, b, parse.GetValue(output)!, parse.GetValue(python),
                Path.Combine(Path.GetDirectoryName(Defaults.ModelPath)!, "..", "tools", "bench", "torch_peer.py"), Path.ChangeExtension(Defaults.ModelPath, ".pt"),
                ParseCounts(parse.GetValue(memory)!), count => ProbeChild(path, count, b));
            using var claim = CommonOptions.ClaimOutput(options.OutDir, "bench");
            var result = EndToEndBench.Run(options, line => Console.Error.WriteLine($"bench: {line}"));
            var table = new Table().AddColumns("path", "rows/s", "vs raw ORT with maps", "detail");
            foreach (var r in result.Paths)
                table.AddRow(Markup.Escape(r.Name), $"{r.RowsPerSecond:F1}", $"{r.RowsPerSecond / result.BaselineRowsPerSecond:F2}x", Markup.Escape(r.Detail));
            AnsiConsole.Write(table);
            var ratios = new Table().AddColumns("ratio", "value", "target");
            foreach (var r in result.Ratios) ratios.AddRow(Markup.Escape(r.Name), Markup.Escape(r.Value), Markup.Escape(r.Target));
            AnsiConsole.Write(ratios);
            string file = Path.Combine(options.OutDir, "bench.json");
            AtomicFile.WriteAllText(file, JsonFiles.Serialize(result.Json));
            Console.Out.WriteLine($"Wrote {file}");
            return CliApp.Ok;
        });
        return cmd;
    }

    /// <summary>This command again as the child of a peak-memory run (the hidden --memory-probe).</summary>
    private static ProcessStartInfo ProbeChild(string modelPath, int images, int batch)
    {
        var info = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet");
        if (Path.GetFileNameWithoutExtension(info.FileName) == "dotnet") info.ArgumentList.Add(typeof(BenchCommand).Assembly.Location);
        foreach (var a in new[] { "bench", "--model", modelPath, "--batch", batch.ToString(CultureInfo.InvariantCulture), "--memory-probe", images.ToString(CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(a);
        return info;
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
}
