using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Onnx;

public class OnnxModelTests
{
    public static TheoryData<string> Exports => new() { "exports/bmm3d.onnx", "exports/heads4d.onnx", "exports/sdpa4d.onnx", "exports/cross3d.onnx", "exports/external/heads4d_external.onnx" };

    [Theory]
    [MemberData(nameof(Exports))]
    public void Saving_an_unchanged_model_writes_the_same_bytes(string fixture)
    {
        var path = ModelRunner.Fixture(fixture);
        var original = File.ReadAllBytes(path);
        Assert.Equal(original, OnnxModel.Load(path).ToBytes());
    }

    [Fact]
    public void Fields_outside_our_schema_survive_a_round_trip()
    {
        var original = File.ReadAllBytes(ModelRunner.Fixture("exports/heads4d.onnx"));
        // Field 99 (varint 12345) and field 98 (bytes) of ModelProto: unknown to our schema.
        var extra = new byte[] { 0x98, 0x06, 0xB9, 0x60, 0x92, 0x06, 0x03, (byte)'a', (byte)'b', (byte)'c' };
        var bytes = original.Concat(extra).ToArray();
        Assert.Equal(bytes, OnnxModel.Parse(bytes).ToBytes());
    }

    [Fact]
    public void A_file_that_is_not_onnx_is_refused_naming_the_file()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "notes.onnx");
        File.WriteAllText(path, "this is a text file, not a model\n");
        var e = Assert.Throws<OnnxModelException>(() => OnnxModel.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("not", e.Message);
    }

    [Fact]
    public void A_truncated_model_is_refused_as_truncated()
    {
        var bytes = File.ReadAllBytes(ModelRunner.Fixture("exports/bmm3d.onnx"));
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "cut.onnx");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<OnnxModelException>(() => OnnxModel.Load(path));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void Empty_and_missing_files_are_refused_clearly()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var empty = Path.Combine(dir, "empty.onnx");
        File.WriteAllBytes(empty, Array.Empty<byte>());
        Assert.Contains("empty", Assert.Throws<OnnxModelException>(() => OnnxModel.Load(empty)).Message);
        Assert.Contains("does not exist", Assert.Throws<OnnxModelException>(() => OnnxModel.Load(Path.Combine(dir, "missing.onnx"))).Message);
    }

    [Fact]
    public void A_model_with_external_weights_saved_elsewhere_still_loads_and_predicts_the_same()
    {
        var source = OnnxModel.Load(ModelRunner.Fixture("exports/external/heads4d_external.onnx"));
        Assert.True(source.HasExternalData);
        Assert.Equal(new[] { "weights.bin" }, source.ExternalLocations());
        var target = Path.Combine(Directory.CreateTempSubdirectory().FullName, "copy.onnx");
        source.Save(target);
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(target)!, "weights.bin")));

        var inputs = new Dictionary<string, (Array, long[])>
        {
            ["sample"] = (ModelRunner.RandomSample(1, 3, 16, 3), new long[] { 1, 3, 16, 16 }),
            ["timestep"] = (new long[] { 100 }, new long[] { 1 }),
        };
        var viaCopy = ModelRunner.Run(OnnxModel.Load(target), inputs, "eps")["eps"].Data;
        var viaInline = ModelRunner.Run(OnnxModel.Load(ModelRunner.Fixture("exports/heads4d.onnx")), inputs, "eps")["eps"].Data;
        Assert.Equal(0f, ModelRunner.MaxAbsDiff(viaCopy, viaInline));
    }

    [Fact]
    public void Saving_into_a_missing_folder_is_refused_naming_it()
    {
        var model = OnnxModel.Load(ModelRunner.Fixture("exports/heads4d.onnx"));
        var e = Assert.Throws<OnnxModelException>(() => model.Save("/nonexistent-folder-dc/x.onnx"));
        Assert.Contains("/nonexistent-folder-dc", e.Message);
    }
}
