using System.Diagnostics;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;

namespace DiffusionCircuits.Bench;

/// <summary>What the single-head sweep cost, five ways, in one run.</summary>
/// <param name="Calls">Run calls of our sweep (shared prefix).</param>
/// <param name="Seconds">Seconds of our sweep.</param>
/// <param name="NaiveCalls">One Run per (ablation or baseline, row).</param>
/// <param name="NaiveSeconds">One Run per (ablation or baseline, row), estimated from 64 timed single-row Runs.</param>
/// <param name="FullPassSeconds">The same sweep with every condition through the full model (batched, no shared prefix).</param>
/// <param name="OneAtATimeSeconds">Our sweep with one condition in flight at a time, on ONNX Runtime's default threads.</param>
/// <param name="Rows64Seconds">Our sweep at 64 rows per Run (the default until 2026-12-07) instead of <see cref="CircuitAnalysisOptions.DefaultBatchSize"/>.</param>
/// <param name="Parallelism">Conditions of a batch in flight at once in our sweep, and threads per Run.</param>
/// <param name="Gflop">GFLOPs of our sweep's passes (a suffix pass counts its part).</param>
/// <param name="NaiveGflop">GFLOPs of one full pass per (ablation or baseline, row).</param>
public sealed record AblationCostResult(long Calls, double Seconds, long NaiveCalls, double NaiveSeconds, double FullPassSeconds, double OneAtATimeSeconds,
    double Rows64Seconds, RunParallelism Parallelism, double Gflop, double NaiveGflop);

/// <summary>The ablation sweep's cost against one Run per ablation.</summary>
public static class AblationCost
{
    /// <summary>
    /// Ours: every single-head ablation of every row, each condition through the model from its first ablated layer on.
    /// Full pass: the same rows batched with per-row masks through the whole model. Naive: one Run per (ablation or
    /// baseline, row), timed on 64 single-row Runs with one head masked each and scaled to the count.
    /// </summary>
    public static AblationCostResult Measure(string modelPath, IReadOnlyList<FaceImage> faces, int[] ts)
    {
        using var session = new AttentionCaptureSession(modelPath, new CaptureOptions { ExposeMaps = false });
        using var sweep = new AblationSweep(session, ts, 1);
        using var fullSweep = new AblationSweep(session, ts, 1, sharePrefix: false);
        using var oneAtATime = new AblationSweep(session, ts, 1, parallelism: RunParallelism.Sequential);
        using var rows64 = new AblationSweep(session, ts, 1, batchSize: 64);
        var conditions = AblationSweep.SingleHeads(session);
        var bench = new DataSetId("bench");
        sweep.Run(bench, faces.Take(2).ToList(), conditions);          // warm-up (and the suffixes' setup)
        fullSweep.Run(bench, faces.Take(2).ToList(), conditions);
        oneAtATime.Run(bench, faces.Take(2).ToList(), conditions);
        rows64.Run(bench, faces.Take(2).ToList(), conditions);
        // Alternated, best of two each: a slow spell on a shared machine hits all alike.
        AblationResult result = null!;
        double seconds = double.MaxValue, fullSeconds = double.MaxValue, oneSeconds = double.MaxValue, seconds64 = double.MaxValue;
        for (int round = 0; round < 2; round++)
        {
            result = sweep.Run(bench, faces, conditions);
            seconds = Math.Min(seconds, result.Seconds);
            fullSeconds = Math.Min(fullSeconds, fullSweep.Run(bench, faces, conditions).Seconds);
            oneSeconds = Math.Min(oneSeconds, oneAtATime.Run(bench, faces, conditions).Seconds);
            seconds64 = Math.Min(seconds64, rows64.Run(bench, faces, conditions).Seconds);
        }
        long naive = (long)faces.Count * ts.Length * (conditions.Count + 1);
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
        return new AblationCostResult(result.RunCalls, seconds, naive, perRun * naive, fullSeconds, oneSeconds, seconds64, sweep.Parallelism, result.ForwardFlops / 1e9, naive * result.FullPassFlops / 1e9);
    }
}
