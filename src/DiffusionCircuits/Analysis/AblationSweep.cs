using System.Diagnostics;
using DiffusionCircuits.Data;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Diffusion;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Zero, mean or resample ablation of heads (z[l,h] before the output projection) through the instrumented model's
/// per-sample masks: each batch row carries its own condition, so a sweep over C conditions costs
/// images x timesteps x (C + 1) / batch Run calls instead of one Run per condition, image and timestep.
/// Mean and resample ablation need a session created with <see cref="CaptureOptions.ExposeHeadOutputs"/>: for mean, one
/// extra pass over the data set computes the means per timestep and position (the data set is its own reference); for
/// resample, each draw runs the donors once and every condition of those rows takes their z.
/// </summary>
public sealed class AblationSweep : IDisposable
{
    private readonly AttentionCaptureSession _session;
    private readonly IReadOnlyList<int> _timesteps;
    private readonly int _seed, _batchSize;

    private readonly bool _sharePrefix;
    private AblationSuffixes? _suffixes;
    private bool _suffixesTried;
    private double? _fullPassFlops;

    /// <summary>
    /// A sweep at <paramref name="timesteps"/> with paired noise of <paramref name="seed"/>, <paramref name="batchSize"/> rows per run.
    /// With <paramref name="sharePrefix"/> (the default) a condition runs only the part of the model from its first
    /// ablated layer on, fed the intact model's tensors at that cut (the same losses to float rounding, fewer FLOPs).
    /// </summary>
    /// <param name="resampleDraws">Resample ablation: donors per image and timestep, whose losses are averaged.</param>
    /// <param name="parallelism">Conditions of a batch run at once, and threads per Run of a model part (null: <see cref="RunParallelism.For"/>
    /// the session's options); the losses do not depend on it.</param>
    public AblationSweep(AttentionCaptureSession session, IReadOnlyList<int> timesteps, int seed, int batchSize = CircuitAnalysisOptions.DefaultBatchSize, AblationKind kind = AblationKind.Zero,
        bool sharePrefix = true, int resampleDraws = 3, RunParallelism? parallelism = null)
    {
        (_session, _timesteps, _seed, _batchSize, Kind, _sharePrefix) = (session, timesteps, seed, batchSize, kind, sharePrefix);
        Parallelism = parallelism ?? RunParallelism.For(session.Options);
        if (kind.ReadsHeadOutputs() && !session.ExposesHeadOutputs)
            throw new ArgumentException($"{kind} ablation needs a capture session created with ExposeHeadOutputs = true.", nameof(session));
        AnalysisLimits.CheckResampleDraws(resampleDraws);
        ResampleDraws = resampleDraws;
    }

    /// <summary>What an ablated head's output becomes.</summary>
    public AblationKind Kind { get; }

    /// <summary>
    /// How the model parts run: a batch's conditions in flight at once, each Run's threads. Applies where the sweep runs
    /// model parts (<see cref="SharingNote"/>); without them every Run is a full pass, one at a time on the session's threads.
    /// </summary>
    public RunParallelism Parallelism { get; }

    /// <summary>Resample ablation: donor images per image and timestep (R of METHOD.md 5); their losses are averaged.</summary>
    public int ResampleDraws { get; }

    /// <summary>
    /// The index in <paramref name="pool"/> of the image whose head outputs replace those of <paramref name="imageId"/>
    /// at timestep <paramref name="t"/> in draw <paramref name="draw"/>: uniform over the pool's other images, seeded by
    /// (seed, image id, t, draw) only, so a checkpoint chunk or another process draws the same donor.
    /// </summary>
    public static int Donor(int seed, string imageId, int t, int draw, IReadOnlyList<FaceImage> pool)
    {
        int self = -1;
        for (int i = 0; i < pool.Count && self < 0; i++)
            if (pool[i].Id == imageId) self = i;
        int others = pool.Count - (self >= 0 ? 1 : 0);
        if (others < 1) throw new ArgumentException($"Resample ablation needs another image of the data set to draw from; image '{imageId}' is alone.", nameof(pool));
        int j = new Random(StableSeed.Of(seed, PairedNoise.StableHash(imageId), t, draw, 0xD0)).Next(others);
        return self >= 0 && j >= self ? j + 1 : j;
    }

    /// <summary>How the sweep shares computation between conditions (which suffixes it runs), or why it does not.</summary>
    public string SharingNote { get; private set; } = "not started";

    /// <summary>The sweep's model parts (made once, on first use), for other interventions on the same session.</summary>
    internal AblationSuffixes? Suffixes()
    {
        if (_suffixesTried) return _suffixes;
        _suffixesTried = true;
        if (!_sharePrefix)
        {
            SharingNote = "off: every condition runs the full model";
            return null;
        }
        _suffixes = AblationSuffixes.TryCreate(_session, out var note, Parallelism.ThreadsPerRun);
        SharingNote = _suffixes == null ? $"off: {note}"
            : Parallelism.Workers > 1 ? $"{note}; {Parallelism.Workers} conditions at once, {Parallelism.ThreadsPerRun} thread{(Parallelism.ThreadsPerRun == 1 ? "" : "s")} each" : note;
        return _suffixes;
    }

    /// <summary>FLOPs of one full forward pass per sample (convolutions and matrix products).</summary>
    private double FlopsPerFullPass() => _fullPassFlops ??= Suffixes()?.FullFlopsPerSample
        ?? AblationSuffixes.FlopsByNode(_session).Values.Sum();

    private int FirstAblatedLayer(AblationCondition c) => c.Heads.Count == 0 ? int.MaxValue : c.Heads.Min(h => _session.LocateHead(h).Layer);

    /// <inheritdoc/>
    public void Dispose() => _suffixes?.Dispose();

    /// <summary>
    /// Mean head outputs over the images at each timestep: [timestep index][layer] of [H, S_q, d], with each image's
    /// paired noise. Costs images x timesteps forward passes.
    /// </summary>
    public float[][][] MeanHeadOutputs(IReadOnlyList<FaceImage> images)
    {
        var sums = _timesteps.Select(_ => _session.Layers.Select(l => new double[l.Heads * l.QueryTokens * l.HeadDim]).ToArray()).ToArray();
        var inputs = new NoisedRows(_session, _batchSize, _seed);
        var rows = Enumerable.Range(0, images.Count).SelectMany(i => Enumerable.Range(0, _timesteps.Count).Select(k => (Image: i, K: k)));
        foreach (var batchRows in NoisedRows.Batches(_session, rows, _batchSize, r => r.K))
        {
            inputs.Clear();
            foreach (var (i, k) in batchRows) inputs.Add(images[i], _timesteps[k]);
            using var batch = inputs.Run();
            for (int r = 0; r < batchRows.Length; r++)
                for (int l = 0; l < _session.Layers.Count; l++)
                {
                    var z = batch.HeadOutputs(l, r);
                    var sum = sums[batchRows[r].K][l];
                    for (int i = 0; i < z.Length; i++) sum[i] += z[i];
                }
        }
        return sums.Select(perT => perT.Select(s => s.Select(v => (float)(v / images.Count)).ToArray()).ToArray()).ToArray();
    }

    /// <summary>
    /// Losses of given noisy rows without ablation (column 0) and under each condition (columns 1..C), for callers that
    /// bring their own x_t and eps (the ML.NET stage). Zero ablation; rows and conditions share batches.
    /// </summary>
    public float[][] ScoreRows(float[] noisy, float[] eps, int[] timesteps, IReadOnlyList<AblationCondition> conditions)
    {
        if (Kind != AblationKind.Zero) throw new NotSupportedException("ScoreRows does zero ablation; use Run for mean ablation.");
        int len = _session.SampleLength, count = timesteps.Length;
        var losses = Enumerable.Range(0, count).Select(_ => new float[conditions.Count + 1]).ToArray();
        var inputs = new NoisedRows(_session, _batchSize, _seed);
        var masks = new HeadMasks(_session, _batchSize);
        var rows = Enumerable.Range(0, count).SelectMany(row => Enumerable.Range(-1, conditions.Count + 1).Select(c => (Row: row, Condition: c)));
        foreach (var batchRows in NoisedRows.Batches(_session, rows, _batchSize, r => timesteps[r.Row]))
        {
            inputs.Clear();
            foreach (var (row, _) in batchRows) inputs.Add(noisy.AsSpan(row * len, len), eps.AsSpan(row * len, len), timesteps[row]);
            using var batch = inputs.Run(masks.Of(inputs, r => HeadsOf(conditions, batchRows[r].Condition)));
            for (int r = 0; r < batchRows.Length; r++) losses[batchRows[r].Row][batchRows[r].Condition + 1] = inputs.LossMse(batch, r);
        }
        return losses;
    }

    /// <summary>One condition per head: <c>down.1.attn.h3</c> ablates that head alone.</summary>
    public static IReadOnlyList<AblationCondition> SingleHeads(AttentionCaptureSession session) =>
        session.Discovery.Heads.Select(AblationCondition.ForHead).ToList();

    /// <summary>
    /// Per-image losses of <paramref name="images"/> intact and under each condition, at every timestep. Each distinct
    /// head set is run once: a condition that ablates the same heads as an earlier one (a one-head prefix and that
    /// head alone, say), or as a condition of <paramref name="measured"/>, takes those losses instead of new passes.
    /// </summary>
    /// <param name="meanHeadOutputs">For mean ablation over a subset of a data set (a checkpointed chunk): the whole data set's
    /// means from <see cref="MeanHeadOutputs"/>; computed from <paramref name="images"/> when null.</param>
    /// <param name="measured">An earlier sweep of this sweep's kind over (at least) these images and the same timesteps,
    /// e.g. the single heads before the joint sweep; its intact and ablated losses are reused.</param>
    /// <param name="donors">For resample ablation over a subset of a data set (a checkpointed chunk): the whole data set,
    /// which donors are drawn from; <paramref name="images"/> when null.</param>
    public AblationResult Run(DataSetId dataSet, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions, IProgress<double>? progress = null,
        float[][][]? meanHeadOutputs = null, AblationResult? measured = null, IReadOnlyList<FaceImage>? donors = null)
    {
        foreach (var c in conditions)
            foreach (var h in c.Heads)
                if (h < 0 || h >= _session.TotalHeads) throw new ArgumentOutOfRangeException(nameof(conditions), $"Condition '{c.Name}' names head {h}; the model has {_session.TotalHeads} heads.");
        var result = new AblationResult(dataSet, _timesteps, images.Select(i => i.Id).ToList(), conditions);
        var meanZ = Kind == AblationKind.Mean ? meanHeadOutputs ?? MeanHeadOutputs(images) : null;
        var plan = new ReusePlan(conditions, images, _timesteps, measured);
        long total = (long)images.Count * _timesteps.Count * plan.RowsPerImageAndTimestep, done = 0;
        var suffixes = Suffixes();
        var watch = Stopwatch.StartNew();
        long callsBefore = _session.RunCalls;
        var gate = new object();

        // Progress from any worker, in order (the count is read under the same lock).
        void RowsDone(int rows)
        {
            lock (gate) progress?.Report((double)(done += rows) / total);
        }

        void Store(int i, int k, int c, float loss) => StoreLoss(result, images, conditions, i, k, c, loss);

        progress?.Report(0);
        if (Kind == AblationKind.Resample)
        {
            var (passes, flops) = RunResampled(images, donors ?? images, conditions, plan, suffixes, result, RowsDone);
            result.ForwardPasses = passes;
            result.ForwardFlops = flops;
        }
        else if (suffixes == null)
        {
            var buffers = new BatchBuffers(this, meanZ != null);
            var masks = new HeadMasks(_session, _batchSize);
            var rows = Enumerable.Range(0, images.Count).SelectMany(i => Enumerable.Range(0, _timesteps.Count)
                .SelectMany(k => plan.Run.Select(c => (Image: i, K: k, Condition: c))));
            foreach (var batchRows in NoisedRows.Batches(_session, rows, _batchSize, r => r.K))
            {
                var inputs = buffers.Inputs;
                inputs.Clear();
                foreach (var (i, k, _) in batchRows) inputs.Add(images[i], _timesteps[k]);
                using var batch = inputs.Run(masks.Of(inputs, r => HeadsOf(conditions, batchRows[r].Condition)), buffers.MeansOf(meanZ, batchRows.Select(x => x.K).ToArray()));
                for (int r = 0; r < batchRows.Length; r++) Store(batchRows[r].Image, batchRows[r].K, batchRows[r].Condition, inputs.LossMse(batch, r));
                RowsDone(batchRows.Length);
            }
            result.ForwardPasses = total;
            result.ForwardFlops = total * FlopsPerFullPass();
        }
        else
        {
            // The intact model runs once per batch of (image, timestep) rows and keeps the cut; each condition then runs
            // its suffix on the same rows, several conditions at once (Parallelism). Rows per batch are capped so the
            // cut held meanwhile stays within budget.
            int pairsPerBatch = (int)Math.Clamp(AblationSuffixes.CutBudgetBytes / Math.Max(1, suffixes.CutBytesPerRow), 1, _batchSize);
            bool intactNeeded = plan.Run.Contains(-1);
            var ablated = plan.Run.Where(c => c >= 0).Select(c => (Condition: c, FirstLayer: FirstAblatedLayer(conditions[c]))).ToList();
            var pairs = Enumerable.Range(0, images.Count).SelectMany(i => Enumerable.Range(0, _timesteps.Count).Select(k => (Image: i, K: k)));
            var buffers = new BatchBuffers(this, meanZ != null);
            var inputs = buffers.Inputs;
            var conditionFlops = new double[ablated.Count];
            double flops = 0;
            long passes = 0;
            foreach (var pairBatch in NoisedRows.Batches(_session, pairs, pairsPerBatch, p => p.K))
            {
                inputs.Clear();
                foreach (var (i, k) in pairBatch) inputs.Add(images[i], _timesteps[k]);
                var batchMeans = buffers.MeansOf(meanZ, pairBatch.Select(p => p.K).ToArray());
                using var intact = suffixes.RunIntact(inputs);
                (passes, flops) = (passes + pairBatch.Length, flops + pairBatch.Length * suffixes.FullFlopsPerSample);
                if (intactNeeded)
                {
                    for (int r = 0; r < pairBatch.Length; r++) Store(pairBatch[r].Image, pairBatch[r].K, -1, inputs.LossMse(intact.Noise, r));
                    RowsDone(pairBatch.Length);
                }
                Parallelism.ForEach(ablated, () => new HeadMasks(_session, _batchSize), (a, condition, masks) =>
                {
                    var (c, first) = condition;
                    using var noise = suffixes.RunAblated(first, intact, inputs, masks.Of(inputs, _ => conditions[c].Heads), batchMeans);
                    var predicted = noise[0].GetTensorDataAsSpan<float>();
                    for (int r = 0; r < pairBatch.Length; r++) Store(pairBatch[r].Image, pairBatch[r].K, c, inputs.LossMse(predicted, r));
                    conditionFlops[a] = pairBatch.Length * suffixes.FlopsPerSample(first);
                    RowsDone(pairBatch.Length);   // per condition: a batch of rows can hold a whole stage
                });
                // Added in condition order, as one condition at a time would: the total's rounding does not depend on the workers.
                foreach (double f in conditionFlops) flops += f;
                passes += (long)pairBatch.Length * ablated.Count;
            }
            result.ForwardPasses = passes;
            result.ForwardFlops = flops;
        }
        plan.Fill(result);
        result.FullPassFlops = FlopsPerFullPass();
        result.RunCalls = _session.RunCalls - callsBefore;
        result.Seconds = watch.Elapsed.TotalSeconds;
        return result;
    }

    /// <summary>
    /// Resample ablation: per batch of (image, timestep) rows, the intact model once, then per draw the donors' intact
    /// head outputs (one full pass each) fed as every ablated head's replacement to each condition's rows. A condition's
    /// loss is the mean over draws. Returns the forward passes and FLOPs run.
    /// </summary>
    private (long Passes, double Flops) RunResampled(IReadOnlyList<FaceImage> images, IReadOnlyList<FaceImage> pool, IReadOnlyList<AblationCondition> conditions,
        ReusePlan plan, AblationSuffixes? suffixes, AblationResult result, Action<int> rowsDone)
    {
        int pairsPerBatch = suffixes == null ? _batchSize
            : (int)Math.Clamp(AblationSuffixes.CutBudgetBytes / Math.Max(1, suffixes.CutBytesPerRow), 1, _batchSize);
        var buffers = new BatchBuffers(this, headOutputInputs: true);
        var (inputs, donorZ) = (buffers.Inputs, buffers.HeadOutputs!);
        var donorRows = new NoisedRows(_session, _batchSize, _seed);
        var ablated = plan.Run.Where(c => c >= 0).Select(c => (Condition: c, FirstLayer: FirstAblatedLayer(conditions[c]))).ToList();
        var pairs = Enumerable.Range(0, images.Count).SelectMany(i => Enumerable.Range(0, _timesteps.Count).Select(k => (Image: i, K: k)));
        double flops = 0, full = FlopsPerFullPass();
        long passes = 0;
        var conditionFlops = new double[ablated.Count];
        // Without model parts every Run is a full pass on the session's own threads: one at a time.
        var parallelism = suffixes == null ? RunParallelism.Sequential : Parallelism;
        foreach (var pairBatch in NoisedRows.Batches(_session, pairs, pairsPerBatch, p => p.K))
        {
            inputs.Clear();
            foreach (var (i, k) in pairBatch) inputs.Add(images[i], _timesteps[k]);
            using var intact = suffixes?.RunIntact(inputs);
            if (intact != null) (passes, flops) = (passes + pairBatch.Length, flops + pairBatch.Length * full);
            if (plan.Run.Contains(-1))
            {
                using var batch = intact == null ? inputs.Run() : null;
                if (batch != null) (passes, flops) = (passes + pairBatch.Length, flops + pairBatch.Length * full);
                for (int r = 0; r < pairBatch.Length; r++)
                    StoreLoss(result, images, conditions, pairBatch[r].Image, pairBatch[r].K, -1, batch == null ? inputs.LossMse(intact!.Noise, r) : inputs.LossMse(batch, r));
                rowsDone(pairBatch.Length);
            }
            for (int draw = 0; draw < ResampleDraws; draw++)
            {
                donorRows.Clear();
                foreach (var (i, k) in pairBatch) donorRows.Add(pool[Donor(_seed, images[i].Id, _timesteps[k], draw, pool)], _timesteps[k]);
                float[]?[] replacement;
                using (var donorBatch = donorRows.Run())
                {
                    for (int r = 0; r < pairBatch.Length; r++)
                        for (int l = 0; l < _session.Layers.Count; l++)
                        {
                            var z = donorBatch.HeadOutputs(l, r);
                            z.CopyTo(donorZ[l].AsSpan(r * z.Length, z.Length));
                        }
                    replacement = donorZ.Select((m, l) => (float[]?)inputs.Slice(m, m.Length / _batchSize)).ToArray();
                }
                (passes, flops) = (passes + pairBatch.Length, flops + pairBatch.Length * full);
                int currentDraw = draw;
                parallelism.ForEach(ablated, () => new HeadMasks(_session, _batchSize), (a, condition, masks) =>
                {
                    var (c, first) = condition;
                    var rowMasks = masks.Of(inputs, _ => conditions[c].Heads);
                    if (suffixes != null)
                    {
                        using var noise = suffixes.RunAblated(first, intact!, inputs, rowMasks, replacement);
                        var predicted = noise[0].GetTensorDataAsSpan<float>();
                        for (int r = 0; r < pairBatch.Length; r++)
                            StoreLoss(result, images, conditions, pairBatch[r].Image, pairBatch[r].K, c, inputs.LossMse(predicted, r) / ResampleDraws, add: currentDraw > 0);
                        conditionFlops[a] = pairBatch.Length * suffixes.FlopsPerSample(first);
                    }
                    else
                    {
                        using var batch = inputs.Run(rowMasks, replacement);
                        for (int r = 0; r < pairBatch.Length; r++)
                            StoreLoss(result, images, conditions, pairBatch[r].Image, pairBatch[r].K, c, inputs.LossMse(batch, r) / ResampleDraws, add: currentDraw > 0);
                        conditionFlops[a] = pairBatch.Length * full;
                    }
                    if (currentDraw == ResampleDraws - 1) rowsDone(pairBatch.Length);
                });
                foreach (double f in conditionFlops) flops += f;   // in condition order, whichever worker ran which
                passes += (long)pairBatch.Length * ablated.Count;
            }
        }
        return (passes, flops);
    }

    /// <summary>Stores (or, with <paramref name="add"/>, adds to) a loss: image i, timestep index k, condition c (-1: intact).</summary>
    private void StoreLoss(AblationResult result, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions, int i, int k, int c, float loss, bool add = false)
    {
        if (!float.IsFinite(loss))
            throw new InvalidDataException($"The model produced NaN or infinite noise for image '{images[i].Id}' at t = {_timesteps[k]}" +
                                           (c >= 0 ? $" with {conditions[c].Name} ablated." : "."));
        ref float slot = ref (c < 0 ? ref result.BaseLoss[k][i] : ref result.AblatedLoss[c][k][i]);
        slot = add ? slot + loss : loss;
    }

    /// <summary>A sweep's batch buffers: the rows and (mean or resample ablation) each layer's [B, H, S, d] head-output input.</summary>
    private sealed class BatchBuffers
    {
        public BatchBuffers(AblationSweep sweep, bool headOutputInputs)
        {
            Inputs = new NoisedRows(sweep._session, sweep._batchSize, sweep._seed);
            HeadOutputs = headOutputInputs ? sweep._session.Layers.Select(l => new float[sweep._batchSize * l.Heads * l.QueryTokens * l.HeadDim]).ToArray() : null;
        }

        /// <summary>The batch's rows.</summary>
        public NoisedRows Inputs { get; }

        /// <summary>Per layer, the replacement head outputs of the batch's rows (null unless asked for).</summary>
        public float[][]? HeadOutputs { get; }

        /// <summary>Mean ablation: each row's mean input is the data set's mean z at that row's timestep (only ablated heads read it); null without means.</summary>
        public float[]?[]? MeansOf(float[][][]? meanZ, IReadOnlyList<int> rowTimestep)
        {
            if (meanZ == null) return null;
            var means = HeadOutputs!;
            for (int r = 0; r < rowTimestep.Count; r++)
                for (int l = 0; l < means.Length; l++)
                {
                    var m = meanZ[rowTimestep[r]][l];
                    m.CopyTo(means[l].AsSpan(r * m.Length, m.Length));
                }
            return means.Select((m, l) => (float[]?)Inputs.Slice(m, meanZ[0][l].Length)).ToArray();
        }
    }

    /// <summary>The heads a row of <paramref name="condition"/> ablates (-1: the intact model, none).</summary>
    private static IEnumerable<int> HeadsOf(IReadOnlyList<AblationCondition> conditions, int condition) =>
        condition < 0 ? Array.Empty<int>() : conditions[condition].Heads;

    /// <summary>
    /// Which rows a sweep runs (-1: the intact model; else a condition) and where the other conditions' losses come
    /// from: an earlier condition of the same head set, or a condition of an earlier sweep with that head set.
    /// </summary>
    private sealed class ReusePlan
    {
        private readonly int[] _sameAs, _fromMeasured, _measuredImage;
        private readonly AblationResult? _measured;

        public ReusePlan(IReadOnlyList<AblationCondition> conditions, IReadOnlyList<FaceImage> images, IReadOnlyList<int> timesteps, AblationResult? measured)
        {
            static string Key(AblationCondition c) => string.Join(",", c.Heads.Distinct().Order());
            var measuredIndex = measured?.ImageIds.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i);
            bool usable = measured != null && measured.Timesteps.SequenceEqual(timesteps) && images.All(i => measuredIndex!.ContainsKey(i.Id));
            _measured = usable ? measured : null;
            _measuredImage = _measured == null ? Array.Empty<int>() : images.Select(i => measuredIndex![i.Id]).ToArray();
            var measuredKeys = new Dictionary<string, int>();
            if (_measured != null)
                for (int c = _measured.Conditions.Count - 1; c >= 0; c--) measuredKeys[Key(_measured.Conditions[c])] = c;
            var first = new Dictionary<string, int>();
            _sameAs = new int[conditions.Count];
            _fromMeasured = new int[conditions.Count];
            var run = _measured == null ? new List<int> { -1 } : new List<int>();
            for (int c = 0; c < conditions.Count; c++)
            {
                string key = Key(conditions[c]);
                _sameAs[c] = first.TryAdd(key, c) ? c : first[key];
                _fromMeasured[c] = _sameAs[c] == c && measuredKeys.TryGetValue(key, out var m) ? m : -1;
                if (_sameAs[c] == c && _fromMeasured[c] < 0) run.Add(c);
            }
            Run = run;
        }

        /// <summary>The rows to run for each image and timestep.</summary>
        public IReadOnlyList<int> Run { get; }

        /// <summary>Rows run for each image and timestep.</summary>
        public int RowsPerImageAndTimestep => Run.Count;

        /// <summary>Copies the reused losses into <paramref name="result"/> once the run rows are in.</summary>
        public void Fill(AblationResult result)
        {
            for (int k = 0; k < result.Timesteps.Count; k++)
            {
                if (_measured != null)
                    for (int i = 0; i < _measuredImage.Length; i++) result.BaseLoss[k][i] = _measured.BaseLoss[k][_measuredImage[i]];
                for (int c = 0; c < _sameAs.Length; c++)
                {
                    var to = result.AblatedLoss[c][k];
                    if (_fromMeasured[c] >= 0)
                        for (int i = 0; i < _measuredImage.Length; i++) to[i] = _measured!.AblatedLoss[_fromMeasured[c]][k][_measuredImage[i]];
                    else if (_sameAs[c] != c) result.AblatedLoss[_sameAs[c]][k].CopyTo(to, 0);
                }
            }
        }
    }
}
