using DiffusionCircuits.Reporting;
using ScottPlot;

namespace DiffusionCircuits.Tests.Reporting;

/// <summary>Charts never clip their titles: a title wider than the data area is wrapped (and shrunk if need be) to fit.</summary>
public class ChartLayoutTests
{
    private static ReportChart Chart(string title, bool legendOutside)
    {
        var plot = new Plot();
        plot.Title(title, 12);
        var line = plot.Add.Scatter(new double[] { 1, 2, 3 }, new double[] { 1, 4, 9 });
        line.LegendText = "real: circuit 7 heads";
        if (legendOutside) plot.ShowLegend(Edge.Right);
        return new ReportChart("t", "caption", plot, 495, 260);
    }

    [Fact]
    public void A_long_title_beside_an_outside_legend_is_wrapped_to_the_data_area()
    {
        var chart = Chart("Circuit search: joint ablation in ascending importance of every head of the model", legendOutside: true);
        ReportCharts.FitTitle(chart);
        var lines = chart.Plot.Axes.Title.Label.Text.Split('\n');
        Assert.InRange(lines.Length, 2, 2);
        using var legendFont = PdfDocumentBuilder.Font(chart.Plot.Legend.FontSize ?? 12, false);
        float dataArea = 495 - 60 - (legendFont.MeasureText("real: circuit 7 heads") + 50);
        using var font = PdfDocumentBuilder.Font(chart.Plot.Axes.Title.Label.FontSize, true);
        Assert.All(lines, l => Assert.True(font.MeasureText(l) <= dataArea, $"'{l}' is wider than the data area"));
    }

    [Fact]
    public void A_title_that_fits_is_left_alone()
    {
        var chart = Chart("Entropy against timestep", legendOutside: false);
        ReportCharts.FitTitle(chart);
        Assert.Equal("Entropy against timestep", chart.Plot.Axes.Title.Label.Text);
        Assert.Equal(12, chart.Plot.Axes.Title.Label.FontSize);
    }
}

/// <summary>Tables keep at least three rows together across a page break.</summary>
public class TableLayoutTests
{
    [Fact]
    public void A_break_that_would_leave_one_row_alone_moves_rows_so_the_last_page_holds_three()
    {
        // 20 rows of 10 points from 0 on pages of 100: greedy breaks at 10 rows (rows 10..19: all fit); with 11 rows
        // per page the greedy split is 10 + 1, which must become 8 + 3.
        var heights = Enumerable.Repeat(10f, 11).ToArray();
        var breaks = PdfDocumentBuilder.PageBreaks(heights, first: 0, top: 0, bottom: 100);
        Assert.Equal(new[] { 8 }, breaks.Order());
        // Two full pages and a third with one row: the third gets three.
        breaks = PdfDocumentBuilder.PageBreaks(Enumerable.Repeat(10f, 21).ToArray(), first: 0, top: 0, bottom: 100);
        Assert.Equal(new[] { 10, 18 }, breaks.Order());
        // Nothing to move when the table fits.
        Assert.Empty(PdfDocumentBuilder.PageBreaks(Enumerable.Repeat(10f, 5).ToArray(), first: 0, top: 0, bottom: 100));
    }

    [Fact]
    public void A_table_that_would_start_with_fewer_than_three_rows_at_the_foot_of_a_page_starts_on_the_next()
    {
        var pdf = new PdfDocumentBuilder("t");
        // Room for the header and one or two rows (16.4 points each at size 8), not for the header and three.
        while (pdf.RemainingHeight > 50) pdf.Paragraph("filler line", 6);
        Assert.InRange(pdf.RemainingHeight, 33, 65);
        int before = pdf.PageCount;
        pdf.Table(new[] { "a", "b" }, Enumerable.Range(0, 10).Select(i => (IReadOnlyList<string>)new[] { $"{i}", "x" }).ToList());
        Assert.True(pdf.PageCount > before, "the table should have moved to a new page");
    }
}
