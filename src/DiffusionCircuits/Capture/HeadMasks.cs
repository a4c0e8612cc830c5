namespace DiffusionCircuits.Capture;

/// <summary>
/// Per-layer [rows, H] head-mask inputs of a batch: 1 for a head that runs, 0 for an ablated one. Runs read them in
/// place, so the workers of a sweep (<see cref="RunParallelism"/>) each keep their own.
/// </summary>
internal sealed class HeadMasks
{
    private readonly AttentionCaptureSession _session;
    private readonly float[][] _masks;

    /// <summary>Masks for up to <paramref name="rows"/> rows of <paramref name="session"/>'s batches.</summary>
    public HeadMasks(AttentionCaptureSession session, int rows)
    {
        _session = session;
        _masks = session.Layers.Select(l => new float[rows * l.Heads]).ToArray();
    }

    /// <summary>
    /// The masks of <paramref name="rows"/>' filled rows: 1 everywhere, then 0 for the heads (<see cref="Onnx.HeadId.Index"/>)
    /// that <paramref name="ablatedHeads"/> names for each row. Valid until the next call.
    /// </summary>
    public float[][] Of(NoisedRows rows, Func<int, IEnumerable<int>> ablatedHeads)
    {
        var layers = _session.Layers;
        foreach (var m in _masks) Array.Fill(m, 1f);
        for (int r = 0; r < rows.Count; r++)
            foreach (int h in ablatedHeads(r))
            {
                var (layer, inLayer) = _session.LocateHead(h);
                _masks[layer][r * layers[layer].Heads + inLayer] = 0f;
            }
        return _masks.Select((m, l) => rows.Slice(m, layers[l].Heads)).ToArray();
    }
}
