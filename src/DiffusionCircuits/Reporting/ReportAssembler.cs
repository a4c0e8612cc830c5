using System.Globalization;
using System.Reflection;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Capture;

namespace DiffusionCircuits.Reporting;

/// <summary>Turns a <see cref="CircuitAnalysisResult"/> into the numbers, tests and sentences of the report.</summary>
public static class ReportAssembler
{
    public static string ToolVersion =>
        typeof(ReportAssembler).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static ReportResults Assemble(ReportOptions o, AttentionCaptureSession session, string modelSha, IReadOnlyList<DataSetInfo> data,
        IReadOnlyList<string> notices, CircuitAnalysisResult a, IReadOnlyList<HeadSummary> summaries, IReadOnlyList<TimestepDivergence> divergences)
    {
        var heads = a.HeadNames;
        var sig = session.Discovery.Signature;
        var model = new ModelInfo(Path.GetFileName(o.ModelPath), modelSha, new FileInfo(o.ModelPath).Length,
            $"{sig.Sample.Name} {sig.Sample.TypeText} {sig.Sample.ShapeText}", $"{sig.Timestep.Name} {sig.Timestep.TypeText} {sig.Timestep.ShapeText}",
            session.Layers.Select(l => new LayerInfo(l.Name, l.Kind, l.Layout.ToString(), l.Heads, l.QueryTokens, l.KeyTokens, $"{l.GridHeight}x{l.GridWidth}", l.HeadDim)).ToList(),
            session.TotalHeads);

        // Entropy per head, data set and timestep (and over timesteps): the summary.csv rows (mean, SD, bootstrap CI over images).
        var entropy = summaries.Where(x => x.Feature == nameof(HeadFeatures.EntropyNats))
            .Select(x => new EntropyRow(x.DataSet, x.Head, x.Timestep, x.N, x.Mean, x.StandardDeviation, x.CiLow, x.CiHigh)).ToList();

        var divergence = divergences
            .Select(d => new DivergenceRow(d.Timestep, d.MeanJsdNats, d.MinJsdNats, d.MaxJsdNats, heads[Array.IndexOf(d.JsdNatsPerHead, d.MaxJsdNats)], d.MeanAbsEntropyGapNats))
            .ToList();

        var roles = Roles(a);

        var degradations = a.Degradations.Select(d => new DegradationRow(d.DataSet, d.Degradation.Condition, d.Degradation.DegradationPercent,
            d.Degradation.CiLow, d.Degradation.CiHigh, d.Degradation.PerTimestepPercent, d.Degradation.Test)).ToList();
        var circuits = a.Circuits.Select(c => new CircuitRow(c.DataSet, c.TolerancePercent, c.Size, c.EffectiveHeads, c.Heads, c.AblatedInOrder, c.PrefixDegradationPercent)).ToList();
        var ratios = a.Ratios.Select(r => new RatioRow(r.Measure, r.Real, r.Synthetic, r.Ratio, r.Ci.Low, r.Ci.High, r.Permutation.PValue,
            r.Permutation.Permutations, r.Permutation.AtResolution, r.Note)).ToList();

        // Tests: entropy real vs synthetic per head (Welch t with Hedges' g, and Mann-Whitney U), each family BH-adjusted;
        // ablation degradations (already adjusted as one family); complexity ratios by permutation (their own family).
        var welch = MultipleComparisons.Adjust(Enumerable.Range(0, heads.Count).Select(h =>
            TTests.Welch(a.Features[0].PerImageMeans(h, 0), a.Features[1].PerImageMeans(h, 0)) with { Test = $"Welch t: entropy of {heads[h]}, real vs synthetic" }).ToList(),
            "entropy real vs synthetic, per head (Welch t)");
        var mwu = MultipleComparisons.Adjust(Enumerable.Range(0, heads.Count).Select(h =>
            RankTests.MannWhitneyU(a.Features[0].PerImageMeans(h, 0), a.Features[1].PerImageMeans(h, 0)) with { Test = $"Mann-Whitney U: entropy of {heads[h]}, real vs synthetic" }).ToList(),
            "entropy real vs synthetic, per head (Mann-Whitney U)");
        var ratioTests = MultipleComparisons.Adjust(a.Ratios.Select(r => new HypothesisTest
        {
            Test = $"Permutation: complexity ratio ({r.Measure}) real / synthetic = 1", N1 = a.Features[0].ImageCount, N2 = a.Features[1].ImageCount,
            StatisticName = "ratio", Statistic = r.Ratio, PValue = r.Permutation.PValue, Method = $"permutation of data-set labels ({r.Permutation.Permutations})",
            Effect = new EffectSize("ratio", r.Ratio, r.Ci.Low, r.Ci.High),
            Note = r.Permutation.AtResolution ? $"no permutation reached the observed value; p is the resolution 1/(n+1)" : null,
        }).ToList(), "complexity ratios", "Holm");
        var tests = welch.Concat(mwu).Concat(degradations.Select(d => d.Test)).Concat(ratioTests).ToList();

        var metrics = Metrics(a, heads, entropy, divergence, roles, degradations, circuits, ratios, session.Layers);
        var findings = Findings(data, ratios, divergence, roles, degradations, circuits, o);
        var cost = new CostInfo(a.ForwardPasses, a.RunCalls, a.NaiveRunCalls);
        return new ReportResults
        {
            ToolVersion = ToolVersion, Model = model, Data = data, Timesteps = o.Timesteps, Options = o.Describe(), Notices = notices, Findings = findings,
            Metrics = metrics, HeadNames = heads, Entropy = entropy, Divergence = divergence, RoleStabilityAri = a.RoleStabilityAri,
            RoleMeanSilhouette = a.Roles.MeanSilhouette, Roles = roles, Degradations = degradations, Circuits = circuits, ComplexityRatios = ratios,
            Tests = tests, Cost = cost,
        };
    }

    /// <summary>
    /// Per role: its heads, their entropy (mean of both data sets over images and timesteps) as mean +/- SD over the
    /// role's heads, mean importance, silhouette, centroid and the heads' 2-D PCA coordinates.
    /// </summary>
    public static List<RoleRow> Roles(CircuitAnalysisResult a)
    {
        var heads = a.HeadNames;
        var headEntropy = Enumerable.Range(0, heads.Count).Select(h => (a.Features[0].PerImageMeans(h, 0).Average() + a.Features[1].PerImageMeans(h, 0).Average()) / 2).ToArray();
        var projection = Project2D(HeadRoles.Standardise(a.ProbeMatrix));
        return a.Roles.Roles.Select(r =>
        {
            var idx = r.Heads.Select(h => IndexOf(heads, h)).ToList();
            var e = idx.Select(h => headEntropy[h]).ToArray();
            return new RoleRow(r.Name, r.Heads, e.Average(), e.Length > 1 ? Descriptive.StandardDeviation(e) : 0, idx.Average(h => a.ImportancePercent[h]), r.Silhouette,
                new SortedDictionary<string, double>(HeadRoles.Probes.Zip(r.CentroidZ).ToDictionary(p => p.First, p => Math.Round(p.Second, 12)), StringComparer.Ordinal),
                idx.Select(h => projection[h].X).ToArray(), idx.Select(h => projection[h].Y).ToArray());
        }).ToList();
    }

    /// <summary>A role's three most distinctive probes, signed z-scores of its centroid: "SemanticAffinity +1.4, ...".</summary>
    public static string ProbeProfile(RoleRow role) =>
        string.Join(", ", role.CentroidZ.OrderByDescending(p => Math.Abs(p.Value)).ThenBy(p => p.Key, StringComparer.Ordinal).Take(3)
            .Select(p => $"{p.Key} {p.Value.ToString("+0.0;-0.0", CultureInfo.InvariantCulture)}"));

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++) if (names[i] == name) return i;
        throw new ArgumentException($"Unknown head '{name}'.");
    }

    /// <summary>First two principal components of the standardised head features (sign fixed so the largest loading is positive).</summary>
    public static (double X, double Y)[] Project2D(float[][] z)
    {
        int n = z.Length, p = z[0].Length;
        var m = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(n, p, (i, j) => z[i][j]);
        if (n < 2) return z.Select(_ => (0.0, 0.0)).ToArray();
        var svd = m.Svd(true);
        var v = svd.VT.Transpose();
        var result = new (double X, double Y)[n];
        for (int c = 0; c < Math.Min(2, v.ColumnCount); c++)
        {
            var col = v.Column(c);
            double sign = col.AbsoluteMaximum() == col.Maximum() ? 1 : -1;
            for (int i = 0; i < n; i++)
            {
                double score = sign * m.Row(i).DotProduct(col);
                score = Math.Round(score, 10);   // SVD sign/rounding noise must not leak into results.json
                result[i] = c == 0 ? (score, result[i].Y) : (result[i].X, score);
            }
        }
        return result;
    }

    private static List<Metric> Metrics(CircuitAnalysisResult a, IReadOnlyList<string> heads, List<EntropyRow> entropy, List<DivergenceRow> divergence,
        List<RoleRow> roles, List<DegradationRow> degradations, List<CircuitRow> circuits, List<RatioRow> ratios, IReadOnlyList<AttentionLayer> layers)
    {
        var m = new List<Metric>();
        foreach (var r in ratios)
        {
            string key = Key(r.Measure);
            m.Add(new Metric($"complexity_ratio.{key}", r.Ratio, "ratio real/synthetic", "METHOD.md 6", r.CiLow, r.CiHigh));
            m.Add(new Metric($"complexity_ratio.{key}.p", r.PermutationP, "p (permutation)", "METHOD.md 6"));
        }
        foreach (var c in circuits)
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
        foreach (var set in new[] { "real", "synthetic" })
        {
            foreach (var layer in layers)
            {
                var rows = entropy.Where(e => e.DataSet == set && e.Timestep == null && e.Head.StartsWith(layer.Name + ".h", StringComparison.Ordinal)).ToList();
                m.Add(new Metric($"entropy.{set}.{layer.Name}", rows.Average(r => r.MeanNats), "nats", "METHOD.md 1"));
            }
            foreach (var e in entropy.Where(e => e.DataSet == set && e.Timestep == null))
                m.Add(new Metric($"entropy.{set}.{e.Head}", e.MeanNats, "nats", "METHOD.md 1", e.CiLowNats, e.CiHighNats));
            var features = a.Features.First(f => f.Name == set);
            for (int k = 0; k < features.Timesteps.Count; k++)
                m.Add(new Metric($"loss.{set}.t{features.Timesteps[k]}", features.LossMse[k].Average(x => (double)x), "eps-MSE", "METHOD.md 5"));
            foreach (var d in degradations.Where(d => d.DataSet == set))
                m.Add(new Metric($"degradation.{set}.{d.Condition}", d.DegradationPercent, "%", "METHOD.md 5", d.CiLowPercent, d.CiHighPercent));
        }
        m.Add(new Metric("roles.stability_ari", a.RoleStabilityAri, "adjusted Rand index", "METHOD.md 4"));
        m.Add(new Metric("roles.mean_silhouette", a.Roles.MeanSilhouette, "silhouette", "METHOD.md 4"));
        foreach (var r in roles)
            m.Add(new Metric($"role.{r.Name}.entropy", r.EntropyMeanNats, "nats", "METHOD.md 4"));
        return m;
    }

    private static string Key(string measure) => measure.StartsWith("effective", StringComparison.OrdinalIgnoreCase) ? "effective_heads" : "circuit_size";

    private static string F(double v, int digits = 3) => v.ToString("F" + digits, CultureInfo.InvariantCulture);

    private static string P(double p, bool atResolution, int permutations) =>
        atResolution ? $"p < {(1.0 / (permutations + 1)).ToString("G2", CultureInfo.InvariantCulture)}" : $"p = {p.ToString("G2", CultureInfo.InvariantCulture)}";

    /// <summary>The findings in one paragraph, in the paper's style, from the measured numbers only.</summary>
    public static string Findings(IReadOnlyList<DataSetInfo> data, IReadOnlyList<RatioRow> ratios, IReadOnlyList<DivergenceRow> divergence,
        IReadOnlyList<RoleRow> roles, IReadOnlyList<DegradationRow> degradations, IReadOnlyList<CircuitRow> circuits, ReportOptions o)
    {
        var real = data.First(d => d.Name == "real");
        var synth = data.First(d => d.Name == "synthetic");
        string realWords = real.Kind.StartsWith("naturalistic", StringComparison.Ordinal) ? "naturalistic stand-in (not real)" : real.Kind.StartsWith("CelebA", StringComparison.Ordinal) ? "CelebA" : "real";
        var eff = ratios.First(r => r.Measure.Contains("effective", StringComparison.OrdinalIgnoreCase));
        var size = ratios.First(r => !ReferenceEquals(r, eff));
        string direction = eff.CiLow > 1 ? "measurably higher" : eff.CiHigh < 1 ? "measurably lower" : "no measurably different";
        var s = new List<string>
        {
            $"Across {synth.Images} synthetic and {real.Images} {realWords} face images at {o.Timesteps.Count} denoising timesteps ({string.Join(", ", o.Timesteps)}), " +
            $"{realWords} faces required circuits with {direction} computational complexity (complexity ratio of effective heads = {F(eff.Ratio)}, " +
            $"95% CI {F(eff.CiLow)} to {F(eff.CiHigh)}, {P(eff.PermutationP, eff.PAtResolution, eff.Permutations)}; circuit size at tau = {F(o.TolerancePercent, 0)}%: " +
            $"{circuits.First(c => c.DataSet == "real").Size} vs {circuits.First(c => c.DataSet == "synthetic").Size} heads, ratio {F(size.Ratio)}, 95% CI {F(size.CiLow)} to {F(size.CiHigh)}).",
        };
        var lo = divergence.MinBy(d => d.MeanJsdNats)!;
        var hi = divergence.MaxBy(d => d.MeanJsdNats)!;
        s.Add($"Attention patterns diverged between the data sets with a mean Jensen-Shannon divergence ranging from {F(lo.MeanJsdNats, 4)} nats (t = {lo.Timestep}) " +
              $"to {F(hi.MeanJsdNats, 4)} nats (t = {hi.Timestep}) across timesteps.");
        var top = roles.OrderBy(r => r.EntropyMeanNats).ToList();
        s.Add($"Clustering grouped the heads into {roles.Count} roles: " +
              string.Join(", ", top.Select(r => $"{r.Name} (entropy = {F(r.EntropyMeanNats, 2)} +/- {F(r.EntropySdNats, 2)} nats, {r.Heads.Count} head{(r.Heads.Count == 1 ? "" : "s")})")) + ".");
        var single = degradations.Where(d => !d.Condition.StartsWith("role.", StringComparison.Ordinal)).ToList();
        var max = single.MaxBy(d => d.DegradationPercent)!;
        s.Add($"Single-head ablation degraded denoising by {F(single.Min(d => d.DegradationPercent), 1)}% to {F(max.DegradationPercent, 1)}%; the largest bottleneck was " +
              $"{max.Condition} on {max.DataSet} faces ({F(max.DegradationPercent, 1)}%, 95% CI {F(max.CiLowPercent, 1)} to {F(max.CiHighPercent, 1)}, " +
              $"BH-adjusted p = {(max.Test.AdjustedPValue ?? max.Test.PValue).ToString("G2", CultureInfo.InvariantCulture)}).");
        return string.Join(" ", s);
    }
}
