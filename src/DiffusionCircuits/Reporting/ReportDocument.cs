using System.Globalization;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// Lays out the report, section by section, from the results, charts and example pictures (every number comes from
/// <see cref="ReportResults"/>), into report.pdf and the same sections into the self-contained report.html.
/// </summary>
internal static class ReportDocument
{
    /// <summary>Section headings, in order; tests read the PDF back for them.</summary>
    public static readonly string[] Sections =
    {
        "Findings", "Methods", "Attention entropy and divergence", "Attention examples", "Cross-attention", "Functional roles", "Ablation",
        "Circuits and complexity", "Activation patching", "Hypothesis tests", "Appendix: options, versions, timings", "Appendix: every hypothesis test",
    };

    private static string F(double v, int d = 3) => double.IsNaN(v) ? "n/a" : v.ToString("F" + d, CultureInfo.InvariantCulture);
    private static string G(double v) => double.IsNaN(v) ? "n/a" : v.ToString("G3", CultureInfo.InvariantCulture);
    private static string Pv(double? p) => p is double v ? (v < 1e-4 ? v.ToString("0.0E+0", CultureInfo.InvariantCulture) : v.ToString("0.0000", CultureInfo.InvariantCulture)) : "";

    private static string Version(Type t) =>
        (System.Reflection.CustomAttributeExtensions.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>(t.Assembly)?.InformationalVersion
         ?? t.Assembly.GetName().Version?.ToString() ?? "?").Split('+')[0];

    /// <summary>Writes report.pdf; returns its page count.</summary>
    public static int WritePdf(string path, ReportResults r, IReadOnlyList<ReportChart> charts, ReportExamples examples, IReadOnlyDictionary<string, double> timings,
        TileFigure? tokenMaps = null)
    {
        var pdf = new PdfDocumentBuilder(Title, Subtitle(r));
        Build(pdf, r, charts, examples, timings, tokenMaps);
        pdf.Save(path);
        return pdf.PageCount;
    }

    /// <summary>Writes report.html: the same sections, one self-contained page.</summary>
    public static void WriteHtml(string path, ReportResults r, IReadOnlyList<ReportChart> charts, ReportExamples examples, IReadOnlyDictionary<string, double> timings,
        TileFigure? tokenMaps = null)
    {
        var html = new HtmlDocumentBuilder(Title, Subtitle(r));
        Build(html, r, charts, examples, timings, tokenMaps);
        html.Save(path);
    }

    private const string Title = "DiffusionCircuits report";

    private static string Subtitle(ReportResults r) => $"{r.Model.File}, {r.Data.Sum(d => d.Images)} images";

    /// <summary>The report, section by section (<see cref="Sections"/>), into <paramref name="doc"/>.</summary>
    public static void Build(IReportDocument doc, ReportResults r, IReadOnlyList<ReportChart> charts, ReportExamples examples, IReadOnlyDictionary<string, double> timings,
        TileFigure? tokenMaps = null)
    {
        var page = new Page(doc, r, charts, examples, timings, tokenMaps);
        Findings(page);
        Methods(page);
        Entropy(page);
        Examples(page);
        CrossAttention(page);
        Roles(page);
        Ablation(page);
        Circuits(page);
        Patching(page);
        Tests(page);
        Appendix(page);
        AllTests(page);
    }

    /// <summary>What every section draws from.</summary>
    private sealed record Page(IReportDocument Pdf, ReportResults Results, IReadOnlyList<ReportChart> Charts, ReportExamples Examples, IReadOnlyDictionary<string, double> Timings,
        TileFigure? TokenMaps)
    {
        public void Draw(string name)
        {
            var chart = Charts.First(c => c.Name == name);
            Pdf.Chart(chart.Plot, chart.Width, chart.Height, chart.Caption);
        }
    }

    /// <summary>Section 1: findings.</summary>
    private static void Findings(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[0]);
        foreach (var notice in r.Notices) pdf.Notice(notice);
        pdf.Paragraph(r.Findings, 10.5f);
        pdf.Heading("Key figures", 2);
        var key = new List<IReadOnlyList<string>>();
        foreach (var q in r.ComplexityRatios)
            key.Add(new[] { $"complexity ratio ({q.Measure})", F(q.Ratio), q.CiText, q.PValueText });
        foreach (var c in r.Circuits)
            key.Add(new[] { $"circuit size, {r.Label(c.DataSet.Name)} (tau {G(c.TolerancePercent)}%)", c.Size.ToString(CultureInfo.InvariantCulture), "", "" });
        foreach (var c in r.Circuits)
            key.Add(new[] { $"effective heads, {r.Label(c.DataSet.Name)}", F(c.EffectiveHeads, 2), "", "" });
        key.Add(new[] { "JSD range over timesteps (nats, mean over heads)", $"{F(r.Divergence.Min(d => d.MeanJsdNats), 4)} .. {F(r.Divergence.Max(d => d.MeanJsdNats), 4)}", "", "" });
        var single = r.Degradations.Where(d => d.Kind == ConditionKind.Head).ToList();
        key.Add(new[] { "single-head degradation range (%)", $"{F(single.Min(d => d.DegradationPercent), 1)} .. {F(single.Max(d => d.DegradationPercent), 1)}", "", "" });
        key.Add(new[] { "role stability (adjusted Rand index)", F(r.RoleStabilityAri), "", "" });
        pdf.Table(new[] { "measure", "value", "95% CI", "p" }, key, new[] { 3.2f, 1.3f, 1.5f, 1f }, 9);
    }

    /// <summary>Section 2: methods.</summary>
    private static void Methods(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        var real = r.Data.First(d => d.Name == DataSetId.Real.Name);
        pdf.Heading(Sections[1]);
        pdf.Heading("Model", 2);
        pdf.Paragraph($"{r.Model.File} ({r.Model.Bytes:N0} bytes, SHA-256 {r.Model.Sha256}). Noisy sample input {r.Model.SampleInput}; timestep input {r.Model.TimestepInput}. " +
                      $"{r.Model.Layers.Count} attention layers, {r.Model.Heads} heads, found in the graph and exposed as outputs by DiffusionCircuits' instrumentation.", 9);
        pdf.Table(new[] { "layer", "kind", "layout", "heads", "query x key tokens", "grid", "head dim" },
            r.Model.Layers.Select(l => (IReadOnlyList<string>)new[] { l.Name, l.Kind, l.Layout, l.Heads.ToString(CultureInfo.InvariantCulture), $"{l.QueryTokens} x {l.KeyTokens}", l.Grid, l.HeadDim.ToString(CultureInfo.InvariantCulture) }).ToList());
        pdf.Heading("Data", 2);
        pdf.Table(new[] { "data set", "kind", "source", "images", "skipped", "SHA-256 of pixels" },
            r.Data.Select(d => (IReadOnlyList<string>)new[] { d.Name, d.Kind, d.Source, d.Images.ToString(CultureInfo.InvariantCulture), d.Skipped.ToString(CultureInfo.InvariantCulture), d.Sha256[..16] + "..." }).ToList(),
            new[] { 1f, 2f, 2.4f, 0.8f, 0.8f, 1.8f });
        if (real.SkippedFiles.Count > 0)
        {
            pdf.Paragraph($"Skipped real files ({real.SkippedFiles.Count}; all in results.json):", 9);
            pdf.Table(new[] { "file", "reason" }, real.SkippedFiles.Take(25).Select(s => (IReadOnlyList<string>)new[] { s.File, s.Reason }).ToList(), new[] { 1.5f, 3f });
        }
        pdf.Paragraph($"Timesteps: {string.Join(", ", r.Timesteps)} (of the model's schedule). Each image gets its own seeded noise per timestep, shared by baseline and ablated runs (paired design). " +
                      $"Seed {r.Options.Seed}; {r.Options.Bootstrap} bootstrap resamples and permutations.", 9);
        pdf.Heading("Definitions", 2);
        pdf.Paragraph($"All numbers follow {r.Definitions}. Entropy H = (1/S) sum_i -sum_j p_ij ln p_ij in nats (uniform attention over S tokens gives ln S). " +
                      "Divergence: Jensen-Shannon divergence between the image-averaged attention maps of the two data sets, averaged over query rows, in nats. " +
                      "Probes: mean attention distance (image units), edge and texture alignment (Pearson / partial correlation of received attention with Sobel / Laplacian energy), " +
                      "semantic affinity (attention mass within the query's facial part minus chance), symmetry (mass at the mirror position). " +
                      "Roles: k-means (ML.NET) on z-scored probes and causal importance, named by the centroid's dominant probe; stability is the adjusted Rand index over bootstrap resamples of images. " +
                      $"Ablation: head output z = p V {AblationWords(r.Options)} before the output projection. Degradation % is the mean over timesteps of " +
                      "D_t = 100 (L_ablated - L_base) / L_base at each timestep (L the eps-MSE summed over images), so every timestep weighs the same; the pooled value " +
                      "(losses summed over timesteps first, dominated by the smallest t) is in results.json for comparison. Wilcoxon signed-rank on the per-image mean over " +
                      "timesteps of the relative loss change, bootstrap CIs over images. Circuits: heads ablated in ascending importance while the measured joint degradation " +
                      "stays <= tau; effective heads = exp(entropy of normalised importances). Complexity ratio = C(real) / C(synthetic), bootstrap CI within data sets " +
                      "(circuit size: a point value), permutation p over data-set labels; also per timestep. An undefined statistic (NaN, infinite, 0/0) has no p-value. " +
                      "Multiple comparisons: Benjamini-Hochberg within each stated family (Holm for the complexity ratios).", 9);
    }

    /// <summary>What ablation did to a head's output, in words, from the run's options.</summary>
    private static string AblationWords(RunOptions options) => options.Ablation switch
    {
        "mean" => "set to its mean over the data set at the same timestep and position",
        "resample" => "replaced by its value on another image of the same data set at the same timestep and position " +
                      $"(seeded donors, {options.ResampleDraws} draws per image and timestep, losses averaged)",
        _ => "set to 0",
    };

    /// <summary>Section 3: entropy.</summary>
    private static void Entropy(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[2]);
        page.Draw("entropy-heatmap-synthetic");
        page.Draw("entropy-heatmap-real");
        page.Draw("entropy-by-timestep");
        page.Draw("jsd-by-timestep");
        pdf.Table(new[] { "t", "JSD mean (nats)", "JSD min .. max", "most divergent head", "mean |entropy gap| (nats)" },
            r.Divergence.Select(d => (IReadOnlyList<string>)new[] { d.Timestep.ToString(CultureInfo.InvariantCulture), F(d.MeanJsdNats, 4), $"{F(d.MinJsdNats, 4)} .. {F(d.MaxJsdNats, 4)}", d.MaxHead, F(d.MeanAbsEntropyGapNats, 4) }).ToList());
    }

    /// <summary>Section 4: examples: what single heads look at on example faces, and where each layer's eye and mouth queries look.</summary>
    private static void Examples(Page page)
    {
        var (pdf, r, ex) = (page.Pdf, page.Results, page.Examples);
        pdf.Heading(Sections[3]);
        pdf.Paragraph($"Attention received by each position (mean over queries) at t = {ex.Timestep}, for the four sharpest self-attention heads and the one whose " +
                      "ablation degrades the denoiser most, on two faces of each data set. Each row names the head, its role, its mean entropy H and its " +
                      "single-head degradation; bright marks where the head looks (each tile scaled to its own maximum); the clean faces are in the top row.", 9);
        page.Draw("attention-colour-bar");   // above the grid, so that both fit on one page
        float cell = Math.Min(80, (pdf.ContentWidth - 90) / ex.Heads.Columns.Count - 3);
        ex.Heads.Draw(pdf, cell, "Example faces with attention overlaid (charts/attention-examples.png).");
        if (ex.Regions is { } regions)
        {
            pdf.Heading("Where the eyes and the mouth look", 2);
            pdf.Paragraph($"Per self-attention layer: the attention of queries in the eyes and in the mouth (outlined in cyan; each query weighted by the part's " +
                          $"mean share of its token), from the mean maps of section 3 (every face of the data set) at t = {ex.Timestep}, averaged over the " +
                          $"layer's heads, over the data set's mean face. Query regions: {ex.RegionSource}.", 9);
            regions.Draw(pdf, Math.Min(80, (pdf.ContentWidth - 90) / regions.Columns.Count - 3), "Mean attention of eye and mouth queries per layer (charts/attention-regions.png).");
        }
    }

    /// <summary>Section 5: cross-attention (text-conditioned models): mass on each token and where each token is attended.</summary>
    private static void CrossAttention(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[4]);
        var c = r.CrossAttention;
        if (c == null)
        {
            pdf.Paragraph("The model has no cross-attention layers: it is not conditioned on text, and every head attends over image positions.", 9);
            return;
        }
        pdf.Paragraph($"{c.Heads.Count} cross-attention heads read {c.KeyTokens} conditioning tokens ({c.Source}). Their keys are tokens, not image positions: " +
                      "they get entropy over tokens (normalised by ln of the token count), the share of attention on each token, and roles of their own (cross-...); " +
                      "the spatial probes of section 3 are not defined for them (METHOD.md 5c).", 9);
        page.Draw("cross-token-mass");
        if (page.TokenMaps is { } maps)
            maps.Draw(pdf, Math.Min(64, (pdf.ContentWidth - 60) / maps.Columns.Count - 3),
                "Where each token is attended (DAAM): the attention each token receives from every position, over all cross-attention layers, heads and timesteps, " +
                "upsampled and drawn over the data set's mean face (each tile normalised to its maximum; percentages: share of attention, real / synthetic). charts/token-maps.png.");
        var rows = c.Heads.Select(h =>
        {
            var real = c.TokenMass.First(x => x.Head == h && x.Timestep == null && x.DataSet == DataSetId.Real.Name);
            var synthetic = c.TokenMass.First(x => x.Head == h && x.Timestep == null && x.DataSet == DataSetId.Synthetic.Name);
            int top = Enumerable.Range(0, real.Mass.Count).MaxBy(t => real.Mass[t] + synthetic.Mass[t]);
            var entropy = r.Entropy.Where(e => e.Head == h && e.Timestep == null).Average(e => e.MeanNats);
            return (IReadOnlyList<string>)new[]
            {
                h, F(entropy, 2), $"{c.Tokens[top]} ({F(100 * real.Mass[top], 1)}% / {F(100 * synthetic.Mass[top], 1)}%)",
                $"{F(100 * real.Mass[0], 1)}% / {F(100 * synthetic.Mass[0], 1)}%", $"{F(100 * real.PaddingMass, 1)}% / {F(100 * synthetic.PaddingMass, 1)}%",
            };
        }).ToList();
        pdf.Table(new[] { "head", "entropy (nats)", "most attended token (real / synthetic)", "first token", "padding" }, rows, new[] { 2.6f, 0.8f, 2f, 1.1f, 1.1f }, 8);
    }

    /// <summary>Section 6: roles.</summary>
    private static void Roles(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[5]);
        page.Draw("role-map");
        pdf.Paragraph($"Role stability (mean adjusted Rand index over bootstrap resamples of images): {F(r.RoleStabilityAri)}; the same with only the k-means restarts " +
                      $"changed (restart noise): {F(r.RoleRestartAgreementAri)}; mean silhouette {F(r.RoleMeanSilhouette)}. Roles are named by the probe their centroid " +
                      $"stands out on most, importance included, when it leads the next probe by {HeadRoles.NamingMarginZ} z, else \"mixed\".", 9);
        if (r.RoleCountSelection.Count > 0)
        {
            page.Draw("role-count");
            var chosen = r.RoleCountSelection.FirstOrDefault(x => x.K == r.Roles.Count);
            pdf.Paragraph($"The data favour k = {r.FavouredRoleCount} roles (largest mean silhouette, " +
                          $"{F(r.RoleCountSelection.First(x => x.K == r.FavouredRoleCount).MeanSilhouette)}); this report uses k = {r.Options.Roles} (--roles)" +
                          (chosen != null ? $", silhouette {F(chosen.MeanSilhouette)}, with {chosen.OneHeadRoles} role(s) of one head and {chosen.NonPositiveSilhouetteRoles} of silhouette <= 0." : "."), 9);
        }
        pdf.Table(new[] { "role", "heads", "entropy nats (mean +/- SD)", "importance %", "named by", "probe profile (z)", "silhouette" },
            r.Roles.Select(x => (IReadOnlyList<string>)new[]
            {
                x.Name, string.Join(" ", x.Heads), $"{F(x.EntropyMeanNats)} +/- {F(x.EntropySdNats)}", F(x.ImportancePercent, 2), x.Naming,
                ReportAssembler.ProbeProfile(x),
                F(x.Silhouette, 2) + (x.Flags.Length > 0 ? $" ({x.Flags})" : ""),
            }).ToList(), new[] { 1.0f, 2.1f, 1.2f, 0.8f, 1.5f, 2.0f, 1.0f });
    }

    /// <summary>Section 7: ablation.</summary>
    private static void Ablation(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[6]);
        page.Draw("degradation-heads-synthetic");
        page.Draw("degradation-heads-real");
        page.Draw("degradation-roles-synthetic");
        page.Draw("degradation-roles-real");
        pdf.Table(new[] { "data", "role ablated", "degradation %", "95% CI", string.Join(" / ", r.Timesteps.Select(t => $"t{t}")), "p (BH)" },
            r.Degradations.Where(d => d.Kind == ConditionKind.Role).Select(d => (IReadOnlyList<string>)new[]
            {
                r.Label(d.DataSet.Name), d.Subject, F(d.DegradationPercent, 2), $"{F(d.CiLowPercent, 2)} .. {F(d.CiHighPercent, 2)}",
                string.Join(" / ", d.PerTimestepPercent.Select(v => F(v, 1))), Pv(d.Test.AdjustedPValue),
            }).ToList(), new[] { 0.9f, 1.3f, 1f, 1.4f, 2.4f, 0.9f });
    }

    /// <summary>Section 8: circuits.</summary>
    private static void Circuits(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[7]);
        pdf.Table(new[] { "data", "circuit size", "effective heads", "circuit heads" },
            r.Circuits.Select(c => (IReadOnlyList<string>)new[] { r.Label(c.DataSet.Name), $"{c.Size} (tau {G(c.TolerancePercent)}%)", F(c.EffectiveHeads, 2), string.Join(" ", c.Heads) }).ToList(),
            new[] { 0.8f, 1f, 1f, 4f });
        page.Draw("circuit-curves");
        pdf.Table(new[] { "complexity ratio real / synthetic", "real", "synthetic", "ratio", "95% CI", "permutation p" },
            r.ComplexityRatios.Select(q => (IReadOnlyList<string>)new[]
            {
                q.Measure, F(q.Real), F(q.Synthetic), F(q.Ratio), q.CiText, $"{q.PValueText} ({q.Permutations} perm.)",
            }).ToList(), new[] { 2.2f, 0.8f, 0.8f, 0.8f, 1.2f, 1.4f });
        foreach (var note in r.ComplexityRatios.Select(q => q.Note).Distinct()) pdf.Paragraph($"Note: {note}.", 8);
        pdf.Paragraph("Each timestep alone (degradations at that timestep; the circuits keep the overall ablation orders):", 9);
        pdf.Table(new[] { "t", "circuit real / synthetic", "effective heads real / synthetic", "ratio (effective heads)", "95% CI", "p", "ratio (circuit size)" },
            r.Timesteps.Select(t =>
            {
                var c = r.CircuitsByTimestep.Where(x => x.Timestep == t).ToList();
                var eff = r.ComplexityRatiosByTimestep.First(x => x.Timestep == t && x.Kind == ComplexityMeasure.EffectiveHeads);
                var size = r.ComplexityRatiosByTimestep.First(x => x.Timestep == t && x.Kind == ComplexityMeasure.CircuitSize);
                return (IReadOnlyList<string>)new[]
                {
                    t.ToString(CultureInfo.InvariantCulture), $"{c.First(x => x.DataSet == DataSetId.Real).Size} / {c.First(x => x.DataSet == DataSetId.Synthetic).Size}",
                    $"{F(c.First(x => x.DataSet == DataSetId.Real).EffectiveHeads, 2)} / {F(c.First(x => x.DataSet == DataSetId.Synthetic).EffectiveHeads, 2)}",
                    F(eff.Ratio), eff.CiText, eff.PValueText, $"{F(size.Ratio)} (p {size.PValueText})",
                };
            }).ToList(), new[] { 0.5f, 1.3f, 1.6f, 1f, 1.2f, 0.8f, 1.4f }, 8);
        pdf.Paragraph($"Ablation cost: {r.Cost.ForwardPasses:N0} forward passes in {r.Cost.RunCalls:N0} ONNX Runtime Run calls, {r.Cost.ForwardGflop:N0} GFLOP " +
                      $"(a condition runs only the model from its first ablated layer on); one full pass per condition, image and timestep would be " +
                      $"{r.Cost.NaiveForwardGflop:N0} GFLOP, and one Run per single-head ablation, image and timestep alone {r.Cost.NaiveRunCallsSingleHeads:N0} Run calls.", 9);
    }

    /// <summary>Section 9: activation patching between the data sets.</summary>
    private static void Patching(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[8]);
        if (r.Patching is not { } p)
        {
            pdf.Paragraph("Not run (--patch-pairs 0).", 9);
            return;
        }
        pdf.Paragraph($"{p.Pairs} seeded pairs of a synthetic and a real image, noised with the same eps at each timestep. For each head, the synthetic image's run " +
                      "takes that head's output z from the real image's run (and the reverse); the head's share is ||eps(patched) - eps(own)||^2 / ||eps(real) - eps(synthetic)||^2, " +
                      "mean over pairs at each timestep, then over timesteps (METHOD.md 5b). Shares of heads whose effects add sum to about 1.", 9);
        page.Draw("patching");
        pdf.Table(new[] { "head", "synthetic run, z from real", "95% CI", "real run, z from synthetic", "95% CI", "synthetic run at " + string.Join(" / ", r.Timesteps.Select(t => $"t{t}")) },
            p.ByShare().Take(12).Select(h => (IReadOnlyList<string>)new[]
            {
                h.Head, F(h.RealIntoSynthetic.Share), $"{F(h.RealIntoSynthetic.CiLow)} .. {F(h.RealIntoSynthetic.CiHigh)}",
                F(h.SyntheticIntoReal.Share), $"{F(h.SyntheticIntoReal.CiLow)} .. {F(h.SyntheticIntoReal.CiHigh)}",
                string.Join(" / ", h.RealIntoSynthetic.PerTimestep.Select(v => F(v, 2))),
            }).ToList(), new[] { 1.4f, 1.1f, 1.1f, 1.1f, 1.1f, 2f }, 8);
        pdf.Paragraph($"Sum over all {p.Heads.Count} heads: {F(p.SumOfSharesRealIntoSynthetic)} (synthetic runs) and {F(p.SumOfSharesSyntheticIntoReal)} (real runs). " +
                      $"Mean output gap per timestep: {string.Join(", ", r.Timesteps.Select((t, k) => $"t{t} {G(p.MeanOutputGapPerTimestep[k])}"))}. " +
                      $"Cost: {p.ForwardPasses:N0} forward passes, {p.ForwardGflop:N0} GFLOP; every head's table row is in patching.csv.", 9);
    }

    /// <summary>Significant results shown in the body at most; every test is in the last appendix and tests.csv.</summary>
    private const int BodyTestRows = 60;

    /// <summary>Section 10: tests: a forest plot per family and the significant results.</summary>
    private static void Tests(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[9]);
        var families = ReportCharts.TestFamilies(r);
        int significant = r.Tests.Count(t => t.AdjustedPValue is double p && p <= 0.05);
        pdf.Paragraph($"{r.Tests.Count} tests in {families.Count} families, each corrected for multiple comparisons within its family; {significant} have an adjusted " +
                      "p at most 0.05. The forest plots show each family's effect sizes (significant first); the table lists the significant results; every test, " +
                      "with its statistic and method, is in the last appendix and in tests.csv.", 9);
        for (int f = 0; f < families.Count; f++) page.Draw(ReportCharts.ForestName(f));
        var shown = ReportCharts.SignificantFirst(r.Tests).Where(t => t.AdjustedPValue is double p && p <= 0.05).Take(BodyTestRows).ToList();
        if (shown.Count == 0)
        {
            pdf.Paragraph("No test has an adjusted p at most 0.05.", 9);
            return;
        }
        pdf.Heading("Significant results (adjusted p <= 0.05)", 2);
        pdf.Table(new[] { "subject", "family", "effect [95% CI]", "p (adj.)" },
            shown.Select(t => (IReadOnlyList<string>)new[] { t.Subject ?? t.Test, $"{ShortFamily(t.Family)} ({t.Correction})", EffectText(t), Pv(t.AdjustedPValue) }).ToList(),
            new[] { 2.2f, 2.6f, 1.8f, 0.8f }, 7);
        if (significant > shown.Count) pdf.Paragraph($"{significant - shown.Count} more significant results are in the last appendix and tests.csv.", 8);
    }

    private static string ShortFamily(string? family) => family is null ? "" : family.Length <= 40 ? family : family[..38] + "...";

    private static string EffectText(Statistics.HypothesisTest t) => t.Effect == null ? "" :
        $"{t.Effect.Name} {G(t.Effect.Value)}" + (t.Effect.CiLow is double lo && t.Effect.CiHigh is double hi ? $" [{G(lo)}, {G(hi)}]" : "");

    /// <summary>The last appendix: every test with its statistic, method and adjusted p.</summary>
    private static void AllTests(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[11]);
        pdf.Paragraph("Every hypothesis test of this report. p (adj.) is adjusted within the family named in the second column; effect sizes with 95% CIs where defined.", 9);
        pdf.Table(new[] { "test", "family (correction)", "n", "statistic", "p", "p (adj.)", "effect" },
            r.Tests.Select(t => (IReadOnlyList<string>)new[]
            {
                t.Test, $"{t.Family} ({t.Correction})", t.N2 is int n2 ? $"{t.N1}/{n2}" : t.N1.ToString(CultureInfo.InvariantCulture),
                $"{t.StatisticName} = {G(t.Statistic)}", t.PValue is null ? "none" : Pv(t.PValue), Pv(t.AdjustedPValue), EffectText(t),
            }).ToList(), new[] { 3f, 2.2f, 0.6f, 1.1f, 0.8f, 0.8f, 1.6f }, 6.5f);
    }

    /// <summary>Section 11: appendix.</summary>
    private static void Appendix(Page page)
    {
        var (pdf, r) = (page.Pdf, page.Results);
        pdf.Heading(Sections[10]);
        pdf.Table(new[] { "option", "value" }, r.Options.AsText().Select(p => (IReadOnlyList<string>)new[] { p.Name, p.Value }).ToList(), new[] { 1f, 3f });
        pdf.Table(new[] { "component", "version / hash" }, new List<IReadOnlyList<string>>
        {
            new[] { "DiffusionCircuits", r.ToolVersion },
            new[] { "results format", r.Format },
            new[] { "definitions", r.Definitions },
            new[] { ".NET", Environment.Version.ToString() },
            new[] { "ONNX Runtime", Version(typeof(Microsoft.ML.OnnxRuntime.InferenceSession)) },
            new[] { "ML.NET", Version(typeof(Microsoft.ML.MLContext)) },
            new[] { "model SHA-256", r.Model.Sha256 },
        }.Concat(r.Data.Select(d => (IReadOnlyList<string>)new[] { $"{d.Name} pixels SHA-256", d.Sha256 })).ToList(), new[] { 1f, 3f });
        pdf.Table(new[] { "stage", "seconds" }, page.Timings.Select(p => (IReadOnlyList<string>)new[] { p.Key, F(p.Value, 1) }).ToList(), new[] { 2f, 1f });
        pdf.Paragraph("Timings are not part of results.json (they differ between runs); they are in timings.json.", 8);
    }
}
