using DiffusionCircuits.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace DiffusionCircuits.Tests.Support;

/// <summary>Runs a model once with named float/int64 inputs and returns the named outputs as float arrays.</summary>
public static class ModelRunner
{
    public static Dictionary<string, (float[] Data, long[] Shape)> Run(OnnxModel model, IDictionary<string, (Array Data, long[] Shape)> inputs, params string[] outputs)
    {
        using var session = OrtSessions.Create(model, new SessionOptions());
        var names = inputs.Keys.ToArray();
        var values = inputs.Values.Select(v => v.Data switch
        {
            float[] f => OrtValue.CreateTensorValueFromMemory(f, v.Shape),
            long[] l => OrtValue.CreateTensorValueFromMemory(l, v.Shape),
            _ => throw new ArgumentException("float[] or long[] inputs only"),
        }).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            using var results = session.Run(runOptions, names, values, outputs);
            var dict = new Dictionary<string, (float[], long[])>();
            for (int i = 0; i < outputs.Length; i++)
            {
                var info = results[i].GetTensorTypeAndShape();
                float[] data = info.ElementDataType == TensorElementType.Float16
                    ? results[i].GetTensorDataAsSpan<Float16>().ToArray().Select(h => (float)h).ToArray()
                    : results[i].GetTensorDataAsSpan<float>().ToArray();
                dict[outputs[i]] = (data, info.Shape);
            }
            return dict;
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public static float[] RandomSample(int batch, int channels, int side, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, batch * channels * side * side).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    public static float MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        float m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "DiffusionCircuits.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (DiffusionCircuits.sln) above " + AppContext.BaseDirectory);
    }

    public static string Fixture(string relative) => Path.Combine(AppContext.BaseDirectory, "Fixtures", relative);

    /// <summary>One torch export's entry in Fixtures/exports/reference.json (tools/fixtures/export_fixtures.py).</summary>
    public static System.Text.Json.JsonElement ExportReference(string fixture) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixture("exports/reference.json"))).RootElement.GetProperty("fixtures").GetProperty(fixture);

    /// <summary>Image ids of the two samples of an export's reference input (each conditioned by its own context row).</summary>
    public static readonly string[] SampleIds = { "sample0", "sample1" };

    /// <summary>
    /// The text conditioning an export takes (cross3d's <c>encoder_hidden_states</c>), from its reference input: both
    /// context rows, assigned to <see cref="SampleIds"/>, or with <paramref name="firstRowOnly"/> the first row for every
    /// image; null for an export without conditioning.
    /// </summary>
    public static ModelConditioning? ExportConditioning(string fixture, bool firstRowOnly = false)
    {
        var reference = ExportReference(fixture);
        if (reference.GetProperty("input_context").ValueKind != System.Text.Json.JsonValueKind.Array) return null;
        var context = Floats(reference, "input_context");
        const int dim = 8;
        int tokens = context.Length / (2 * dim);
        if (firstRowOnly) return new ModelConditioning(context[..(tokens * dim)], 1, tokens, dim, "the reference context's first row");
        var conditioning = new ModelConditioning(context, 2, tokens, dim, "the reference context");
        conditioning.AssignRows(SampleIds);
        return conditioning;
    }

    /// <summary>A JSON array of numbers as floats.</summary>
    public static float[] Floats(System.Text.Json.JsonElement element, string key) =>
        element.GetProperty(key).EnumerateArray().Select(e => e.GetSingle()).ToArray();
}
