using System.CommandLine;
using System.Text.Json;
using DiffusionCircuits.Onnx;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

internal static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The ONNX model file (a diffusion UNet: noisy sample and timestep in, predicted noise out)." };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of tables." };
        var size = new Option<int>("--sample-size") { Description = "Image side used for the probe run when the model's spatial size is dynamic.", DefaultValueFactory = _ => 32 };
        var cmd = new Command("inspect", "Show a model's opset, inputs and outputs (which is the timestep, which the noisy sample) and its attention layers.")
        {
            model, json, size,
        };
        cmd.SetAction(parse =>
        {
            var (onnx, result) = Load(parse.GetValue(model)!, parse.GetValue(size));
            var report = ModelReport.From(onnx, result);
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
            console.MarkupLine($"{report.Layers.Count} attention layers, {report.TotalHeads} heads.");
            foreach (var note in report.Notes) console.MarkupLine($"[yellow]note:[/] {Markup.Escape(note)}");
            return CliApp.Ok;
        });
        return cmd;
    }

    internal static (OnnxModel Model, AttentionDiscoveryResult Result) Load(string path, int sampleSize)
    {
        var onnx = OnnxModel.Load(path);
        return (onnx, AttentionDiscovery.Discover(onnx, sampleSize));
    }
}

/// <summary>The facts `inspect` prints, also written into results.json.</summary>
internal sealed record ModelReport(string File, long IrVersion, long Opset, string Producer, int Nodes,
    IReadOnlyList<ModelReport.TensorRow> Inputs, IReadOnlyList<ModelReport.TensorRow> Outputs,
    IReadOnlyList<ModelReport.LayerRow> Layers, int TotalHeads, IReadOnlyList<string> Notes)
{

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
