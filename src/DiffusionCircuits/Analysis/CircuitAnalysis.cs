using DiffusionCircuits.Data;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Analysis;

/// <summary>
/// Runs the causal analysis on two data sets: features (for roles), ablation (zero, mean or resample) of every head, importance, roles,
/// ablation of every role and of each data set's ascending-importance prefixes (on both data sets), circuits and the
/// complexity ratio of the first data set (real) to the second (synthetic).
/// </summary>
public sealed class CircuitAnalysis
{
    private readonly AttentionCaptureSession _maps, _ablation;
    private readonly CircuitAnalysisOptions _options;

    /// <summary>The analysis on a session that exposes maps (features) and one that does not (ablation); they may be the same.</summary>
    /// <exception cref="ArgumentException">Mean or resample ablation, or activation patching, on an ablation session without head outputs.</exception>
    public CircuitAnalysis(AttentionCaptureSession withMaps, AttentionCaptureSession withoutMaps, CircuitAnalysisOptions options)
    {
        (_maps, _ablation, _options) = (withMaps, withoutMaps, options);
        if (!withoutMaps.ExposesHeadOutputs && NeedsHeadOutputs(options))
            throw new ArgumentException(options.Ablation.ReadsHeadOutputs()
                ? $"{options.Ablation} ablation needs the ablation session created with ExposeHeadOutputs = true."
                : "Activation patching (PatchingPairs > 0) needs the ablation session created with ExposeHeadOutputs = true (or PatchingPairs = 0).", nameof(withoutMaps));
    }

    /// <summary>Whether the ablation session of an analysis with <paramref name="options"/> must expose head outputs z.</summary>
    public static bool NeedsHeadOutputs(CircuitAnalysisOptions options) => options.Ablation.ReadsHeadOutputs() || options.PatchingPairs > 0;

    /// <summary>The whole analysis of <paramref name="real"/> against <paramref name="synthetic"/>, keeping finished work in <paramref name="checkpoint"/>.</summary>
    public CircuitAnalysisResult Run(IReadOnlyList<FaceImage> real, IReadOnlyList<FaceImage> synthetic, IProgress<(string Stage, double Fraction)>? progress = null,
        IAnalysisCheckpoint? checkpoint = null)
    {
        var run = new Stages(this, new Dictionary<DataSetId, IReadOnlyList<FaceImage>> { [DataSetId.Real] = real, [DataSetId.Synthetic] = synthetic },
            checkpoint ?? NoCheckpoint.Instance, progress);
        return run.All();
    }

    /// <summary>One run of the analysis, stage by stage (METHOD.md sections 4-6).</summary>
    private sealed class Stages(CircuitAnalysis owner, Dictionary<DataSetId, IReadOnlyList<FaceImage>> images, IAnalysisCheckpoint checkpoint,
        IProgress<(string Stage, double Fraction)>? progress)
    {
        private readonly CircuitAnalysisOptions _o = owner._options;
        private readonly List<string> _names = owner._maps.Discovery.HeadNames.ToList();
        // Self- and cross-attention heads get roles of their own kind (METHOD.md 4).
        private readonly bool[] _cross = owner._maps.Layers.SelectMany(l => Enumerable.Repeat(l.IsCrossAttention, l.Heads)).ToArray();
        private Dictionary<DataSetId, DataSetFeatures> _features = new();
        private Dictionary<DataSetId, AblationResult> _singles = new();
        private AblationSweep _sweep = null!;
        private Dictionary<DataSetId, float[][][]?> _means = new();
        private double[] _importance = Array.Empty<double>();

        private int Heads => _names.Count;

        // [data set][probe][head]: per image, the probe's feature averaged over timesteps (null for probes that are not
        // features), made once: the role statistics' resamples each average them over a sample of images.
        private Dictionary<DataSetId, double[][]?[]>? _probeValues;

        private IProgress<double> Stage(string name) => new SynchronousProgress<double>(f => progress?.Report((name, f)));

        public CircuitAnalysisResult All()
        {
            ExtractFeatures();
            SweepSingleHeads();
            checkpoint.Barrier("roles");   // roles and the joint sweep need every image's features and single-head losses
            _importance = Enumerable.Range(0, Heads)
                .Select(k => (_singles[DataSetId.Real].DegradationPercent(k) + _singles[DataSetId.Synthetic].DegradationPercent(k)) / 2).ToArray();
            var probeMatrix = ProbeMatrix(null);
            var roles = HeadRoles.Cluster(_names, probeMatrix, _o.Roles, _o.Seed, crossAttention: _cross);
            progress?.Report(("roles", 0));
            double stability = RoleStability(roles);
            progress?.Report(("roles", 0.3));
            double restartAgreement = HeadRoles.RestartAgreement(roles, _names, probeMatrix, _o.Seed, crossAttention: _cross);
            progress?.Report(("roles", 0.4));
            var roleCounts = HeadRoles.RoleCountSelection(_names, probeMatrix, ImageResample(), images[DataSetId.Real].Count, _o.Seed, _cross);
            progress?.Report(("roles", 1));
            var orders = DataSetId.Compared.ToDictionary(d => d, d => Circuits.AscendingOrder(Circuits.Importance(_singles[d], _names)));
            Dictionary<DataSetId, AblationResult> ablations;
            PatchingResult? patching;
            try
            {
                ablations = SweepJointly(roles, orders);
                patching = Patch();
                checkpoint.Barrier("statistics", last: true);
            }
            finally { _sweep.Dispose(); }
            var degradations = Degradations(ablations);
            var circuits = DataSetId.Compared.Select(d => Circuits.Find(ablations[d], _names, orders[d], d, _o.TolerancePercent)).ToList();
            // Over all timesteps (first: it costs as much as the others together) and at each timestep alone, from the same
            // measured losses (the prefixes keep the overall orders); each is seeded on its own, so they run side by side.
            var byT = Enumerable.Range(0, _o.Timesteps.Count).ToList();
            var allRatios = IndependentPieces.Map(1 + byT.Count, i => Circuits.Ratios(ablations[DataSetId.Real], ablations[DataSetId.Synthetic], _names, _o.TolerancePercent,
                _o.Bootstrap, _o.PermutationCount, _o.Seed, i == 0 ? null : byT[i - 1]));
            var ratios = allRatios[0];
            var ratiosByT = allRatios.Skip(1).SelectMany(r => r).ToList();
            var circuitsByT = byT.SelectMany(k => DataSetId.Compared.Select(d => Circuits.Find(ablations[d], _names, orders[d], d, _o.TolerancePercent, k))).ToList();
            var all = _singles.Values.Concat(ablations.Values).ToList();
            return new CircuitAnalysisResult(_names, DataSetId.Compared.Select(d => _features[d]).ToList(), DataSetId.Compared.Select(d => ablations[d]).ToList(),
                _importance, roles, stability, probeMatrix, degradations, circuits, ratios,
                all.Sum(a => a.ForwardPasses), all.Sum(a => a.RunCalls), (long)Heads * images.Values.Sum(i => i.Count) * _o.Timesteps.Count, all.Sum(a => a.Seconds))
            {
                ForwardGflop = all.Sum(a => a.ForwardFlops) / 1e9, NaiveForwardGflop = all.Sum(a => a.NaiveRunCalls * a.FullPassFlops) / 1e9,
                SweepSharing = _sweep.SharingNote, CircuitsByTimestep = circuitsByT, RatiosByTimestep = ratiosByT,
                RoleRestartAgreementAri = restartAgreement, RoleCountSelection = roleCounts, Patching = patching,
            };
        }

        /// <summary>Per-head features of every image (for roles).</summary>
        private void ExtractFeatures()
        {
            var extractor = new FeatureExtractor(owner._maps, _o.Timesteps, _o.Seed);
            _features = DataSetId.Compared.ToDictionary(d => d, d => checkpoint.Features(d, images[d],
                (chunk, p) => extractor.Run(d, chunk, progress: new SynchronousProgress<int>(c => p.Report(c / (double)chunk.Count))), Stage($"features {d}")));
            // The maps session is done until the end: its arena (a batch of every layer's maps) need not sit beside the sweep's.
            if (!ReferenceEquals(owner._maps, owner._ablation)) owner._maps.ReleaseBuffers();
        }

        /// <summary>A sweep of one data set, kept by the checkpoint; losses of <paramref name="measured"/> are reused, not run again.</summary>
        private AblationResult Sweep(string stage, DataSetId set, IReadOnlyList<AblationCondition> conditions, string label, AblationResult? measured = null) =>
            checkpoint.Ablation(stage, set, images[set], conditions, (chunk, p) => _sweep.Run(set, chunk, conditions, p, _means[set], measured, donors: images[set]), Stage($"{label} {set}"));

        /// <summary>Every head alone on both data sets (importance for roles, after the barrier, is the mean of the two data sets' single-head degradations).</summary>
        private void SweepSingleHeads()
        {
            _sweep = new AblationSweep(owner._ablation, _o.Timesteps, _o.Seed, _o.BatchSize, _o.Ablation, resampleDraws: _o.ResampleDraws);
            // Mean ablation uses the whole data set's means, also when a checkpoint runs it in chunks.
            _means = DataSetId.Compared.ToDictionary(d => d, d => _o.Ablation == AblationKind.Mean ? _sweep.MeanHeadOutputs(images[d]) : null);
            var conditions = AblationSweep.SingleHeads(owner._ablation);
            _singles = DataSetId.Compared.ToDictionary(d => d, d => Sweep("single", d, conditions, "single-head ablation"));
        }

        /// <summary>
        /// The probes of every head (rows) in <see cref="RoleProbe"/> order, averaged over both data sets' images; with
        /// <paramref name="sample"/>, over those images (with repeats) of each data set instead.
        /// </summary>
        private double[][] ProbeMatrix(IReadOnlyDictionary<DataSetId, int[]>? sample)
        {
            var values = _probeValues ??= DataSetId.Compared.ToDictionary(d => d, d => Enum.GetValues<RoleProbe>()
                .Select(p => HeadRoles.FeatureOf(p) is { } f ? Enumerable.Range(0, Heads).Select(h => _features[d].PerImageMeans(h, f)).ToArray() : null).ToArray());
            double Mean(DataSetId d, int probe, int h)
            {
                var perImage = values[d][probe]![h];
                return (sample?[d] ?? Enumerable.Range(0, perImage.Length).ToArray()).Average(i => perImage[i]);
            }
            return Enumerable.Range(0, Heads).Select(h =>
            {
                var row = new double[HeadRoles.Probes.Length];
                foreach (var probe in Enum.GetValues<RoleProbe>())
                    if (HeadRoles.FeatureOf(probe) != null)
                        row[(int)probe] = (Mean(DataSetId.Real, (int)probe, h) + Mean(DataSetId.Synthetic, (int)probe, h)) / 2;
                row[(int)RoleProbe.Importance] = sample == null ? _importance[h]
                    : (_singles[DataSetId.Real].DegradationPercent(h, null, sample[DataSetId.Real]) + _singles[DataSetId.Synthetic].DegradationPercent(h, null, sample[DataSetId.Synthetic])) / 2;
                return row;
            }).ToArray();
        }

        /// <summary>Roles found again on bootstrap resamples of the images, each data set resampled separately (features and ablations stay paired per image).</summary>
        private double RoleStability(RoleClustering roles) =>
            HeadRoles.Stability(roles, _names, ImageResample(), images[DataSetId.Real].Count, _o.StabilityResamples, _o.Seed, _cross);

        /// <summary>The probe matrix of a fresh bootstrap resample of each data set's images, at each call (the sample the stability code draws is not used: both data sets are drawn here).</summary>
        private Func<int[], double[][]> ImageResample()
        {
            var rng = new Random(StableSeed.Of(_o.Seed, 0x5AB1));
            int[] Draw(DataSetId d) => Enumerable.Range(0, images[d].Count).Select(_ => rng.Next(images[d].Count)).ToArray();
            return _ =>
            {
                var realSample = Draw(DataSetId.Real);
                return ProbeMatrix(new Dictionary<DataSetId, int[]> { [DataSetId.Real] = realSample, [DataSetId.Synthetic] = Draw(DataSetId.Synthetic) });
            };
        }

        /// <summary>Every head, every role and each data set's ascending-importance prefixes, on both data sets.</summary>
        private Dictionary<DataSetId, AblationResult> SweepJointly(RoleClustering roles, Dictionary<DataSetId, int[]> orders)
        {
            var roleConditions = roles.Roles.Select(r => AblationCondition.ForRole(r.Name, r.Heads.Select(h => _names.IndexOf(h)).ToArray()));
            var joint = AblationSweep.SingleHeads(owner._ablation).Concat(roleConditions)
                .Concat(DataSetId.Compared.SelectMany(d => Circuits.PrefixConditions(orders[d], d))).ToList();
            // The single heads and the intact model were measured in the single-head sweep: only new head sets run.
            return DataSetId.Compared.ToDictionary(d => d, d => Sweep("joint", d, joint, "role and circuit ablation", _singles[d]));
        }

        /// <summary>Activation patching between seeded synthetic/real pairs (METHOD.md 5b), on the sweep's model parts.</summary>
        private PatchingResult? Patch()
        {
            if (_o.PatchingPairs == 0) return null;
            var pairs = ActivationPatching.Pairs(images[DataSetId.Synthetic], images[DataSetId.Real], _o.PatchingPairs, _o.Seed);
            using var patching = new ActivationPatching(owner._ablation, _o.Timesteps, _o.Seed, _o.BatchSize, _sweep);
            return checkpoint.Patching(pairs, (chunk, p) => patching.Run(chunk, p), Stage("activation patching"));
        }

        /// <summary>Degradations of heads and roles (not prefixes) of both data sets, BH-adjusted as one family.</summary>
        private List<Degradation> Degradations(Dictionary<DataSetId, AblationResult> ablations)
        {
            var list = DataSetId.Compared.SelectMany(d => AblationStatistics.Degradations(ablations[d], _o.Bootstrap, _o.Seed, c => c.Kind != ConditionKind.Prefix)).ToList();
            var adjusted = MultipleComparisons.Adjust(list.Select(x => x.Test).ToList(), "ablation degradation (heads and roles, both data sets)");
            return list.Select((x, i) => x with { Test = adjusted[i] }).ToList();
        }
    }
}
