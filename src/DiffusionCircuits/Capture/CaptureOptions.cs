namespace DiffusionCircuits.Capture;

/// <summary>Options for running an instrumented denoiser.</summary>
public sealed record CaptureOptions
{
    /// <summary>Image side for models whose spatial size is dynamic.</summary>
    public int SampleSize { get; init; } = 32;

    /// <summary>
    /// What the model's conditioning input (<c>encoder_hidden_states</c>) is fed: a prompt's embeddings or a file's.
    /// Required when the model has one (never zeros); null for an unconditioned model.
    /// </summary>
    public Onnx.ModelConditioning? Conditioning { get; init; }

    /// <summary>The noise schedule (a pipeline's scheduler_config.json); null reads the model's metadata (DDPM's linear default).</summary>
    public Diffusion.NoiseSchedule? Schedule { get; init; }

    /// <summary>CUDA device id, or null for CPU. Falls back to CPU with a note when the GPU runtime is not present.</summary>
    public int? GpuDeviceId { get; init; }

    /// <summary>ONNX Runtime intra-op threads (0 = its default, all cores).</summary>
    public int Threads { get; init; }

    /// <summary>Output the attention maps. Ablation sweeps only need the predicted noise, and run faster without them.</summary>
    public bool ExposeMaps { get; init; } = true;

    /// <summary>Output each layer's head outputs z before ablation (needed to compute means for mean ablation).</summary>
    public bool ExposeHeadOutputs { get; init; }

    /// <summary>Output each head's entropy, computed inside the graph (<see cref="Onnx.InstrumentOptions.ExposeEntropy"/>).</summary>
    public bool ExposeEntropy { get; init; }

    /// <summary>
    /// Output, on self-attention layers, each head's mean distance and mirror mass (<see cref="HeadFeatures.DistanceImageUnits"/>,
    /// <see cref="HeadFeatures.Symmetry"/>) and the attention each key receives, computed inside the graph.
    /// </summary>
    public bool ExposeProbes { get; init; }

    /// <summary>
    /// Every per-head feature from the graph: entropy, the probes, the same-part mass (fed each row's part grid, see
    /// <see cref="AttentionCaptureSession.Run"/>) and the maps summed over the batch; with <see cref="ExposeMaps"/> off,
    /// no map leaves the runtime.
    /// </summary>
    public bool GraphFeatures { get; init; }
}
