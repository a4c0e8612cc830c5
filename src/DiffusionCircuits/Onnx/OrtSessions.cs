using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Onnx;

/// <summary>Creates ONNX Runtime sessions for in-memory models, keeping external weight files resolvable.</summary>
internal static class OrtSessions
{
    public static InferenceSession Create(OnnxModel model, SessionOptions options)
    {
        string file = model.SourcePath ?? "model";
        try
        {
            if (!model.HasExternalData || model.SourcePath == null) return new InferenceSession(model.ToBytes(), options);
            // External data resolves relative to the model file and must stay inside its folder: load a scratch
            // copy written beside the original weights (the weights are read while the session is created).
            string sourceDir = Path.GetDirectoryName(Path.GetFullPath(model.SourcePath))!;
            string path = Path.Combine(sourceDir, $".{Path.GetFileNameWithoutExtension(model.SourcePath)}.dc-{Guid.NewGuid().ToString("N")[..8]}.onnx");
            try
            {
                File.WriteAllBytes(path, model.ToBytes());
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Read-only model folder: a scratch folder with hard links (or copies) of the weights.
                string dir = Directory.CreateTempSubdirectory("diffcircuits-").FullName;
                path = Path.Combine(dir, "model.onnx");
                model.Save(path);
            }
            try
            {
                return new InferenceSession(path, options);
            }
            finally
            {
                try { File.Delete(path); } catch (IOException) { }
            }
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxModelException($"ONNX Runtime cannot load '{file}': {e.Message}", e);
        }
    }
}
