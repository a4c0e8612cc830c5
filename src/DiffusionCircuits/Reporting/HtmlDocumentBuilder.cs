using System.Net;
using System.Text;
using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// The report as one self-contained HTML page: the same sections as the PDF, charts as inline SVG, pictures as PNG data
/// URIs, the report's fonts embedded, a table of contents; nothing is fetched from anywhere. For reading in a browser
/// and as a CI artefact.
/// </summary>
internal sealed class HtmlDocumentBuilder(string title, string? subtitle = null) : IReportDocument
{
    private readonly StringBuilder _body = new();
    private readonly List<(string Id, string Text)> _sections = new();

    /// <summary>Points to CSS pixels.</summary>
    private const float Px = 96f / 72f;

    public float ContentWidth => PdfDocumentBuilder.PageWidth - 2 * PdfDocumentBuilder.Margin;

    private static string E(string text) => WebUtility.HtmlEncode(text);

    public void Heading(string text, int level = 1)
    {
        if (level == 1)
        {
            string id = $"s{_sections.Count + 1}";
            _sections.Add((id, text));
            _body.Append($"<h2 id=\"{id}\">{E(text)}</h2>\n");
        }
        else _body.Append($"<h{Math.Min(6, level + 2)}>{E(text)}</h{Math.Min(6, level + 2)}>\n");
    }

    public void Paragraph(string text, float size = 10, bool bold = false) =>
        _body.Append($"<p style=\"font-size:{size * Px:F1}px\">{(bold ? $"<b>{E(text)}</b>" : E(text))}</p>\n");

    public void Notice(string text, float size = 10) => _body.Append($"<div class=\"notice\">{E(text)}</div>\n");

    public void Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows, IReadOnlyList<float>? columnWeights = null, float size = 8)
    {
        var weights = columnWeights ?? Enumerable.Repeat(1f, header.Count).ToArray();
        float total = weights.Sum();
        _body.Append($"<table style=\"font-size:{size * Px:F1}px\"><colgroup>");
        foreach (var w in weights) _body.Append($"<col style=\"width:{100 * w / total:F1}%\">");
        _body.Append("</colgroup><thead><tr>");
        foreach (var h in header) _body.Append($"<th>{E(h)}</th>");
        _body.Append("</tr></thead><tbody>\n");
        foreach (var row in rows)
        {
            if (row.Count != header.Count) throw new ArgumentException($"Table row has {row.Count} cells; the header has {header.Count}.");
            _body.Append("<tr>");
            foreach (var cell in row) _body.Append($"<td>{E(cell)}</td>");
            _body.Append("</tr>\n");
        }
        _body.Append("</tbody></table>\n");
    }

    private static string Png(SKBitmap bitmap)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return "data:image/png;base64," + Convert.ToBase64String(data.ToArray());
    }

    public void Image(SKBitmap bitmap, float width, string? caption = null)
    {
        _body.Append($"<figure><img alt=\"{E(caption ?? "picture")}\" src=\"{Png(bitmap)}\" style=\"width:{width * Px:F0}px\">");
        if (caption != null) _body.Append($"<figcaption>{E(caption)}</figcaption>");
        _body.Append("</figure>\n");
    }

    public void TileGrid(IReadOnlyList<string> columns, IReadOnlyList<string> columnNotes, IReadOnlyList<string> rows, SKBitmap[,] tiles, float cell, string? caption = null)
    {
        _body.Append("<figure><table class=\"tiles\"><thead><tr><th></th>");
        for (int c = 0; c < columns.Count; c++) _body.Append($"<th>{E(columns[c])}<br><small>{E(columnNotes[c])}</small></th>");
        _body.Append("</tr></thead><tbody>");
        for (int r = 0; r < rows.Count; r++)
        {
            _body.Append($"<tr><th>{E(rows[r]).Replace("\n", "<br>")}</th>");
            for (int c = 0; c < columns.Count; c++) _body.Append($"<td><img alt=\"{E(rows[r])}, {E(columns[c])}\" src=\"{Png(tiles[r, c])}\" style=\"width:{cell * Px:F0}px\"></td>");
            _body.Append("</tr>");
        }
        _body.Append("</tbody></table>");
        if (caption != null) _body.Append($"<figcaption>{E(caption)}</figcaption>");
        _body.Append("</figure>\n");
    }

    public void Chart(ScottPlot.Plot plot, float width, float height, string? caption = null)
    {
        // Drawn at the PDF's size in points and scaled to CSS pixels, so text keeps the same proportions.
        string svg = plot.GetSvgXml((int)width, (int)height);
        _body.Append($"<figure class=\"chart\" style=\"width:{width * Px:F0}px\">{svg}");
        if (caption != null) _body.Append($"<figcaption>{E(caption)}</figcaption>");
        _body.Append("</figure>\n");
    }

    /// <summary>The whole page.</summary>
    public string Html()
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        html.Append($"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{E(title)}</title>\n<style>\n");
        foreach (var (file, weight) in new[] { ("DejaVuSans.ttf", "normal"), ("DejaVuSans-Bold.ttf", "bold") })
            html.Append($"@font-face {{ font-family: 'DejaVu Sans Embedded'; font-weight: {weight}; src: url(data:font/ttf;base64,{Convert.ToBase64String(Font(file))}) format('truetype'); }}\n");
        html.Append(Style);
        html.Append("</style></head><body>\n");
        html.Append($"<header><h1>{E(title)}</h1>{(subtitle != null ? $"<p class=\"subtitle\">{E(subtitle)}</p>" : "")}</header>\n<nav><ol>");
        foreach (var (id, text) in _sections) html.Append($"<li><a href=\"#{id}\">{E(text)}</a></li>");
        html.Append("</ol></nav>\n<main>\n").Append(_body).Append("</main>\n</body></html>\n");
        return html.ToString();
    }

    /// <summary>Writes the page atomically.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, Html());

    private static byte[] Font(string file)
    {
        using var s = typeof(HtmlDocumentBuilder).Assembly.GetManifestResourceStream("DiffusionCircuits.Fonts." + file)!;
        using var bytes = new MemoryStream();
        s.CopyTo(bytes);
        return bytes.ToArray();
    }

    private const string Style = """
        body { font-family: 'DejaVu Sans Embedded', 'DejaVu Sans', sans-serif; max-width: 820px; margin: 2em auto; padding: 0 1em; color: #111; line-height: 1.4; }
        h1 { font-size: 24px; margin-bottom: 0.2em; } .subtitle { color: #555; margin-top: 0; }
        h2 { font-size: 20px; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
        h3 { font-size: 16px; } nav ol { columns: 2; font-size: 14px; }
        table { border-collapse: collapse; width: 100%; margin: 0.6em 0 1.2em; table-layout: fixed; }
        th, td { border-bottom: 1px solid #ddd; padding: 3px 4px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
        thead th { background: #ebeef5; }
        table.tiles { width: auto; table-layout: auto; } table.tiles td, table.tiles th { border: none; padding: 2px; font-size: 11px; }
        figure { margin: 1em 0; } figure.chart svg { width: 100%; height: auto; display: block; }
        figcaption { font-size: 11px; color: #444; margin-top: 0.3em; }
        .notice { border: 2px solid #c80000; background: #ffebeb; color: #aa0000; font-weight: bold; padding: 0.6em 0.8em; margin: 1em 0; }
        """;
}
