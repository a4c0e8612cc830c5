using System.CommandLine;
using System.Text.Json;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

internal static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<string?>("model") { Description = "The ONNX model file (a diffusion UNet: noisy sample and timestep in, predicted noise out); or --pipeline.", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of tables." };
        var size = new Option<int>("--sample-size") { Description = "Image side used for the probe run when the model's spatial size is dynamic.", DefaultValueFactory = _ => 32 };
        var denoiser = DenoiserOptions.Create();
        var cmd = new Command("inspect", "Show a model's opset, inputs and outputs (which is the timestep, which the noisy sample) and its attention layers; " +
                                         "with --pipeline, also its VAE encoder, schedule and conditioning.")
        {
            model, json, size, denoiser.Pipeline, denoiser.VaeEncoder, denoiser.Prompt, denoiser.Conditioning,
        };
        cmd.SetAction(parse =>
        {
            string? path = parse.GetValue(model);
            if (path != null && parse.GetValue(denoiser.Pipeline) != null) throw new UserFacingException("Give a model file or --pipeline, not both.");
            if (path == null && parse.GetValue(denoiser.Pipeline) == null) throw new UserFacingException("inspect needs a model file or --pipeline DIR.");
            var setup = parse.GetValue(denoiser.Pipeline) is string pipeline
                ? CommonOptions.Translate(() => DenoiserSetup.FromPipeline(pipeline, parse.GetValue(denoiser.Prompt), parse.GetValue(denoiser.Conditioning)))
                : CommonOptions.Translate(() => DenoiserSetup.FromModel(path!, parse.GetValue(denoiser.VaeEncoder), parse.GetValue(denoiser.Prompt), parse.GetValue(denoiser.Conditioning)));
            var conditioning = setup.LoadConditioning();
            var (onnx, result) = Load(setup.ModelPath, setup.LatentSize ?? parse.GetValue(size), conditioning);
            var report = ModelReport.From(onnx, result) with { Setup = SetupLines(setup, result, conditioning) };
            if (parse.GetValue(json))
            {
                Console.Out.Write(JsonFiles.Serialize(report));
                return CliApp.Ok;
            }
            var console = AnsiConsole.Console;
            console.MarkupLine($"[bold]{Markup.Escape(report.File)}[/]  opset {report.Opset}, IR {report.IrVersion}, producer {Markup.Escape(report.Producer)}, {report.Nodes} nodes");
            var io = new Table().AddColumns("", "name", "type", "shape", "role");
            foreach (var t in report.Inputs) io.AddRow("in", Markup.Escape(t.Name), t.Type, Markup.Escape(t.Shape), t.Role);
            foreach (var t in report.Outputs) io.AddRow("out", Markup.Escape(t.Name), t.Type, Markup.Escape(t.Shape), t.Role);
            console.Write(io);
            var layers = new Table().AddColumns("layer", "kind", "layout", "heads", "query tokens", "key tokens", "grid", "head dim", "type");
            foreach (var l in report.Layers)
                layers.AddRow(Markup.Escape(l.Name), l.Kind, l.Layout, l.Heads.ToString(), l.QueryTokens.ToString(), l.KeyTokens.ToString(), l.Grid, l.HeadDim.ToString(), l.ElementType);
            console.Write(layers);
            console.MarkupLine($"{report.Layers.Count} attention layers ({report.Layers.Count(l => l.Kind == "cross")} cross-attention), {report.TotalHeads} heads.");
            foreach (var line in report.Setup) console.MarkupLine(Markup.Escape(line));
            foreach (var note in report.Notes) console.MarkupLine($"[yellow]note:[/] {Markup.Escape(note)}");
            return CliApp.Ok;
        });
        return cmd;
    }

    internal static (OnnxModel Model, AttentionDiscoveryResult Result) Load(string path, int sampleSize, ModelConditioning? conditioning = null)
    {
        var onnx = OnnxModel.Load(path);
        return (onnx, AttentionDiscovery.Discover(onnx, sampleSize, conditioning));
    }

    /// <summary>What surrounds the UNet: schedule, latents, conditioning (what report and circuits would feed it).</summary>
    private static List<string> SetupLines(DenoiserSetup setup, AttentionDiscoveryResult result, ModelConditioning? conditioning)
    {
        var lines = new List<string>();
        if (setup.PipelineFolder != null) lines.Add($"pipeline: {setup.PipelineFolder} (UNet unet/model.onnx)");
        var schedule = setup.LoadSchedule();
        if (schedule != null) lines.Add($"schedule: {schedule.Name}, prediction {schedule.Prediction} (scheduler/scheduler_config.json)");
        if (setup.IsLatent)
        {
            var sample = result.Signature.Sample;
            using var encoder = setup.OpenLatentEncoder((int)(sample.FixedDim(1) ?? 4), (int)(sample.FixedDim(2) ?? setup.LatentSize ?? 64));
            lines.Add($"latents: faces of {encoder!.Height}x{encoder.Width} -> {encoder.Channels}x{encoder.LatentHeight}x{encoder.LatentWidth} through {DenoiserSetup.ShortName(setup.VaeEncoderPath!)}, " +
                      $"{encoder.Note} ({setup.ScalingFactorSource})");
        }
        var binding = result.Signature.Inputs.FirstOrDefault(i => i.Role == TensorRole.Conditioning && i.Rank == 3);
        if (binding != null)
            lines.Add(conditioning != null ? $"conditioning: {conditioning.Source} -> '{binding.Name}'"
                : $"conditioning: '{binding.Name}' {binding.ShapeText} takes text embeddings; report and circuits need --prompt TEXT (with --pipeline) or --conditioning FILE.npy " +
                  $"(cross-attention measured here with {ProbeInputs.DefaultTextTokens} zero tokens)");
        return lines;
    }
}

/// <summary>The facts `inspect` prints, also written into results.json.</summary>
internal sealed record ModelReport(string File, long IrVersion, long Opset, string Producer, int Nodes,
    IReadOnlyList<ModelReport.TensorRow> Inputs, IReadOnlyList<ModelReport.TensorRow> Outputs,
    IReadOnlyList<ModelReport.LayerRow> Layers, int TotalHeads, IReadOnlyList<string> Notes)
{
    /// <summary>What surrounds the UNet (pipeline, schedule, latents, conditioning), one line each.</summary>
    public IReadOnlyList<string> Setup { get; init; } = Array.Empty<string>();

    public sealed record TensorRow(string Name, string Type, string Shape, string Role);

    public sealed record LayerRow(string Name, string Kind, string Layout, int Heads, int QueryTokens, int KeyTokens, string Grid, int HeadDim, string ElementType, IReadOnlyList<string> HeadNames);

    public static ModelReport From(OnnxModel model, AttentionDiscoveryResult r) => new(
        model.SourcePath ?? "", model.Proto.IrVersion, model.Opset,
        (model.Proto.ProducerName + " " + model.Proto.ProducerVersion).Trim(), model.Graph.Node.Count,
        r.Signature.Inputs.Select(Row).ToList(), r.Signature.Outputs.Select(Row).ToList(),
        r.Layers.Select(l => new LayerRow(l.Name, l.Kind, l.Layout.ToString(), l.Heads, l.QueryTokens, l.KeyTokens,
            $"{l.GridHeight}x{l.GridWidth}", l.HeadDim, l.ElementType.ToString().ToLowerInvariant(),
            Enumerable.Range(0, l.Heads).Select(l.HeadName).ToList())).ToList(),
        r.TotalHeads, r.Notes);

    private static TensorRow Row(TensorSpec t) => new(t.Name, t.TypeText, t.ShapeText, t.Role switch
    {
        TensorRole.NoisySample => "noisy sample x_t",
        TensorRole.Timestep => "timestep t",
        TensorRole.Conditioning => "conditioning",
        TensorRole.NoisePrediction => "predicted noise",
        _ => "",
    });
}
