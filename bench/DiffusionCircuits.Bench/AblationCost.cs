using System.Diagnostics;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;

namespace DiffusionCircuits.Bench;

/// <summary>The ablation sweep's cost against one Run per ablation.</summary>
public static class AblationCost
{
    /// <summary>
    /// Ours: every single-head ablation of every row, batched with per-row masks. Naive: one Run per (ablation or
    /// baseline, row), timed on 64 single-row Runs with one head masked each and scaled to the count.
    /// </summary>
    public static (long Calls, double Seconds, long NaiveCalls, double NaiveSeconds) Measure(string modelPath, IReadOnlyList<FaceImage> faces, int[] ts)
    {
        using var session = new AttentionCaptureSession(modelPath, new CaptureOptions { ExposeMaps = false });
        var sweep = new AblationSweep(session, ts, 1);
        var conditions = AblationSweep.SingleHeads(session);
        var bench = new DataSetId("bench");
        sweep.Run(bench, faces.Take(2).ToList(), conditions);          // warm-up
        var result = sweep.Run(bench, faces, conditions);
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
        return (result.RunCalls, result.Seconds, naive, perRun * naive);
    }
}
