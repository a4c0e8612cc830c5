using System.Diagnostics;
using SkiaSharp;

namespace DiffusionCircuits.Tests.Reporting;

/// <summary>report.html: the PDF's sections in one self-contained page, and it renders in a real browser.</summary>
public class HtmlReportTests(SmallReport report) : IClassFixture<SmallReport>
{
    private string Html => File.ReadAllText(Path.Combine(report.Dir, "report.html"));

    [Fact]
    public void The_html_report_has_every_section_in_order_charts_as_inline_svg_and_fetches_nothing()
    {
        string html = Html;
        int at = -1;
        foreach (var section in DiffusionCircuits.Reporting.ReportDocument.Sections)
        {
            int next = html.IndexOf($">{System.Net.WebUtility.HtmlEncode(section)}</h2>", at + 1, StringComparison.Ordinal);
            Assert.True(next > at, $"section '{section}' missing or out of order");
            at = next;
        }
        int charts = Directory.GetFiles(Path.Combine(report.Dir, "charts"), "*.svg").Length;
        Assert.True(html.Split("<svg").Length - 1 >= charts - 2, $"{html.Split("<svg").Length - 1} inline SVG charts for {charts} chart files");
        Assert.Contains("data:image/png;base64,", html);                  // the attention examples
        Assert.Contains("@font-face", html);
        foreach (var external in new[] { "src=\"http", "href=\"http", "<link", "<script", "url(http" })
            Assert.DoesNotContain(external, html);
        // The findings paragraph of results.json, escaped as HTML.
        Assert.Contains(System.Net.WebUtility.HtmlEncode(report.Outcome.Results.Findings[..80]), html);
    }

    /// <summary>A headless Chromium (Debian's chromium package; .ci/run installs it).</summary>
    private static string Chromium()
    {
        foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome" })
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        throw new InvalidOperationException("This test needs a headless Chromium on the PATH (Debian: apt-get install chromium; .ci/run installs it).");
    }

    [Fact]
    [Trait("Needs", "chromium")]
    public async Task The_html_report_renders_in_headless_chromium_with_its_charts()
    {
        string png = Path.Combine(Directory.CreateTempSubdirectory("html-shot-").FullName, "shot.png");
        var info = new ProcessStartInfo(Chromium()) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,10000", $"--screenshot={png}",
                     new Uri(Path.Combine(report.Dir, "report.html")).AbsoluteUri })
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "chromium did not finish in 2 minutes");
        Assert.True(File.Exists(png), $"no screenshot; chromium said: {await err}");

        using var shot = SKBitmap.Decode(png);
        Assert.Equal(1000, shot.Width);
        int inked = 0, chartBlue = 0, noticeRed = 0;
        for (int y = 0; y < shot.Height; y += 2)
            for (int x = 0; x < shot.Width; x += 2)
            {
                var c = shot.GetPixel(x, y);
                if (c.Red < 200 || c.Green < 200 || c.Blue < 200) inked++;
                if (Math.Abs(c.Red - 0x1f) < 30 && Math.Abs(c.Green - 0x77) < 30 && Math.Abs(c.Blue - 0xb4) < 30) chartBlue++;   // the charts' first colour
                if (c.Red > 150 && c.Green < 60 && c.Blue < 60) noticeRed++;                                                   // the stand-in notice
            }
        double share = inked / (shot.Width * shot.Height / 4.0);
        Assert.True(share > 0.03, $"only {share:P1} of the page is drawn on");
        Assert.True(chartBlue > 200, $"{chartBlue} chart-blue pixels: the SVG charts did not render");
        Assert.True(noticeRed > 50, "the red stand-in notice is not visible");
    }
}
