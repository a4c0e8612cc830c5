using CsCheck;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Cli;

/// <summary>
/// Generated argument lists over every command (bench aside: minutes per valid run) from pools of valid and broken
/// values: whatever the list, the exit code is 0, 1 or 2, never 3 (a crash), and a 2 comes with one error line.
/// </summary>
[Collection("Console")]
public class CliFuzzTests
{
    private static string Temp() => Directory.CreateTempSubdirectory("fuzz-").FullName;

    [Fact]
    public void No_generated_argument_list_crashes_any_command()
    {
        string model = Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");
        string dir = Temp();
        string textFile = Path.Combine(dir, "text.onnx"), emptyDir = Directory.CreateDirectory(Path.Combine(dir, "empty")).FullName;
        File.WriteAllText(textFile, "not a model");
        string badJson = Path.Combine(dir, "bad.json"), arrayJson = Path.Combine(dir, "array.json");
        File.WriteAllText(badJson, "{ not json");
        File.WriteAllText(arrayJson, "[1]");
        string faces = Directory.CreateDirectory(Path.Combine(dir, "faces")).FullName;
        Assert.Equal(0, CliTests.Run("synth", "--count", "4", "--size", "32", "--out", faces).Code);

        var values = new Dictionary<string, string[]>
        {
            ["--model"] = new[] { model, textFile, emptyDir, Path.Combine(dir, "missing.onnx") },
            ["--images"] = new[] { "4", "0", "-3", "x", "100001", "2.5" },
            ["--timesteps"] = new[] { "500", "1000", "a", "", "500,,", "-1" },
            ["--real"] = new[] { faces, emptyDir, textFile, Path.Combine(dir, "nowhere") },
            ["--bootstrap"] = new[] { "100", "5", "x" },
            ["--tolerance"] = new[] { "10", "-1", "0", "abc" },
            ["--roles"] = new[] { "2", "0", "65" },
            ["--seed"] = new[] { "1", "x", "-5" },
            ["--batch"] = new[] { "4", "0", "x" },
            ["--ablation"] = new[] { "zero", "mean", "resample", "other" },
            ["--resample-draws"] = new[] { "2", "0", "x" },
            ["--sample-size"] = new[] { "16", "0", "x" },
            ["--count"] = new[] { "2", "0", "x" },
            ["--baseline"] = new[] { badJson, arrayJson, Path.Combine(dir, "none.json") },
            ["--frobnicate"] = new[] { "1" },
        };
        string[] commands = { "report", "features", "circuits", "evaluate", "check", "baseline", "inspect", "instrument", "synth", "prepare", "nonsense" };
        string[] positional = { model, badJson, arrayJson, textFile, faces, Path.Combine(dir, "missing") };
        var option = Gen.OneOf(values.Keys.ToArray()).SelectMany(name => Gen.OneOf(values[name]).Select(v => new[] { name, v }));
        var args = Gen.Select(Gen.OneOf(commands), Gen.OneOf(positional).Array[0, 1], option.Array[0, 5],
            (command, pos, options) => new[] { command }.Concat(pos).Concat(options.SelectMany(o => o))
                .Concat(new[] { "--out", Path.Combine(Temp(), "out") }).ToArray());

        args.Sample(list =>
        {
            var (code, _, err) = CliTests.Run(list);
            Assert.True(code is 0 or 1 or 2, $"exit {code} for: {string.Join(' ', list)}\n{err}");
            if (code == 2) Assert.Single(err.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        }, iter: 40, threads: 1);
    }
}
