using System.Globalization;
using System.Reflection;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Diffusion;

namespace DiffusionCircuits.Reporting;

/// <summary>Turns a <see cref="CircuitAnalysisResult"/> into the numbers, tests and sentences of the report.</summary>
internal static class ReportAssembler
{
    public static string ToolVersion =>
        typeof(ReportAssembler).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static ReportResults Assemble(ReportOptions o, AttentionCaptureSession session, string modelSha, IReadOnlyList<DataSetInfo> data,
        IReadOnlyList<string> notices, CircuitAnalysisResult a, IReadOnlyList<HeadSummary> summaries, IReadOnlyList<TimestepDivergence> divergences,
        LatentEncoder? encoder = null, ModelConditioning? conditioning = null)
    {
        var heads = a.HeadNames;
        var sig = session.Discovery.Signature;
        var setup = o.Denoiser;
        var inputs = new ModelInputsInfo(session.Schedule.Name, setup.SchedulerConfigPath != null ? "scheduler/scheduler_config.json" : "the model's metadata (DDPM's linear default)",
            session.Schedule.Prediction.ToString(), setup.PipelineFolder != null ? Path.GetFileName(Path.GetFullPath(setup.PipelineFolder).TrimEnd('/')) : null,
            setup.VaeEncoderPath != null ? DenoiserSetup.ShortName(setup.VaeEncoderPath) : null, encoder?.Sha256, encoder?.ScalingFactor,
            encoder == null ? null : $"{encoder.Channels}x{encoder.LatentHeight}x{encoder.LatentWidth} from {encoder.Height}x{encoder.Width} pixels", encoder?.Note,
            conditioning?.Source, conditioning?.Sha256, conditioning?.Prompt, conditioning?.TokenTexts?.Take(conditioning.PromptTokens ?? conditioning.Tokens).ToList());
        var model = new ModelInfo(Path.GetFileName(o.ModelPath), modelSha, new FileInfo(o.ModelPath).Length,
            $"{sig.Sample.Name} {sig.Sample.TypeText} {sig.Sample.ShapeText}", $"{sig.Timestep.Name} {sig.Timestep.TypeText} {sig.Timestep.ShapeText}",
            session.Layers.Select(l => new LayerInfo(l.Name, l.Kind, l.Layout.ToString(), l.Heads, l.QueryTokens, l.KeyTokens, $"{l.GridHeight}x{l.GridWidth}", l.HeadDim)).ToList(),
            session.TotalHeads) { Inputs = inputs };

        // Entropy per head, data set and timestep (and over timesteps): the summary.csv rows (mean, SD, bootstrap CI over images).
        var entropy = summaries.Where(x => x.Feature == nameof(HeadFeatures.EntropyNats))
            .Select(x => new EntropyRow(x.DataSet, x.Head, x.Timestep, x.N, x.Mean, x.StandardDeviation, x.CiLow, x.CiHigh)).ToList();

        var divergence = divergences
            .Select(d => new DivergenceRow(d.Timestep, d.MeanJsdNats, d.MinJsdNats, d.MaxJsdNats, heads[Array.IndexOf(d.JsdNatsPerHead, d.MaxJsdNats)], d.MeanAbsEntropyGapNats))
            .ToList();

        var roles = RoleSummary.Of(a);
        var ratios = a.Ratios.Select(RatioRow.Of).ToList();
        var tests = ReportedTests.All(a);

        var cross = CrossAttentionSummary.Of(a, session.Layers, conditioning);
        var patching = a.Patching == null ? null : PatchingSummary.Of(a.Patching, o.Analysis.Bootstrap, o.Analysis.Seed);
        var metrics = Metrics(a, session.Discovery, entropy, divergence, roles, ratios, cross, patching);
        var findings = Findings(data, ratios, divergence, roles, a.Degradations, a.Circuits, o, cross, HeadRoles.FavouredRoleCount(a.RoleCountSelection), patching);
        var cost = new CostInfo(a.ForwardPasses, a.RunCalls, a.NaiveRunCalls, Math.Round(a.ForwardGflop, 3), Math.Round(a.NaiveForwardGflop, 3));
        return new ReportResults
        {
            ToolVersion = ToolVersion, Model = model, Data = data, Timesteps = o.Analysis.Timesteps, Options = o.Describe(), Notices = notices, Findings = findings,
            Metrics = metrics, HeadNames = heads, Entropy = entropy, Divergence = divergence, RoleStabilityAri = a.RoleStabilityAri,
            RoleMeanSilhouette = a.Roles.MeanSilhouette, RoleRestartAgreementAri = a.RoleRestartAgreementAri, RoleCountSelection = a.RoleCountSelection,
            FavouredRoleCount = HeadRoles.FavouredRoleCount(a.RoleCountSelection), Roles = roles, Degradations = a.Degradations, Circuits = a.Circuits, ComplexityRatios = ratios,
            CircuitsByTimestep = a.CircuitsByTimestep, ComplexityRatiosByTimestep = a.RatiosByTimestep.Select(RatioRow.Of).ToList(),
            Tests = tests, Cost = cost, CrossAttention = cross, Patching = patching,
        };
    }

    /// <summary>A role's three most distinctive probes, signed z-scores of its centroid: "SemanticAffinity +1.4, ...".</summary>
    public static string ProbeProfile(RoleSummary role) =>
        string.Join(", ", role.CentroidZ.OrderByDescending(p => Math.Abs(p.Value)).ThenBy(p => p.Key, StringComparer.Ordinal).Take(3)
            .Select(p => $"{p.Key} {p.Value.ToString("+0.0;-0.0", CultureInfo.InvariantCulture)}"));

    private static List<Metric> Metrics(CircuitAnalysisResult a, AttentionDiscoveryResult discovery, List<EntropyRow> entropy, List<DivergenceRow> divergence,
        List<RoleSummary> roles, List<RatioRow> ratios, CrossAttentionSummary? cross, PatchingSummary? patching)
    {
        var m = new List<Metric>();
        foreach (var r in ratios)
        {
            string key = r.Kind == ComplexityMeasure.EffectiveHeads ? "effective_heads" : "circuit_size";
            m.Add(new Metric($"complexity_ratio.{key}", r.Ratio, "ratio real/synthetic", "METHOD.md 6", r.CiLow, r.CiHigh));
            m.Add(new Metric($"complexity_ratio.{key}.p", r.PermutationP ?? double.NaN, "p (permutation)", "METHOD.md 6"));
        }
        foreach (var c in a.Circuits)
        {
            m.Add(new Metric($"circuit.{c.DataSet}.size", c.Size, "heads", "METHOD.md 6"));
            m.Add(new Metric($"circuit.{c.DataSet}.effective_heads", c.EffectiveHeads, "heads", "METHOD.md 6"));
        }
        foreach (var d in divergence)
        {
            m.Add(new Metric($"jsd.t{d.Timestep}.mean", d.MeanJsdNats, "nats", "METHOD.md 2"));
            m.Add(new Metric($"jsd.t{d.Timestep}.max", d.MaxJsdNats, "nats", "METHOD.md 2"));
            m.Add(new Metric($"entropy_gap.t{d.Timestep}", d.MeanAbsEntropyGapNats, "nats", "METHOD.md 2"));
        }
        foreach (var id in DataSetId.Compared)
        {
            string set = id.Name;
            foreach (var layer in discovery.Layers)
            {
                var inLayer = discovery.HeadsOf(layer).Select(h => h.Name).ToHashSet();
                var rows = entropy.Where(e => e.DataSet == set && e.Timestep == null && inLayer.Contains(e.Head)).ToList();
                m.Add(new Metric($"entropy.{set}.{layer.Name}", rows.Average(r => r.MeanNats), "nats", "METHOD.md 1"));
            }
            foreach (var e in entropy.Where(e => e.DataSet == set && e.Timestep == null))
                m.Add(new Metric($"entropy.{set}.{e.Head}", e.MeanNats, "nats", "METHOD.md 1", e.CiLowNats, e.CiHighNats));
            var features = a.FeaturesOf(id);
            for (int k = 0; k < features.Timesteps.Count; k++)
                m.Add(new Metric($"loss.{set}.t{features.Timesteps[k]}", features.LossMse[k].Average(x => (double)x), "eps-MSE", "METHOD.md 5"));
            foreach (var d in a.Degradations.Where(d => d.DataSet == id))
                m.Add(new Metric($"degradation.{set}.{d.Condition}", d.DegradationPercent, "%", "METHOD.md 5", d.CiLowPercent, d.CiHighPercent));
        }
        m.Add(new Metric("roles.stability_ari", a.RoleStabilityAri, "adjusted Rand index", "METHOD.md 4"));
        m.Add(new Metric("roles.mean_silhouette", a.Roles.MeanSilhouette, "silhouette", "METHOD.md 4"));
        m.Add(new Metric("roles.restart_agreement_ari", a.RoleRestartAgreementAri, "adjusted Rand index", "METHOD.md 4"));
        foreach (var r in roles)
            m.Add(new Metric($"role.{r.Name}.entropy", r.EntropyMeanNats, "nats", "METHOD.md 4"));
        if (cross != null)
            foreach (var id in DataSetId.Compared)
            {
                var mass = cross.MeanMass(id);
                for (int t = 0; t < mass.Length; t++) m.Add(new Metric($"cross_mass.{id.Name}.token{t}", mass[t], "share of attention", "METHOD.md 5c"));
                m.Add(new Metric($"cross_mass.{id.Name}.padding", cross.MeanPaddingMass(id), "share of attention", "METHOD.md 5c"));
            }
        if (patching != null)
            foreach (var h in patching.Heads)
            {
                m.Add(new Metric($"patching.real_into_synthetic.{h.Head}", h.RealIntoSynthetic.Share, "share of the output difference", "METHOD.md 5b", h.RealIntoSynthetic.CiLow, h.RealIntoSynthetic.CiHigh));
                m.Add(new Metric($"patching.synthetic_into_real.{h.Head}", h.SyntheticIntoReal.Share, "share of the output difference", "METHOD.md 5b", h.SyntheticIntoReal.CiLow, h.SyntheticIntoReal.CiHigh));
            }
        return m;
    }

    /// <summary>Whether the data support the number of roles asked for, and which roles to doubt.</summary>
    private static string RoleCountSentence(IReadOnlyList<RoleSummary> roles, int? favoured)
    {
        var doubtful = roles.Where(r => r.Flags.Length > 0).ToList();
        string text = favoured is int k && k != roles.Count ? $" The data favour {k} roles by silhouette, not {roles.Count}" : favoured is int ? " The data favour this number of roles by silhouette" : "";
        if (doubtful.Count > 0)
            text += (text.Length > 0 ? "; " : " ") + $"{doubtful.Count} role{(doubtful.Count == 1 ? " has" : "s have")} one head or a silhouette <= 0 ({string.Join(", ", doubtful.Select(r => r.Name))})";
        return text.Length > 0 ? text + "." : "";
    }

    /// <summary>Which head carries the most of the output difference between paired images, from the measured shares.</summary>
    internal static string PatchingSentence(PatchingSummary p, string realWords)
    {
        string Pct(double v) => double.IsFinite(v) ? (100 * v).ToString("F1", CultureInfo.InvariantCulture) + "%" : "undefined";
        var top = p.ByShare()[0];
        if (!double.IsFinite(top.RealIntoSynthetic.Share) && !double.IsFinite(top.SyntheticIntoReal.Share))
            return $"Activation patching of {p.Pairs} synthetic/{realWords} pairs is undefined: the paired images' outputs did not differ.";
        return $"Activation patching of {p.Pairs} synthetic/{realWords} pairs: the head carrying the largest share of the output difference was {top.Head} " +
               $"({Pct(top.RealIntoSynthetic.Share)} of it, 95% CI {Pct(top.RealIntoSynthetic.CiLow)} to {Pct(top.RealIntoSynthetic.CiHigh)}, with its output taken from the {realWords} image; " +
               $"{Pct(top.SyntheticIntoReal.Share)} the other way); the shares of all heads add up to {Pct(p.SumOfSharesRealIntoSynthetic)} and {Pct(p.SumOfSharesSyntheticIntoReal)}.";
    }

    /// <summary>Where the cross-attention heads look on the conditioning tokens, for both data sets, from the measured masses.</summary>
    private static string CrossAttentionSentence(CrossAttentionSummary c, string realWords)
    {
        var real = c.MeanMass(DataSetId.Real);
        var synthetic = c.MeanMass(DataSetId.Synthetic);
        string Pct(double v) => (100 * v).ToString("F1", CultureInfo.InvariantCulture) + "%";
        string conditioning = c.Prompt != null ? $"the prompt \"{c.Prompt}\"" : c.Source;
        // Words: the prompt's tokens between start and end token (all tokens but the first when their texts are unknown).
        int first = 1, last = c.Prompt != null ? c.Tokens.Count - 1 : c.Tokens.Count;
        var words = Enumerable.Range(first, Math.Max(0, last - first)).ToList();
        string start = $"{c.Heads.Count} cross-attention head{(c.Heads.Count == 1 ? "" : "s")} conditioned on {conditioning} gave the first token ({c.Tokens[0]}) " +
                       $"{Pct(real[0])} of their attention on {realWords} faces and {Pct(synthetic[0])} on synthetic faces";
        if (words.Count == 0) return start + ".";
        int top = words.MaxBy(t => real[t] + synthetic[t]);
        return start + $", and the prompt's {words.Count} token{(words.Count == 1 ? "" : "s")} {Pct(words.Sum(t => real[t]))} and {Pct(words.Sum(t => synthetic[t]))}; " +
               $"the most attended was \"{c.Tokens[top]}\" ({Pct(real[top])} and {Pct(synthetic[top])}).";
    }

    /// <summary>The ratio's interval in words: a 95% CI, or why there is none.</summary>
    private static string Interval(RatioRow r) => double.IsFinite(r.CiLow) && double.IsFinite(r.CiHigh)
        ? $"95% CI {F(r.CiLow)} to {F(r.CiHigh)}"
        : double.IsNaN(r.Ratio) ? "no CI: the ratio is undefined" : "no CI: a point value (see the note in the circuits section)";

    private static string PText(RatioRow r) => r.PermutationP == null ? "no p-value" : r.PAtResolution ? $"p {r.PValueText}" : $"p = {r.PValueText}";

    /// <summary>What a ratio says: higher or lower than 1 and whether measurably so (95% CI excluding 1 and p &lt;= 0.05), or undefined.</summary>
    internal enum RatioVerdict { Undefined, Higher, Lower, NotMeasurablyHigher, NotMeasurablyLower, Equal }

    internal static RatioVerdict Verdict(RatioRow r)
    {
        if (!double.IsFinite(r.Ratio)) return RatioVerdict.Undefined;
        bool significant = r.PermutationP is double p && p <= 0.05;
        if (r.Ratio > 1) return significant && r.CiLow > 1 ? RatioVerdict.Higher : RatioVerdict.NotMeasurablyHigher;
        if (r.Ratio < 1) return significant && r.CiHigh < 1 ? RatioVerdict.Lower : RatioVerdict.NotMeasurablyLower;
        return RatioVerdict.Equal;
    }

    /// <summary>
    /// The complexity conclusion, from both measures: "measurably" only when the 95% CI excludes 1 and p &lt;= 0.05 (a point
    /// value without an interval never is); opposite directions and undefined ratios are said plainly.
    /// </summary>
    internal static string ComplexityConclusion(RatioRow effective, RatioRow size, string realWords)
    {
        var (e, c) = (Verdict(effective), Verdict(size));
        string Words(RatioVerdict v) => v switch
        {
            RatioVerdict.Higher => "measurably higher",
            RatioVerdict.Lower => "measurably lower",
            RatioVerdict.NotMeasurablyHigher => "higher, but not measurably (the CI includes 1 or p > 0.05)",
            RatioVerdict.NotMeasurablyLower => "lower, but not measurably (the CI includes 1 or p > 0.05)",
            RatioVerdict.Equal => "equal",
            _ => "undefined (a 0/0 ratio)",
        };
        bool up(RatioVerdict v) => v is RatioVerdict.Higher or RatioVerdict.NotMeasurablyHigher;
        bool down(RatioVerdict v) => v is RatioVerdict.Lower or RatioVerdict.NotMeasurablyLower;
        string both = $"By effective heads, the complexity {realWords} faces needed was {Words(e)}; by circuit size, {Words(c)}.";
        if ((up(e) && down(c)) || (down(e) && up(c)))
            return both + " The two measures point in opposite directions, so these data do not show which data set needs the more complex circuit.";
        if (e == RatioVerdict.Higher && c == RatioVerdict.Higher) return $"{both} Both measures agree: {realWords} faces required circuits of measurably higher computational complexity.";
        if (e == RatioVerdict.Lower && c == RatioVerdict.Lower) return $"{both} Both measures agree: {realWords} faces required circuits of measurably lower computational complexity.";
        if (e is RatioVerdict.Higher or RatioVerdict.Lower || c is RatioVerdict.Higher or RatioVerdict.Lower)
            return both + " Only one measure shows a measurable difference.";
        return both + " Neither measure shows a measurable difference in complexity.";
    }

    private static string F(double v, int digits = 3) => v.ToString("F" + digits, CultureInfo.InvariantCulture);

    /// <summary>The findings in one paragraph, in the paper's style, from the measured numbers only.</summary>
    public static string Findings(IReadOnlyList<DataSetInfo> data, IReadOnlyList<RatioRow> ratios, IReadOnlyList<DivergenceRow> divergence,
        IReadOnlyList<RoleSummary> roles, IReadOnlyList<Degradation> degradations, IReadOnlyList<Circuit> circuits, ReportOptions o, CrossAttentionSummary? cross = null,
        int? favouredRoles = null, PatchingSummary? patching = null)
    {
        var real = data.First(d => d.Name == DataSetId.Real.Name);
        var synth = data.First(d => d.Name == DataSetId.Synthetic.Name);
        string realWords = real.Kind.StartsWith("naturalistic", StringComparison.Ordinal) ? "naturalistic stand-in (not real)" : real.Kind.StartsWith("CelebA", StringComparison.Ordinal) ? "CelebA" : "real";
        var eff = ratios.First(r => r.Kind == ComplexityMeasure.EffectiveHeads);
        var size = ratios.First(r => r.Kind == ComplexityMeasure.CircuitSize);
        var circuitReal = circuits.First(c => c.DataSet == DataSetId.Real);
        var circuitSynthetic = circuits.First(c => c.DataSet == DataSetId.Synthetic);
        var s = new List<string>
        {
            $"Across {synth.Images} synthetic and {real.Images} {realWords} face images at {o.Analysis.Timesteps.Count} denoising timesteps ({string.Join(", ", o.Analysis.Timesteps)}), " +
            $"the effective number of heads was {F(circuitReal.EffectiveHeads, 2)} on {realWords} faces and {F(circuitSynthetic.EffectiveHeads, 2)} on synthetic faces " +
            $"(complexity ratio {F(eff.Ratio)}, {Interval(eff)}, {PText(eff)}), and the circuit at tau = {F(o.Analysis.TolerancePercent, 0)}% had " +
            $"{circuitReal.Size} and {circuitSynthetic.Size} heads (ratio {F(size.Ratio)}, {Interval(size)}, {PText(size)}).",
            ComplexityConclusion(eff, size, realWords),
        };
        var lo = divergence.MinBy(d => d.MeanJsdNats)!;
        var hi = divergence.MaxBy(d => d.MeanJsdNats)!;
        s.Add($"Attention patterns diverged between the data sets with a mean Jensen-Shannon divergence ranging from {F(lo.MeanJsdNats, 4)} nats (t = {lo.Timestep}) " +
              $"to {F(hi.MeanJsdNats, 4)} nats (t = {hi.Timestep}) across timesteps.");
        var top = roles.OrderBy(r => r.EntropyMeanNats).ToList();
        s.Add($"Clustering grouped the heads into {roles.Count} roles: " +
              string.Join(", ", top.Select(r => $"{r.Name} (entropy = {F(r.EntropyMeanNats, 2)} +/- {F(r.EntropySdNats, 2)} nats, {r.Heads.Count} head{(r.Heads.Count == 1 ? "" : "s")})")) + "." +
              RoleCountSentence(roles, favouredRoles));
        var single = degradations.Where(d => d.Kind == ConditionKind.Head).ToList();
        var max = single.MaxBy(d => d.DegradationPercent)!;
        s.Add($"Single-head ablation degraded denoising by {F(single.Min(d => d.DegradationPercent), 1)}% to {F(max.DegradationPercent, 1)}%; the largest bottleneck was " +
              $"{max.Condition} on {(max.DataSet == DataSetId.Real ? realWords : max.DataSet.Name)} faces ({F(max.DegradationPercent, 1)}%, 95% CI {F(max.CiLowPercent, 1)} to {F(max.CiHighPercent, 1)}, " +
              (max.Test.AdjustedPValue is double adjusted ? $"BH-adjusted p = {adjusted.ToString("G2", CultureInfo.InvariantCulture)})." : "no p-value: the test is undefined)."));
        if (patching != null) s.Add(PatchingSentence(patching, realWords));
        if (cross != null) s.Add(CrossAttentionSentence(cross, realWords));
        return string.Join(" ", s);
    }
}
