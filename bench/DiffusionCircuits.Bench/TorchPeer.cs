using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Bench;

/// <summary>What the PyTorch forward-hooks peer measured.</summary>
public sealed record PeerResult(double RowsPerSecond, string Torch, Dictionary<string, double> EntropyNats);

/// <summary>tools/bench/torch_peer.py on the same noisy rows.</summary>
public static class TorchPeer
{
    /// <summary>Runs the peer; null (with a message) when Python, torch or the script is missing.</summary>
    public static PeerResult? Run(EndToEndOptions o, float[] noisy, int[] t, int rows, AttentionCaptureSession capture, Action<string> log)
    {
        if (o.Python is null or "none") return null;
        if (!File.Exists(o.PeerScript) || !File.Exists(o.PeerWeights))
        {
            log($"PyTorch peer skipped: {o.PeerScript} or {o.PeerWeights} not found (the peer runs the bundled reference model only).");
            return null;
        }
        string x = Path.Combine(o.OutDir, "peer-inputs.npy"), tf = Path.Combine(o.OutDir, "peer-timesteps.npy"), json = Path.Combine(o.OutDir, "peer.json");
        NpyFile.WriteFloat32(x, noisy, rows, capture.Channels, capture.Height, capture.Width);
        NpyFile.WriteInt32(tf, t, rows);
        log("PyTorch forward-hooks peer ...");
        var info = new ProcessStartInfo(o.Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { o.PeerScript, "--weights", o.PeerWeights, "--inputs", x, "--timesteps", tf, "--batch", o.Batch.ToString(CultureInfo.InvariantCulture), "--threads", "2", "--out", json })
            info.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(info)!;
            string stderr = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                log($"PyTorch peer failed (exit {p.ExitCode}; needs Debian's python3-torch: apt-get install python3-torch): {stderr.Trim().Split('\n').LastOrDefault()}");
                return null;
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            log($"PyTorch peer skipped: cannot start '{o.Python}' ({e.Message}).");
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
            foreach (var v in layer.Value.EnumerateArray()) entropy[HeadId.NameOf(layer.Name, h++)] = v.GetDouble();
        }
        return new PeerResult(doc.RootElement.GetProperty("rows_per_second").GetDouble(), doc.RootElement.GetProperty("torch").GetString() ?? "?", entropy);
    }
}
