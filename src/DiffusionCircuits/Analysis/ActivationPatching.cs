using System.Diagnostics;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;

namespace DiffusionCircuits.Analysis;

/// <summary>Which run takes a head's output from which (METHOD.md 5b).</summary>
public enum PatchDirection
{
    /// <summary>The synthetic image's run with the head's z taken from the real image's run.</summary>
    RealIntoSynthetic,

    /// <summary>The real image's run with the head's z taken from the synthetic image's run.</summary>
    SyntheticIntoReal,
}

/// <summary>A synthetic and a real image patched into each other; both are noised with the same eps at each timestep.</summary>
public sealed record PatchPair(FaceImage Synthetic, FaceImage Real)
{
    /// <summary>The pair's identity (its noise depends on it): both image ids.</summary>
    public string Id => $"{Synthetic.Id}\n{Real.Id}";
}

/// <summary>
/// Activation patching between the data sets (METHOD.md 5b): for every head k and pair (synthetic s, real r) at each
/// timestep, s's run with z_k taken from r's run, and the reverse. A head's share is
/// ||eps(s; z_k &lt;- z_k(r)) - eps(s)||^2 / ||eps(r) - eps(s)||^2: how much of the output difference between the two
/// images flows through that head. Runs through the instrumented model's mask and mean inputs, like mean ablation:
/// the mean input of each row carries its partner's z, so one pass per head serves both directions.
/// </summary>
public sealed class ActivationPatching : IDisposable
{
    private readonly AttentionCaptureSession _session;
    private readonly IReadOnlyList<int> _timesteps;
    private readonly int _seed, _batchSize;
    private readonly AblationSweep? _ownSweep;
    private readonly AblationSweep _sweep;

    /// <summary>
    /// Patching on <paramref name="session"/> (created with <see cref="CaptureOptions.ExposeHeadOutputs"/>) at
    /// <paramref name="timesteps"/>, <paramref name="batchSize"/> rows (two per pair) per run. With
    /// <paramref name="sharePrefix"/> each head's patched run starts at its layer from the intact run's tensors (as the
    /// ablation sweep does; the same numbers to float rounding).
    /// </summary>
    public ActivationPatching(AttentionCaptureSession session, IReadOnlyList<int> timesteps, int seed, int batchSize = CircuitAnalysisOptions.DefaultBatchSize, bool sharePrefix = true)
        : this(session, timesteps, seed, batchSize, null, sharePrefix)
    {
    }

    /// <summary>Patching that shares <paramref name="sweep"/>'s model parts (it must run on the same session).</summary>
    internal ActivationPatching(AttentionCaptureSession session, IReadOnlyList<int> timesteps, int seed, int batchSize, AblationSweep? sweep, bool sharePrefix = true)
    {
        if (!session.ExposesHeadOutputs)
            throw new ArgumentException("Activation patching needs a capture session created with ExposeHeadOutputs = true.", nameof(session));
        AnalysisLimits.CheckBatch(batchSize);
        (_session, _timesteps, _seed, _batchSize) = (session, timesteps, seed, Math.Max(2, batchSize));
        _ownSweep = sweep == null ? new AblationSweep(session, timesteps, seed, batchSize, sharePrefix: sharePrefix) : null;
        _sweep = sweep ?? _ownSweep!;
    }

    /// <inheritdoc/>
    public void Dispose() => _ownSweep?.Dispose();

    /// <summary>
    /// Up to <paramref name="maxPairs"/> pairs: each data set shuffled with the seed and paired in that order, so every
    /// image appears at most once.
    /// </summary>
    public static IReadOnlyList<PatchPair> Pairs(IReadOnlyList<FaceImage> synthetic, IReadOnlyList<FaceImage> real, int maxPairs, int seed)
    {
        int n = Math.Min(maxPairs, Math.Min(synthetic.Count, real.Count));
        int[] Shuffled(int count, int stream)
        {
            var order = Enumerable.Range(0, count).ToArray();
            new Random(StableSeed.Of(seed, stream, 0x9A7C)).Shuffle(order);
            return order;
        }
        var s = Shuffled(synthetic.Count, 1);
        var r = Shuffled(real.Count, 2);
        return Enumerable.Range(0, n).Select(i => new PatchPair(synthetic[s[i]], real[r[i]])).ToList();
    }

    /// <summary>The squared output differences of every head, pair and timestep (<see cref="PatchingResult"/>).</summary>
    public PatchingResult Run(IReadOnlyList<PatchPair> pairs, IProgress<double>? progress = null)
    {
        var names = _session.Discovery.HeadNames.ToList();
        var result = new PatchingResult(names, _timesteps, pairs.Select(p => p.Synthetic.Id).ToList(), pairs.Select(p => p.Real.Id).ToList());
        var suffixes = _sweep.Suffixes();
        int len = _session.SampleLength, heads = names.Count;
        int pairsPerBatch = _batchSize / 2;
        if (suffixes != null) pairsPerBatch = (int)Math.Clamp(AblationSuffixes.CutBudgetBytes / Math.Max(1, 2 * suffixes.CutBytesPerRow), 1, pairsPerBatch);
        var rows = new NoisedRows(_session, 2 * pairsPerBatch, _seed);
        var eps = new float[len];
        var intactEps = new float[2 * pairsPerBatch][];
        for (int r = 0; r < intactEps.Length; r++) intactEps[r] = new float[len];
        var zSize = _session.Layers.Select(l => l.Heads * l.QueryTokens * l.HeadDim).ToArray();
        var partnerZ = zSize.Select(z => new float[2 * pairsPerBatch * z]).ToArray();
        var headOutputs = _session.Layers.Select(l => l.HeadOutputsOutput).ToList();
        var work = Enumerable.Range(0, pairs.Count).SelectMany(p => Enumerable.Range(0, _timesteps.Count).Select(k => (Pair: p, K: k)));
        long total = (long)pairs.Count * _timesteps.Count, done = 0, passesBefore = _session.ForwardPasses;
        var watch = Stopwatch.StartNew();
        double flops = 0, full = suffixes?.FullFlopsPerSample ?? AblationSuffixes.FlopsByNode(_session).Values.Sum();
        var headFlops = new double[heads];
        // Every head's patched run of a batch starts from the same intact run: several heads at once (the sweep's
        // parallelism); without model parts each is a full pass on the session's own threads, one at a time.
        var parallelism = suffixes == null ? RunParallelism.Sequential : _sweep.Parallelism;
        var headIndices = Enumerable.Range(0, heads).ToList();

        foreach (var batch in NoisedRows.Batches(_session, work, pairsPerBatch, w => w.K))
        {
            int n = batch.Length;
            rows.Clear();
            // Rows 0..n-1 the synthetic images, n..2n-1 their real partners, each pair with one noise.
            foreach (var (p, k) in batch)
            {
                PairedNoise.Fill(eps, _seed, pairs[p].Id, _timesteps[k]);
                rows.Add(pairs[p].Synthetic, eps, _timesteps[k]);
            }
            foreach (var (p, k) in batch)
            {
                PairedNoise.Fill(eps, _seed, pairs[p].Id, _timesteps[k]);
                rows.Add(pairs[p].Real, eps, _timesteps[k]);
            }

            // The intact runs: each row's eps_hat, and its z handed to its partner's mean input. With model parts, the
            // intact run also holds the cut that every head's suffix starts from.
            using var intact = suffixes?.RunIntact(rows, alsoOutputs: headOutputs);
            using (var fullBatch = intact == null ? rows.Run() : null)
                for (int r = 0; r < 2 * n; r++)
                {
                    (intact != null ? rows.PredictedEps(intact.Noise, r) : rows.PredictedEps(fullBatch!, r)).CopyTo(intactEps[r]);
                    int partner = r < n ? r + n : r - n;
                    for (int l = 0; l < zSize.Length; l++)
                    {
                        var z = intact != null
                            ? intact.Value(headOutputs[l]).GetTensorDataAsSpan<float>().Slice(r * zSize[l], zSize[l])
                            : fullBatch!.HeadOutputs(l, r);
                        z.CopyTo(partnerZ[l].AsSpan(partner * zSize[l], zSize[l]));
                    }
                }
            flops += 2 * n * full;
            for (int i = 0; i < n; i++)
                result.OutputGap[batch[i].K][batch[i].Pair] = NoiseLoss.MeanSquaredError(intactEps[i + n], intactEps[i]);

            var means = partnerZ.Select((z, l) => (float[]?)rows.Slice(z, zSize[l])).ToArray();
            parallelism.ForEach(headIndices, () => new HeadMasks(_session, 2 * pairsPerBatch), (_, h, masks) =>
            {
                int layer = _session.LocateHead(h).Layer;
                var rowMasks = masks.Of(rows, _ => new[] { h });   // head h of every row: its z comes from the partner
                if (intact != null)
                {
                    using var patched = suffixes!.RunAblated(layer, intact, rows, rowMasks, means);
                    var noise = patched[0].GetTensorDataAsSpan<float>();
                    for (int r = 0; r < 2 * n; r++) Store(h, r, rows.PredictedEps(noise, r));
                    headFlops[h] = 2 * n * suffixes.FlopsPerSample(layer);
                }
                else
                {
                    using var patched = rows.Run(rowMasks, means);
                    for (int r = 0; r < 2 * n; r++) Store(h, r, rows.PredictedEps(patched, r));
                    headFlops[h] = 2 * n * full;
                }
            });
            foreach (double f in headFlops) flops += f;   // in head order, whichever worker ran which

            void Store(int h, int r, ReadOnlySpan<float> patchedEps)
            {
                var (p, k) = batch[r % n];
                float d = NoiseLoss.MeanSquaredError(patchedEps, intactEps[r]);
                if (!float.IsFinite(d))
                    throw new InvalidDataException($"The model produced NaN or infinite noise patching {names[h]} for pair '{pairs[p].Synthetic.Id}' / '{pairs[p].Real.Id}' at t = {_timesteps[k]}.");
                (r < n ? result.SyntheticPatched : result.RealPatched)[h][k][p] = d;
            }
            done += n;
            progress?.Report((double)done / total);
        }
        result.ForwardPasses = _session.ForwardPasses - passesBefore;
        result.ForwardFlops = flops;
        result.Seconds = watch.Elapsed.TotalSeconds;
        return result;
    }
}
