using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Onnx;
using ScottPlot;

namespace DiffusionCircuits.Reporting;

/// <summary>A chart of the report: a name (file stem), a caption, and the plot at its intended size in points.</summary>
internal sealed record ReportChart(string Name, string Caption, Plot Plot, int Width, int Height);

/// <summary>The report's charts, each a function of the results (ScottPlot 5, embedded DejaVu fonts).</summary>
internal static class ReportCharts
{
    private static readonly Lazy<string> FontName = new(() =>
    {
        // ScottPlot looks fonts up by name; register the embedded DejaVu Sans so charts look the same on every machine.
        string dir = Path.Combine(Path.GetTempPath(), "diffcircuits-fonts");
        Directory.CreateDirectory(dir);
        foreach (var (file, bold) in new[] { ("DejaVuSans.ttf", false), ("DejaVuSans-Bold.ttf", true) })
        {
            string path = Path.Combine(dir, file);
            if (!File.Exists(path))
            {
                using var s = typeof(ReportCharts).Assembly.GetManifestResourceStream("DiffusionCircuits.Fonts." + file)!;
                var bytes = new MemoryStream();
                s.CopyTo(bytes);
                AtomicFile.WriteAllBytes(path, bytes.ToArray());
            }
            Fonts.AddFontFile("DejaVu Sans Embedded", path, bold, false);
        }
        return "DejaVu Sans Embedded";
    });

    private static readonly Color[] Palette =
    {
        Color.FromHex("#1f77b4"), Color.FromHex("#d62728"), Color.FromHex("#2ca02c"), Color.FromHex("#ff7f0e"),
        Color.FromHex("#9467bd"), Color.FromHex("#8c564b"), Color.FromHex("#e377c2"), Color.FromHex("#7f7f7f"),
        Color.FromHex("#bcbd22"), Color.FromHex("#17becf"),
    };

    public static Color ColorOf(int i) => Palette[i % Palette.Length];

    private static Plot NewPlot(string title, string x, string y)
    {
        var plot = new Plot();
        plot.Font.Set(FontName.Value);
        plot.Title(title, 12);
        plot.XLabel(x, 11);
        plot.YLabel(y, 11);
        return plot;
    }

    /// <summary>One bar per head along x, labelled with the head names written steeply so that 24 or more fit.</summary>
    private static void HeadTicks(Plot plot, IReadOnlyList<string> names)
    {
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, names.Count).Select(i => (double)i).ToArray(), names.ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = -60;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Bottom.TickLabelStyle.FontSize = 8;
        plot.Axes.Bottom.MinimumSize = 70;
        plot.Axes.Margins(bottom: 0);
    }

    public static IReadOnlyList<ReportChart> All(ReportResults r, CircuitAnalysisResult a, IReadOnlyList<AttentionLayer> layers)
    {
        var charts = new List<ReportChart>();
        var sets = new[] { DataSetId.Synthetic, DataSetId.Real };
        foreach (var set in sets) charts.Add(EntropyHeatmap(r, layers, set.Name));
        charts.Add(EntropyByTimestep(r, layers));
        charts.Add(JsdByTimestep(r));
        charts.Add(AttentionColourBar());
        charts.Add(RoleMap(r));
        if (r.RoleCountSelection.Count > 0) charts.Add(RoleCount(r));
        foreach (var set in sets) charts.Add(HeadDegradation(r, set));
        foreach (var set in sets) charts.Add(RoleDegradation(r, set));
        charts.Add(CircuitCurves(r));
        if (r.CrossAttention != null) charts.Add(TokenMass(r, r.CrossAttention));
        if (r.Patching != null) charts.Add(PatchingShares(r.Patching));
        foreach (var (family, index) in TestFamilies(r).Select((f, i) => (f, i))) charts.Add(Forest(family, index, r.Tests.Where(t => t.Family == family).ToList()));
        foreach (var chart in charts) FitTitle(chart);
        return charts;
    }

    /// <summary>
    /// Wraps (and if need be shrinks) a chart's title to the width of its data area, which a legend outside the plot
    /// narrows: ScottPlot centres the title over the data area and clips what does not fit.
    /// </summary>
    internal static void FitTitle(ReportChart chart)
    {
        var label = chart.Plot.Axes.Title.Label;
        if (string.IsNullOrEmpty(label.Text)) return;
        float legend = 0;
        if (chart.Plot.Axes.GetPanels().Any(p => p is ScottPlot.Panels.LegendPanel))
        {
            using var legendFont = PdfDocumentBuilder.Font(chart.Plot.Legend.FontSize ?? 12, false);
            legend = chart.Plot.Legend.GetItems().Select(i => legendFont.MeasureText(i.LabelText ?? "")).DefaultIfEmpty(0).Max() + 50;
        }
        float available = Math.Max(chart.Width / 3f, chart.Width - 60 - legend);
        string text = label.Text.Replace('\n', ' ');
        for (float size = label.FontSize; ; size -= 1)
        {
            var lines = PdfDocumentBuilder.Wrap(text, available, size, bold: true);
            // Two lines at most while the font can shrink; at 9 points, as many lines as it takes.
            if (lines.Count <= 2 || size <= 9)
            {
                label.Text = string.Join("\n", lines);
                label.FontSize = size;
                return;
            }
        }
    }

    /// <summary>The families of the report's tests, in the order of its table.</summary>
    public static IReadOnlyList<string> TestFamilies(ReportResults r) => r.Tests.Select(t => t.Family ?? "unnamed family").Distinct().ToList();

    /// <summary>The chart name of a test family's forest plot.</summary>
    public static string ForestName(int familyIndex) => $"forest-{familyIndex + 1}";

    /// <summary>Rows a forest plot shows at most (the rest are in the appendix and tests.csv).</summary>
    public const int ForestRows = 40;

    /// <summary>The order tests are shown in: significant (adjusted p &lt;= 0.05) first, then by adjusted p, then by name.</summary>
    public static IEnumerable<Statistics.HypothesisTest> SignificantFirst(IEnumerable<Statistics.HypothesisTest> tests) =>
        tests.OrderBy(t => t.AdjustedPValue is double p && p <= 0.05 ? 0 : 1).ThenBy(t => t.AdjustedPValue ?? double.PositiveInfinity).ThenBy(t => t.Test, StringComparer.Ordinal);

    /// <summary>
    /// A forest plot of one family's effect sizes: one row per test (significant first), the effect as a dot (filled
    /// when the adjusted p is at most 0.05), its 95% CI as a line where defined, and the value of no effect as a line.
    /// </summary>
    public static ReportChart Forest(string family, int familyIndex, IReadOnlyList<Statistics.HypothesisTest> tests)
    {
        var rows = SignificantFirst(tests).Where(t => t.Effect != null).Take(ForestRows).ToList();
        string effect = rows.FirstOrDefault()?.Effect?.Name ?? "effect";
        var plot = NewPlot($"Effect sizes: {family}", effect, "");
        double none = effect == "ratio" ? 1 : 0;
        plot.Add.VerticalLine(none, 1, Colors.Gray);
        for (int i = 0; i < rows.Count; i++)
        {
            var e = rows[i].Effect!;
            double y = rows.Count - 1 - i;
            bool significant = rows[i].AdjustedPValue is double p && p <= 0.05;
            if (e.CiLow is double lo && e.CiHigh is double hi && double.IsFinite(lo) && double.IsFinite(hi))
            {
                var ci = plot.Add.Line(lo, y, hi, y);
                ci.Color = Colors.Black;
                ci.LineWidth = 1.2f;
            }
            if (!double.IsFinite(e.Value)) continue;
            var dot = plot.Add.Marker(e.Value, y, significant ? MarkerShape.FilledCircle : MarkerShape.OpenCircle, 6, significant ? ColorOf(1) : ColorOf(0));
            if (i == 0 || rows.Take(i).All(r => (r.AdjustedPValue is double q && q <= 0.05) != significant))
                dot.LegendText = significant ? "adjusted p <= 0.05" : "adjusted p > 0.05";
        }
        plot.Axes.Left.SetTicks(Enumerable.Range(0, rows.Count).Select(i => (double)(rows.Count - 1 - i)).ToArray(), rows.Select(t => t.Subject ?? t.Test).ToArray());
        plot.Axes.Left.TickLabelStyle.FontSize = 8;
        plot.Axes.Margins(left: 0.05, right: 0.05, bottom: 0.02, top: 0.02);
        plot.ShowLegend(Alignment.LowerRight);
        int more = tests.Count - rows.Count;
        return new ReportChart(ForestName(familyIndex), $"{family}: {effect} per test with its 95% CI where defined (significant first; filled: adjusted p <= 0.05; " +
                                                        $"grey line: no effect){(more > 0 ? $"; {more} more tests in the appendix and tests.csv" : "")}.",
            plot, 495, Math.Min(640, 70 + 11 * rows.Count));
    }

    /// <summary>The heads with the largest activation-patching shares, both directions side by side with 95% CIs over pairs (METHOD.md 5b).</summary>
    public static ReportChart PatchingShares(PatchingSummary p, int heads = 16)
    {
        var rows = p.ByShare().Take(heads).ToList();
        var plot = NewPlot("Activation patching per head", "", "share of the output difference");
        for (int i = 0; i < rows.Count; i++)
            foreach (var (share, side, label) in new[] { (rows[i].RealIntoSynthetic, 0, "synthetic run, z from real"), (rows[i].SyntheticIntoReal, 1, "real run, z from synthetic") })
            {
                double x = i + (side - 0.5) * 0.38;
                var bar = plot.Add.Bar(new Bar { Position = x, Value = double.IsFinite(share.Share) ? share.Share : 0, Size = 0.36, FillColor = ColorOf(side), LineColor = ColorOf(side) });
                if (i == 0) bar.LegendText = label;
                if (double.IsFinite(share.CiLow) && double.IsFinite(share.CiHigh))
                {
                    var ci = plot.Add.Line(x, share.CiLow, x, share.CiHigh);
                    ci.Color = Colors.Black;
                    ci.LineWidth = 1f;
                }
            }
        HeadTicks(plot, rows.Select(h => h.Head).ToList());
        // Bars fall off to the right, so the legend fits inside without hiding any.
        plot.ShowLegend(Alignment.UpperRight);
        return new ReportChart("patching", $"Share of the output difference between paired synthetic and real images ({p.Pairs} pairs, same noise) that flows through each head: " +
                                           $"the run of one image with that head's output taken from the other, mean over pairs and timesteps; the {rows.Count} heads with the largest mean share, " +
                                           "black lines 95% bootstrap CIs over pairs.", plot, 495, 280);
    }

    /// <summary>Mean silhouette and bootstrap stability of k roles for each k: how many distinct roles the data support (METHOD.md 4).</summary>
    public static ReportChart RoleCount(ReportResults r)
    {
        var plot = NewPlot("How many roles do the data support?", "roles k", "mean silhouette / stability (ARI)");
        var ks = r.RoleCountSelection.Select(x => (double)x.K).ToArray();
        var silhouette = plot.Add.Scatter(ks, r.RoleCountSelection.Select(x => x.MeanSilhouette).ToArray(), ColorOf(0));
        silhouette.LegendText = "mean silhouette";
        silhouette.LineWidth = 2;
        var stability = plot.Add.Scatter(ks, r.RoleCountSelection.Select(x => x.StabilityAri).ToArray(), ColorOf(1));
        stability.LegendText = "stability (ARI)";
        stability.LineWidth = 2;
        stability.MarkerShape = MarkerShape.FilledSquare;
        if (r.FavouredRoleCount is int favoured)
        {
            var line = plot.Add.VerticalLine(favoured, 1.5f, ColorOf(2));
            line.LegendText = $"favoured: k = {favoured}";
        }
        var used = plot.Add.VerticalLine(r.Roles.Count, 1.5f, Colors.Gray);
        used.LegendText = $"used: k = {r.Roles.Count}";
        plot.ShowLegend(Edge.Right);
        return new ReportChart("role-count", "Mean silhouette of k roles and their stability over bootstrap resamples of images (adjusted Rand index), for each k; " +
                                             "the favoured k has the largest silhouette.", plot, 495, 220);
    }

    /// <summary>Mean mass on each prompt token over every cross-attention head and timestep, one bar per data set (METHOD.md 5c).</summary>
    public static ReportChart TokenMass(ReportResults r, CrossAttentionSummary c)
    {
        var plot = NewPlot("Cross-attention: attention on each token", "", "share of attention (mean over heads, t)");
        var sets = new[] { DataSetId.Real, DataSetId.Synthetic };
        // The padding after the prompt is the last bar.
        var labels = c.Tokens.Append("(padding)").ToArray();
        for (int s = 0; s < sets.Length; s++)
        {
            var mass = c.MeanMass(sets[s]).Append(c.MeanPaddingMass(sets[s])).ToArray();
            for (int t = 0; t < mass.Length; t++)
            {
                var bar = plot.Add.Bar(new Bar { Position = t + (s - 0.5) * 0.38, Value = mass[t], Size = 0.36, FillColor = ColorOf(s), LineColor = ColorOf(s) });
                if (t == 0) bar.LegendText = r.Label(sets[s].Name);
            }
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, labels.Length).Select(i => (double)i).ToArray(), labels);
        plot.Axes.Bottom.TickLabelStyle.Rotation = -45;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleRight;
        plot.Axes.Bottom.TickLabelStyle.FontSize = 9;
        plot.Axes.Bottom.MinimumSize = 60;
        plot.Axes.Margins(bottom: 0);
        plot.ShowLegend(Edge.Right);
        return new ReportChart("cross-token-mass", $"Share of each cross-attention head's attention on each token of {(c.Prompt != null ? $"\"{c.Prompt}\"" : c.Source)}, " +
                                                   "mean over queries, images, heads and timesteps; the last bar is the padding after the prompt.", plot, 495, 240);
    }

    /// <summary>Mean entropy (nats, over images and timesteps) per layer (rows) and head (columns), with values written in the cells.</summary>
    public static ReportChart EntropyHeatmap(ReportResults r, IReadOnlyList<AttentionLayer> layers, string set)
    {
        int maxHeads = layers.Max(l => l.Heads);
        var values = new double[layers.Count, maxHeads];
        var plot = NewPlot($"Attention entropy per head ({r.Label(set)})", "head", "layer");
        for (int l = 0; l < layers.Count; l++)
            for (int h = 0; h < maxHeads; h++)
            {
                var row = h < layers[l].Heads ? r.Entropy.FirstOrDefault(e => e.DataSet == set && e.Timestep == null && e.Head == layers[l].HeadName(h)) : null;
                values[l, h] = row?.MeanNats ?? double.NaN;
            }
        // Cells as filled rectangles (vectors): Skia's PDF back end mangles ScottPlot's heatmap bitmap.
        var colormap = new ScottPlot.Colormaps.Viridis();
        double lo = Min(values), hi = Max(values);
        for (int l = 0; l < layers.Count; l++)
            for (int h = 0; h < layers[l].Heads; h++)
            {
                double v = values[l, h], f = hi > lo ? (v - lo) / (hi - lo) : 0.5;
                var cell = plot.Add.Rectangle(h - 0.5, h + 0.5, l - 0.5, l + 0.5);
                cell.FillColor = colormap.GetColor(f);
                cell.LineColor = Colors.White;
                cell.LineWidth = 1;
                var text = plot.Add.Text(v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture), h, l);
                text.LabelFontSize = 9;
                text.LabelFontColor = f > 0.5 ? Colors.Black : Colors.White;
                text.LabelAlignment = Alignment.MiddleCenter;
            }
        plot.Title($"Attention entropy per head ({r.Label(set)}; nats, {lo:F2} dark .. {hi:F2} light)", 12);
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, maxHeads).Select(h => (double)h).ToArray(), Enumerable.Range(0, maxHeads).Select(h => $"h{h}").ToArray());
        plot.Axes.Left.SetTicks(Enumerable.Range(0, layers.Count).Select(l => (double)l).ToArray(), layers.Select(l => l.Name).ToArray());
        plot.Axes.SetLimits(-0.5, maxHeads - 0.5, layers.Count - 0.5, -0.5);   // first layer on top
        plot.HideGrid();
        return new ReportChart($"entropy-heatmap-{set}", $"Mean attention entropy (nats) of every head on {r.Label(set)} faces, averaged over images and timesteps. " +
                                                         "Lower is sharper attention; ln S is uniform attention over S tokens.", plot, 495, 210);
    }

    /// <summary>The scale of the attention overlays (<see cref="HeatOverlay"/>): the colour map over 0..1 of each tile's maximum, as vector cells.</summary>
    public static ReportChart AttentionColourBar()
    {
        const int steps = 64;
        var plot = NewPlot("", "attention, as a fraction of the tile's largest value", "");
        for (int i = 0; i < steps; i++)
        {
            var cell = plot.Add.Rectangle(i / (double)steps, (i + 1) / (double)steps, 0, 1);
            cell.FillColor = HeatOverlay.Colormap.GetColor((i + 0.5) / steps);
            cell.LineWidth = 0;
        }
        plot.Axes.SetLimits(0, 1, 0, 1);
        plot.Axes.Bottom.Label.FontSize = 9;
        plot.Axes.Bottom.TickLabelStyle.FontSize = 9;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual();
        plot.Axes.Bottom.SetTicks(new[] { 0, 0.25, 0.5, 0.75, 1 }, new[] { "0", "0.25", "0.5", "0.75", "1" });
        plot.HideGrid();
        return new ReportChart("attention-colour-bar", $"Colour scale of the attention pictures: the Inferno colour map, blended {HeatOverlay.Blend:P0} over a grey copy of the face.",
            plot, 495, 64);
    }

    private static double Min(double[,] v) => v.Cast<double>().Where(double.IsFinite).DefaultIfEmpty(0).Min();
    private static double Max(double[,] v) => v.Cast<double>().Where(double.IsFinite).DefaultIfEmpty(0).Max();

    public static ReportChart EntropyByTimestep(ReportResults r, IReadOnlyList<AttentionLayer> layers)
    {
        var plot = NewPlot("Entropy against timestep", "timestep t", "mean entropy over heads (nats)");
        var ts = r.Timesteps.Select(t => (double)t).ToArray();
        for (int l = 0; l < layers.Count; l++)
            foreach (var (set, dashed) in new[] { (DataSetId.Real.Name, false), (DataSetId.Synthetic.Name, true) })
            {
                var inLayer = Enumerable.Range(0, layers[l].Heads).Select(layers[l].HeadName).ToHashSet();
                var ys = r.Timesteps.Select(t => r.Entropy.Where(e => e.DataSet == set && e.Timestep == t && inLayer.Contains(e.Head))
                    .Average(e => e.MeanNats)).ToArray();
                var line = plot.Add.Scatter(ts, ys, ColorOf(l));
                line.LegendText = $"{layers[l].Name} ({r.Label(set)})";
                line.LineWidth = 2;
                if (dashed)
                {
                    line.LineWidth = 1;
                    line.MarkerShape = MarkerShape.OpenSquare;
                    line.MarkerSize = 7;
                }
                else line.MarkerSize = 6;
            }
        plot.ShowLegend(Edge.Right);
        return new ReportChart("entropy-by-timestep", "Mean entropy of each layer's heads against the denoising timestep, real (thick lines, dots) and synthetic (thin lines, open squares) faces.", plot, 495, 260);
    }

    public static ReportChart JsdByTimestep(ReportResults r)
    {
        var plot = NewPlot("Divergence between data sets per timestep", "timestep t", "Jensen-Shannon divergence (nats)");
        var ts = r.Divergence.Select(d => (double)d.Timestep).ToArray();
        var mean = plot.Add.Scatter(ts, r.Divergence.Select(d => d.MeanJsdNats).ToArray(), ColorOf(0));
        mean.LegendText = "mean over heads";
        mean.LineWidth = 2;
        var max = plot.Add.Scatter(ts, r.Divergence.Select(d => d.MaxJsdNats).ToArray(), ColorOf(1));
        max.LegendText = "max over heads";
        max.MarkerShape = MarkerShape.FilledTriangleUp;
        var min = plot.Add.Scatter(ts, r.Divergence.Select(d => d.MinJsdNats).ToArray(), ColorOf(2));
        min.LegendText = "min over heads";
        min.MarkerShape = MarkerShape.FilledTriangleDown;
        var gap = plot.Add.Scatter(ts, r.Divergence.Select(d => d.MeanAbsEntropyGapNats).ToArray(), ColorOf(3));
        gap.LegendText = "mean |entropy gap|";
        plot.ShowLegend(Edge.Right);
        plot.Axes.SetLimitsY(0, Math.Max(1e-6, r.Divergence.Max(d => Math.Max(d.MaxJsdNats, d.MeanAbsEntropyGapNats))) * 1.1);
        return new ReportChart("jsd-by-timestep", "JSD of the image-averaged attention maps of real and synthetic faces (METHOD.md 2), its range over heads, and the mean absolute entropy gap.", plot, 495, 250);
    }

    public static ReportChart RoleMap(ReportResults r)
    {
        var plot = NewPlot("Head roles (PCA of standardised head features)", "PC 1", "PC 2");
        for (int i = 0; i < r.Roles.Count; i++)
        {
            var role = r.Roles[i];
            var points = plot.Add.ScatterPoints(role.ProjectionX, role.ProjectionY, ColorOf(i));
            points.MarkerSize = 9;
            points.LegendText = role.Name;
            for (int j = 0; j < role.Heads.Count; j++)
            {
                var label = plot.Add.Text(role.Heads[j], role.ProjectionX[j], role.ProjectionY[j]);
                label.LabelFontSize = 7;
                label.LabelFontColor = Colors.DimGray;
                label.LabelOffsetX = 5;
            }
        }
        plot.ShowLegend(Edge.Right);
        return new ReportChart("role-map", "Every head's standardised features (normalised entropy, distance, edge, texture, semantic, symmetry, importance) " +
                                           "projected on their first two principal components, coloured by k-means role.", plot, 495, 330);
    }

    public static ReportChart HeadDegradation(ReportResults r, DataSetId set)
    {
        var rows = r.Degradations.Where(d => d.DataSet == set && d.Kind == ConditionKind.Head)
            .OrderByDescending(d => d.DegradationPercent).ThenBy(d => d.Condition, StringComparer.Ordinal).ToList();
        var plot = NewPlot($"Single-head ablation ({r.Label(set.Name)} faces)", "", "degradation (%)");
        for (int i = 0; i < rows.Count; i++)
        {
            var bar = plot.Add.Bar(i, rows[i].DegradationPercent);
            bar.Color = ColorOf(0);
            var ci = plot.Add.Line(i, rows[i].CiLowPercent, i, rows[i].CiHighPercent);
            ci.Color = Colors.Black;
            ci.LineWidth = 1.2f;
        }
        HeadTicks(plot, rows.Select(d => d.Condition).ToList());
        return new ReportChart($"degradation-heads-{set}", $"Degradation of the denoising loss when each head alone is ablated ({r.Options.Ablation}), {r.Label(set.Name)} faces, sorted; black lines are 95% bootstrap CIs over images.", plot, 495, 280);
    }

    public static ReportChart RoleDegradation(ReportResults r, DataSetId set)
    {
        var rows = r.Degradations.Where(d => d.DataSet == set && d.Kind == ConditionKind.Role).ToList();
        var plot = NewPlot($"Role ablation per timestep ({r.Label(set.Name)} faces)", "timestep t", "degradation (%)");
        var ts = r.Timesteps.Select(t => (double)t).ToArray();
        for (int i = 0; i < rows.Count; i++)
        {
            var line = plot.Add.Scatter(ts, rows[i].PerTimestepPercent.ToArray(), ColorOf(i));
            line.LegendText = rows[i].Subject;
            line.LineWidth = 2;
        }
        plot.ShowLegend(Edge.Right);
        return new ReportChart($"degradation-roles-{set}", $"Degradation when all heads of a role are zeroed together, per timestep, {r.Label(set.Name)} faces.", plot, 495, 250);
    }

    public static ReportChart CircuitCurves(ReportResults r)
    {
        var plot = NewPlot("Circuit search: joint ablation in ascending importance", "heads ablated", "joint degradation (%)");
        for (int i = 0; i < r.Circuits.Count; i++)
        {
            var c = r.Circuits[i];
            var xs = Enumerable.Range(1, c.PrefixDegradationPercent.Count).Select(x => (double)x).ToArray();
            var line = plot.Add.Scatter(xs, c.PrefixDegradationPercent.ToArray(), ColorOf(i));
            line.LegendText = $"{r.Label(c.DataSet.Name)}: circuit {c.Size} heads";
            line.LineWidth = 2;
        }
        var tau = plot.Add.HorizontalLine(r.Circuits[0].TolerancePercent, 1.5f, Colors.Gray);
        tau.LegendText = $"tau = {r.Circuits[0].TolerancePercent:G3}%";
        plot.Axes.SetLimitsY(0, Math.Max(r.Circuits[0].TolerancePercent * 4, 1));
        // Inside, top left: the curves start flat there, and the data area keeps the chart's width.
        plot.Legend.Alignment = Alignment.UpperLeft;
        plot.ShowLegend();
        return new ReportChart("circuit-curves", "Joint degradation as heads are zeroed in ascending order of importance (each point a measured joint ablation, " +
                                                 "y-axis cut at 4 tau); a data set's circuit is the heads left when the curve first exceeds tau.", plot, 495, 260);
    }

    public static void SavePng(ReportChart chart, string path)
    {
        chart.Plot.ScaleFactor = 2;   // a 2x raster for screens; the PDF draws the same plot as vectors at 1x
        try { AtomicFile.WriteAllBytes(path, chart.Plot.GetImageBytes(chart.Width * 2, chart.Height * 2, ImageFormat.Png)); }
        finally { chart.Plot.ScaleFactor = 1; }
    }

    public static void SaveSvg(ReportChart chart, string path) =>
        AtomicFile.WriteAllText(path, chart.Plot.GetSvgXml(chart.Width, chart.Height));
}
