using DiffusionCircuits.Reporting;
using SkiaSharp;
using UglyToad.PdfPig;

namespace DiffusionCircuits.Tests.Reporting;

public class PdfDocumentBuilderTests
{
    private static PdfDocumentBuilder Sample()
    {
        var pdf = new PdfDocumentBuilder("DiffusionCircuits report", "reference model");
        pdf.Heading("Findings");
        pdf.Paragraph(string.Join(" ", Enumerable.Range(0, 400).Select(i => $"word{i}")));
        pdf.Heading("Ablation table", 2);
        pdf.Table(new[] { "head", "degradation %", "p (BH)" },
            Enumerable.Range(0, 120).Select(i => (IReadOnlyList<string>)new[] { $"mid.attn.h{i}", $"{i * 0.5:F1}", "0.001" }).ToList(),
            new[] { 2f, 1f, 1f });
        var plot = new ScottPlot.Plot();
        plot.Add.Scatter(new double[] { 50, 200, 400, 600, 800 }, new double[] { 5.2, 5.3, 5.4, 5.5, 5.5 });
        plot.XLabel("timestep");
        plot.YLabel("entropy nats");
        pdf.Chart(plot, 400, 250, "Entropy against timestep.");
        using var bitmap = new SKBitmap(32, 32);
        bitmap.Erase(SKColors.Red);
        pdf.Image(bitmap, 96, "A red square.");
        return pdf;
    }

    [Fact]
    public void A_report_wraps_text_breaks_tables_across_pages_and_numbers_its_pages()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "r.pdf");
        var builder = Sample();
        builder.Save(path);
        using var pdf = PdfDocument.Open(path);
        int n = pdf.NumberOfPages;
        Assert.Equal(builder.PageCount, n);
        Assert.True(n >= 3, $"expected the 120-row table to need several pages, got {n}");
        var pages = pdf.GetPages().Select(p => string.Join(" ", p.GetWords().Select(w => w.Text))).ToList();
        Assert.Contains("Findings", pages[0]);
        Assert.Contains("word399", string.Join(" ", pages));
        for (int i = 0; i < n; i++) Assert.Contains($"page {i + 1} of {n}", pages[i]);
        Assert.Contains("mid.attn.h119", string.Join(" ", pages));
        // The table's header is repeated on every page it continues on.
        var tablePages = pages.Where(p => p.Contains("mid.attn.h")).ToList();
        Assert.True(tablePages.Count >= 2);
        Assert.All(tablePages, p => Assert.Contains("degradation", p));
        Assert.Contains("timestep", string.Join(" ", pages));           // chart axis label drawn as text
        Assert.Contains("red square", string.Join(" ", pages));
    }

    [Fact]
    public void The_same_content_gives_byte_identical_pdfs()
    {
        var a = new MemoryStream();
        var b = new MemoryStream();
        Sample().Write(a);
        Sample().Write(b);
        Assert.Equal(a.ToArray(), b.ToArray());
    }

    [Fact]
    public void Word_wrap_keeps_every_word_within_the_width_and_splits_overlong_words()
    {
        var lines = PdfDocumentBuilder.Wrap("a quick brown fox " + new string('x', 300), 100, 10);
        Assert.True(lines.Count > 3);
        Assert.Equal("a quick brown fox", lines[0]);
        Assert.Equal(300, string.Concat(lines.Skip(1)).Length);
        Assert.Single(PdfDocumentBuilder.Wrap("", 100, 10));
    }
}
