using System.Diagnostics;
using System.Globalization;
using DiffusionCircuits.Transforms;
using Microsoft.ML;

namespace DiffusionCircuits.Bench;

/// <summary>
/// Peak memory in a child process, so that each count starts from a fresh process. The child side streams images
/// (one timestep) through capture + entropy + probes and prints <c>peak_rss_kb=N</c> (VmHWM).
/// </summary>
public static class MemoryProbe
{
    /// <summary>Starts the child and reads its peak RSS in MB.</summary>
    public static double ChildPeakRssMb(ProcessStartInfo child, int images)
    {
        child.RedirectStandardOutput = true;
        child.RedirectStandardError = true;
        using var p = Process.Start(child)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith("peak_rss_kb=", StringComparison.Ordinal));
        if (p.ExitCode != 0 || line == null) throw new InvalidOperationException($"The memory probe with {images} images failed (exit {p.ExitCode}): {stderr.Trim()}");
        return long.Parse(line["peak_rss_kb=".Length..].Trim(), CultureInfo.InvariantCulture) / 1024.0;
    }

    /// <summary>The child side: streams <paramref name="images"/> faces x one timestep through the pipeline, then prints VmHWM.</summary>
    public static void Probe(string modelPath, int images, int batch, TextWriter output)
    {
        // Faces drawn lazily as the cursor moves, so nothing grows with the image count.
        using (var pipeline = new MlNetPipelinePath(modelPath, new MLContext(seed: 1).Data.SyntheticFaces(images, seed: 1, size: 32), new[] { 200 }, batch, features: true))
            pipeline.Pass();
        var hwm = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        output.WriteLine("peak_rss_kb=" + hwm["VmHWM:".Length..].Replace("kB", "").Trim());
    }
}
