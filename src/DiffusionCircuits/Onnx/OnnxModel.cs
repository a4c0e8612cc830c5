using DiffusionCircuits.Onnx.Proto;
using Google.Protobuf;

namespace DiffusionCircuits.Onnx;

/// <summary>An ONNX model that could not be read or used, with a message that names the file and the problem.</summary>
public sealed class OnnxModelException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// An ONNX model file loaded into our protobuf classes. Unknown fields are preserved, so <see cref="Save"/> of an
/// unchanged model writes the same bytes. Weights in external data files stay where they are: a copy saved
/// elsewhere gets hard links (or copies) of those files beside it, so the locations still resolve.
/// </summary>
public sealed class OnnxModel
{
    private OnnxModel(ModelProto proto, string? sourcePath)
    {
        Proto = proto;
        SourcePath = sourcePath;
    }

    /// <summary>The model as protobuf messages; edit it in place.</summary>
    public ModelProto Proto { get; }

    /// <summary>The model's main graph.</summary>
    public GraphProto Graph => Proto.Graph;

    /// <summary>The file the model was loaded from, if any (external data is resolved relative to it).</summary>
    public string? SourcePath { get; }

    /// <summary>The default-domain opset version (ai.onnx).</summary>
    public long Opset => Proto.OpsetImport.FirstOrDefault(o => string.IsNullOrEmpty(o.Domain) || o.Domain == "ai.onnx")?.Version ?? 0;

    /// <summary>Reads a model file (external weight files beside it are resolved by ONNX Runtime); a file that is not ONNX is refused by name.</summary>
    public static OnnxModel Load(string path)
    {
        if (!File.Exists(path)) throw new OnnxModelException($"Model file '{path}' does not exist.");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new OnnxModelException($"Model file '{path}' cannot be read: {e.Message}", e); }
        return Parse(bytes, path);
    }

    /// <summary>Parses model bytes; <paramref name="path"/> names them in messages.</summary>
    public static OnnxModel Parse(byte[] bytes, string? path = null)
    {
        string name = path ?? "(in-memory model)";
        if (bytes.Length == 0) throw new OnnxModelException($"'{name}' is empty: it is not an ONNX model.");
        ModelProto proto;
        try { proto = ModelProto.Parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxModelException($"'{name}' is not a valid ONNX model (protobuf parse failed: {e.Message}). " +
                "The file may be truncated or not an ONNX file.", e);
        }
        if (proto.Graph == null || proto.Graph.Node.Count == 0 || !proto.HasIrVersion)
            throw new OnnxModelException($"'{name}' is not an ONNX model: it has no IR version or no graph nodes. " +
                "The file may be truncated or of another format.");
        return new OnnxModel(proto, path);
    }

    /// <summary>A model built in code from protobuf messages; <paramref name="sourcePath"/> resolves its external weights.</summary>
    internal static OnnxModel FromProto(ModelProto proto, string? sourcePath) => new(proto, sourcePath);

    /// <summary>The model's bytes (unchanged messages are written as they were read).</summary>
    public byte[] ToBytes() => Proto.ToByteArray();

    /// <summary>A deep copy, remembering the same source path.</summary>
    public OnnxModel Clone() => new(Proto.Clone(), SourcePath);

    /// <summary>True when some initializer keeps its data in an external file.</summary>
    public bool HasExternalData => ExternalLocations().Any();

    /// <summary>The distinct external data files the model refers to, as written in the model.</summary>
    public IEnumerable<string> ExternalLocations() =>
        AllTensors().Where(t => t.DataLocation == TensorProto.Types.DataLocation.External)
            .Select(t => t.ExternalData.FirstOrDefault(e => e.Key == "location")?.Value)
            .Where(l => !string.IsNullOrEmpty(l)).Select(l => l!).Distinct();

    private IEnumerable<TensorProto> AllTensors()
    {
        foreach (var t in Graph.Initializer) yield return t;
        foreach (var n in Graph.Node)
            foreach (var a in n.Attribute)
                if (a.T != null) yield return a.T;
    }

    /// <summary>
    /// Writes the model atomically. External data files are linked (symbolic link, else copied) into the target
    /// folder when it differs from the source folder, so the saved model loads on its own.
    /// </summary>
    public void Save(string path)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir == null || !Directory.Exists(dir))
            throw new OnnxModelException($"Cannot write '{path}': folder '{dir}' does not exist.");
        try
        {
            AtomicFile.WriteAllBytes(full, ToBytes());
            LinkExternalData(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OnnxModelException($"Cannot write '{path}': {e.Message}", e);
        }
    }

    private void LinkExternalData(string targetDir)
    {
        if (SourcePath == null) return;
        string sourceDir = Path.GetDirectoryName(Path.GetFullPath(SourcePath))!;
        if (string.Equals(sourceDir, targetDir, StringComparison.Ordinal)) return;
        foreach (var location in ExternalLocations())
        {
            string src = Path.Combine(sourceDir, location), dst = Path.Combine(targetDir, location);
            if (!File.Exists(src))
                throw new OnnxModelException($"External data file '{src}' referenced by '{SourcePath}' does not exist.");
            if (File.Exists(dst) && new FileInfo(dst).Length == new FileInfo(src).Length) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            if (File.Exists(dst)) File.Delete(dst);
            // A hard link costs nothing for multi-GB weights; ONNX Runtime rejects symbolic links that leave the
            // model's folder, so fall back to a copy across file systems.
            if (OperatingSystem.IsWindows() || HardLink(src, dst) != 0) File.Copy(src, dst);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int HardLink(string existingPath, string newPath);
}
