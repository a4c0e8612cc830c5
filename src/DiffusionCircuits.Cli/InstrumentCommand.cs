using System.CommandLine;
using System.Diagnostics;
using DiffusionCircuits.Onnx;

namespace DiffusionCircuits.Cli;

internal static class InstrumentCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The ONNX model to instrument." };
        var output = new Option<string>("--out", "-o", "--output") { Description = "Where to write the instrumented copy (.onnx).", Required = true };
        var noMaps = new Option<bool>("--no-maps") { Description = "Do not expose attention maps as outputs (ablation inputs only)." };
        var noMasks = new Option<bool>("--no-masks") { Description = "Do not add mask./mean. ablation inputs (maps only)." };
        var entropy = new Option<bool>("--entropy") { Description = "Also output entropy.<layer> [B, H]: each head's entropy in nats (mean over queries), computed in the graph." };
        var layers = new Option<string[]>("--layers") { Description = "Only these layers (names as printed by inspect).", AllowMultipleArgumentsPerToken = true };
        var size = new Option<int>("--sample-size") { Description = "Image side used for the probe run when the model's spatial size is dynamic.", DefaultValueFactory = _ => 32 };
        var cmd = new Command("instrument",
            "Write a copy of a model that outputs every attention map as attn.<layer> and takes per-sample head masks " +
            "mask.<layer> [B, H] and mean.<layer> inputs (z <- mask*z + (1-mask)*mean before the output projection).")
        {
            model, output, noMaps, noMasks, entropy, layers, size,
        };
        cmd.SetAction(parse =>
        {
            var watch = Stopwatch.StartNew();
            string outPath = parse.GetValue(output)!;
            CheckWritable(outPath);
            var (onnx, found) = InspectCommand.Load(parse.GetValue(model)!, parse.GetValue(size));
            var selected = parse.GetValue(layers);
            var options = new InstrumentOptions
            {
                ExposeMaps = !parse.GetValue(noMaps),
                AddAblationInputs = !parse.GetValue(noMasks),
                ExposeEntropy = parse.GetValue(entropy),
                Layers = selected is { Length: > 0 } ? selected.ToHashSet() : null,
            };
            try
            {
                var instrumented = ModelInstrumenter.Instrument(onnx, found, options);
                instrumented.Model.Save(outPath);
                Console.Out.WriteLine($"Wrote {outPath}: {instrumented.Layers.Count} layers, {instrumented.Layers.Sum(l => l.Heads)} heads " +
                                      $"({(options.ExposeMaps ? "maps" : "no maps")}, {(options.AddAblationInputs ? "ablation inputs" : "no ablation inputs")}) in {watch.Elapsed.TotalSeconds:F2} s.");
                foreach (var l in instrumented.Layers)
                    Console.Out.WriteLine($"  {l.Name}: {(options.ExposeMaps ? l.MapsOutput : "-")}  {(options.AddAblationInputs ? $"{l.MaskInput} [B, {l.Heads}]  {l.MeanInput}" : "")}{(options.ExposeEntropy ? $"  {l.EntropyOutput} [B, {l.Heads}]" : "")}");
            }
            catch (OnnxModelException e) { throw new UserFacingException(e.Message, e); }
            return CliApp.Ok;
        });
        return cmd;
    }

    /// <summary>Fails before any work when the output cannot be written.</summary>
    internal static void CheckWritable(string path)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new UserFacingException($"Cannot write '{path}': folder '{dir}' does not exist.");
        if (Directory.Exists(full)) throw new UserFacingException($"Cannot write '{path}': it is a folder.");
        string probe = Path.Combine(dir, $".diffcircuits-write-test-{Guid.NewGuid():N}");
        try { File.WriteAllBytes(probe, Array.Empty<byte>()); File.Delete(probe); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new UserFacingException($"Cannot write '{path}': {e.Message}"); }
    }
}
