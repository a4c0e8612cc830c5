using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// A small PDF layout layer on SkiaSharp's <c>SKDocument</c> (QuestPDF is not available here): headings, word-wrapped
/// paragraphs, tables that break across pages with their header repeated, images and ScottPlot charts as vectors.
/// Layout is a first pass into pages of drawing operations; rendering is a second, so footers can say "page i of N".
/// Fonts (DejaVu Sans) are embedded in the library.
/// </summary>
internal sealed class PdfDocumentBuilder : IReportDocument
{
    public const float PageWidth = 595, PageHeight = 842, Margin = 50;   // A4 in points
    private const float BodyTop = Margin + 14, BodyBottom = PageHeight - Margin - 14;

    private static readonly Lazy<SKTypeface> Regular = new(() => LoadFont("DejaVuSans.ttf"));
    private static readonly Lazy<SKTypeface> Bold = new(() => LoadFont("DejaVuSans-Bold.ttf"));

    private readonly List<List<Action<SKCanvas>>> _pages = new();
    private float _y;

    public PdfDocumentBuilder(string title, string? subtitle = null)
    {
        Title = title;
        Subtitle = subtitle;
        NewPage();
    }

    public string Title { get; }
    public string? Subtitle { get; }
    public int PageCount => _pages.Count;
    public float ContentWidth => PageWidth - 2 * Margin;
    /// <summary>Height left on the current page, in points.</summary>
    public float RemainingHeight => BodyBottom - _y;

    /// <summary>A section heading (level 1 starts a new page unless the page is empty).</summary>
    public void Heading(string text, int level = 1)
    {
        float size = level == 1 ? 16 : level == 2 ? 13 : 11;
        if (level == 1 && _pages[^1].Count > 0) NewPage();
        EnsureSpace(size * 3);
        _y += level == 1 ? 0 : size * 0.6f;
        Text(text, size, bold: true);
        _y += size * 0.4f;
    }

    /// <summary>A paragraph, word-wrapped to the content width, breaking across pages as needed.</summary>
    public void Paragraph(string text, float size = 10, bool bold = false)
    {
        Text(text, size, bold);
        _y += size * 0.6f;
    }

    /// <summary>A boxed notice in bold red that cannot be overlooked (e.g. data that is not what it seems).</summary>
    public void Notice(string text, float size = 10)
    {
        var lines = Wrap(text, ContentWidth - 16, size, bold: true);
        float lineHeight = size * 1.35f, height = lines.Count * lineHeight + 12;
        EnsureSpace(height + 8);
        float top = _y;
        Add(canvas =>
        {
            using var box = new SKPaint { Color = new SKColor(200, 0, 0), Style = SKPaintStyle.Stroke, StrokeWidth = 1.5f, IsAntialias = true };
            using var fill = new SKPaint { Color = new SKColor(255, 235, 235), Style = SKPaintStyle.Fill };
            canvas.DrawRect(SKRect.Create(Margin, top, ContentWidth, height), fill);
            canvas.DrawRect(SKRect.Create(Margin, top, ContentWidth, height), box);
            using var font = Font(size, true);
            using var ink = new SKPaint { Color = new SKColor(170, 0, 0), IsAntialias = true };
            for (int i = 0; i < lines.Count; i++) canvas.DrawText(lines[i], Margin + 8, top + 6 + size + i * lineHeight, font, ink);
        });
        _y += height + 8;
    }

    /// <summary>
    /// A table: header row in bold, cells word-wrapped within their column; rows never split, and a table that
    /// reaches the bottom of a page continues on the next with its header repeated.
    /// </summary>
    public void Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows, IReadOnlyList<float>? columnWeights = null, float size = 8)
    {
        int n = header.Count;
        var weights = columnWeights ?? Enumerable.Repeat(1f, n).ToArray();
        if (weights.Count != n) throw new ArgumentException($"Table has {n} columns but {weights.Count} column weights.");
        float total = weights.Sum();
        var widths = weights.Select(w => ContentWidth * w / total).ToArray();
        float pad = 3, lineHeight = size * 1.3f;

        float RowHeight(IReadOnlyList<string> cells, bool bold) =>
            Enumerable.Range(0, n).Max(c => Wrap(cells[c], widths[c] - 2 * pad, size, bold).Count) * lineHeight + 2 * pad;

        void DrawRow(IReadOnlyList<string> cells, bool bold, bool shade)
        {
            float h = RowHeight(cells, bold), top = _y;
            var lines = Enumerable.Range(0, n).Select(c => Wrap(cells[c], widths[c] - 2 * pad, size, bold)).ToArray();
            Add(canvas =>
            {
                using var fill = new SKPaint { Color = shade ? new SKColor(235, 238, 245) : SKColors.White };
                canvas.DrawRect(Margin, top, ContentWidth, h, fill);
                using var line = new SKPaint { Color = new SKColor(200, 200, 200), StrokeWidth = 0.5f, Style = SKPaintStyle.Stroke };
                canvas.DrawLine(Margin, top + h, Margin + ContentWidth, top + h, line);
                using var font = Font(size, bold);
                using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
                float x = Margin;
                for (int c = 0; c < n; c++)
                {
                    for (int k = 0; k < lines[c].Count; k++) canvas.DrawText(lines[c][k], x + pad, top + pad + (k + 0.8f) * lineHeight, font, ink);
                    x += widths[c];
                }
            });
            _y += h;
        }

        var list = rows.ToList();
        foreach (var row in list)
            if (row.Count != n) throw new ArgumentException($"Table row has {row.Count} cells; the header has {n}.");
        var heights = list.Select(r => RowHeight(r, false)).ToArray();
        float headerHeight = RowHeight(header, true);
        // A table starts where its header and first rows (up to KeepTogether) fit, and breaks so that no page holds
        // fewer than KeepTogether of its rows.
        EnsureSpace(headerHeight + heights.Take(KeepTogether).Sum());
        var breaks = PageBreaks(heights, _y + headerHeight, BodyTop + headerHeight, BodyBottom);
        DrawRow(header, true, true);
        for (int i = 0; i < list.Count; i++)
        {
            if (breaks.Contains(i))
            {
                NewPage();
                DrawRow(header, true, true);
            }
            DrawRow(list[i], false, false);
        }
        _y += size;
    }

    /// <summary>Rows a table keeps together at a page break: no page starts or ends a table with fewer.</summary>
    public const int KeepTogether = 3;

    /// <summary>
    /// The rows that start a new page for rows of <paramref name="heights"/> starting at <paramref name="first"/> on the
    /// current page and at <paramref name="top"/> on later ones: greedy, then the last page gets at least
    /// <see cref="KeepTogether"/> rows by moving rows over from the page before while that keeps as many.
    /// </summary>
    internal static HashSet<int> PageBreaks(IReadOnlyList<float> heights, float first, float top, float bottom)
    {
        var starts = new List<int>();
        float y = first;
        for (int i = 0; i < heights.Count; i++)
        {
            if (y + heights[i] > bottom && i > 0)
            {
                starts.Add(i);
                y = top;
            }
            y += heights[i];
        }
        if (starts.Count > 0)
        {
            int last = starts[^1], previous = starts.Count > 1 ? starts[^2] : 0;
            int onLast = heights.Count - last, onPrevious = last - previous;
            int move = Math.Min(KeepTogether - onLast, onPrevious - KeepTogether);
            if (onLast < KeepTogether && move > 0 && heights.Skip(last - move).Sum() <= bottom - top) starts[^1] = last - move;
        }
        return starts.ToHashSet();
    }

    /// <summary>A raster image (PNG, JPEG...), scaled to <paramref name="width"/> points, with an optional caption.</summary>
    public void Image(SKBitmap bitmap, float width, string? caption = null)
    {
        float height = width * bitmap.Height / bitmap.Width;
        EnsureSpace(height + 20);
        float top = _y;
        var image = SKImage.FromBitmap(bitmap.Copy());
        Add(canvas => canvas.DrawImage(image, SKRect.Create(Margin, top, width, height), new SKSamplingOptions(SKFilterMode.Nearest)));
        _y += height + 4;
        if (caption != null) Paragraph(caption, 8);
    }

    /// <summary>
    /// A grid of pictures (<paramref name="tiles"/>[row, column], each drawn into a square of <paramref name="cell"/>
    /// points with smooth sampling) whose labels are text, not pixels: a column label and a smaller note above each
    /// column, a label left of each row.
    /// </summary>
    public void TileGrid(IReadOnlyList<string> columns, IReadOnlyList<string> columnNotes, IReadOnlyList<string> rows, SKBitmap[,] tiles, float cell, string? caption = null)
    {
        const float gap = 3, header = 24, line = 8.5f, size = 7.5f;
        float labelWidth;
        using (var measure = Font(size, false))
            labelWidth = Math.Min(110, 6 + rows.SelectMany(r => r.Split('\n')).Select(l => measure.MeasureText(l)).DefaultIfEmpty(0).Max());
        float height = header + rows.Count * (cell + gap);
        EnsureSpace(height + 20);
        float top = _y;
        var images = new SKImage[rows.Count, columns.Count];
        for (int r = 0; r < rows.Count; r++)
            for (int c = 0; c < columns.Count; c++) images[r, c] = SKImage.FromBitmap(tiles[r, c].Copy());
        Add(canvas =>
        {
            using var font = Font(size, false);
            using var note = Font(6.5f, false);
            using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            for (int c = 0; c < columns.Count; c++)
            {
                float x = Margin + labelWidth + c * (cell + gap);
                canvas.DrawText(Fit(columns[c], cell, size), x, top + 9, font, ink);
                canvas.DrawText(Fit(columnNotes[c], cell, 6.5f), x, top + 19, note, ink);
            }
            for (int r = 0; r < rows.Count; r++)
            {
                float y = top + header + r * (cell + gap);
                var lines = rows[r].Split('\n');
                float first = y + cell / 2 + 3 - (lines.Length - 1) * line / 2;
                for (int i = 0; i < lines.Length; i++) canvas.DrawText(Fit(lines[i], labelWidth - 4, size), Margin, first + i * line, font, ink);
                for (int c = 0; c < columns.Count; c++)
                    canvas.DrawImage(images[r, c], SKRect.Create(Margin + labelWidth + c * (cell + gap), y, cell, cell), new SKSamplingOptions(SKCubicResampler.Mitchell));
            }
        });
        _y += height + 4;
        if (caption != null) Paragraph(caption, 8);
    }

    /// <summary>The text, shortened with an ellipsis to fit <paramref name="width"/> points.</summary>
    private static string Fit(string text, float width, float size)
    {
        using var font = Font(size, false);
        if (font.MeasureText(text) <= width) return text;
        while (text.Length > 1 && font.MeasureText(text + "…") > width) text = text[..^1];
        return text + "…";
    }

    /// <summary>A ScottPlot chart drawn as vectors into a box of the given size (points), with an optional caption.</summary>
    public void Chart(ScottPlot.Plot plot, float width, float height, string? caption = null)
    {
        EnsureSpace(height + 20);
        float top = _y;
        plot.RenderInMemory((int)width, (int)height);                 // lays the plot out before drawing on our canvas
        plot.RenderManager.ClearCanvasBeforeEachRender = false;
        Add(canvas =>
        {
            canvas.Save();
            canvas.Translate(Margin, top);
            canvas.ClipRect(new SKRect(0, 0, width, height));
            plot.Render(canvas, (int)width, (int)height);
            canvas.Restore();
        });
        _y += height + 4;
        if (caption != null) Paragraph(caption, 8);
    }

    public void PageBreak() => NewPage();

    /// <summary>Renders the pages (header with the title, footer "page i of N") and writes the PDF atomically.</summary>
    public void Save(string path) => AtomicFile.Write(path, Write);

    public void Write(Stream stream)
    {
        var metadata = new SKDocumentPdfMetadata { Title = Title, Producer = "DiffusionCircuits", Creator = "DiffusionCircuits",
            Creation = new DateTime(2000, 1, 1), Modified = new DateTime(2000, 1, 1),   // fixed dates: same input, same bytes
            // The struct's default EncodingQuality is 0: every picture would become a JPEG of quality 0 (blocks). 101 is lossless.
            EncodingQuality = 101, RasterDpi = SKDocument.DefaultRasterDpi };
        using var document = SKDocument.CreatePdf(stream, metadata);
        for (int p = 0; p < _pages.Count; p++)
        {
            var canvas = document.BeginPage(PageWidth, PageHeight);
            using (var font = Font(8, false))
            using (var ink = new SKPaint { Color = new SKColor(90, 90, 90), IsAntialias = true })
            using (var rule = new SKPaint { Color = new SKColor(180, 180, 180), StrokeWidth = 0.5f })
            {
                canvas.DrawText(Subtitle == null ? Title : $"{Title} - {Subtitle}", Margin, Margin, font, ink);
                canvas.DrawLine(Margin, Margin + 4, PageWidth - Margin, Margin + 4, rule);
                string footer = $"page {p + 1} of {_pages.Count}";
                canvas.DrawText(footer, PageWidth - Margin - font.MeasureText(footer), PageHeight - Margin + 10, font, ink);
            }
            foreach (var op in _pages[p]) op(canvas);
            document.EndPage();
        }
        document.Close();
    }

    private void Text(string text, float size, bool bold)
    {
        float lineHeight = size * 1.35f;
        foreach (var paragraph in text.Split('\n'))
            foreach (var line in Wrap(paragraph, ContentWidth, size, bold))
            {
                EnsureSpace(lineHeight);
                float baseline = _y + size;
                string content = line;
                Add(canvas =>
                {
                    using var font = Font(size, bold);
                    using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
                    canvas.DrawText(content, Margin, baseline, font, ink);
                });
                _y += lineHeight;
            }
    }

    /// <summary>Greedy word wrap; words longer than the width are split.</summary>
    public static List<string> Wrap(string text, float width, float size, bool bold = false)
    {
        using var font = Font(size, bold);
        var lines = new List<string>();
        var current = "";
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var w = word;
            while (font.MeasureText(w) > width && w.Length > 1)
            {
                int fit = w.Length - 1;
                while (fit > 1 && font.MeasureText(w[..fit]) > width) fit--;
                if (current.Length > 0) { lines.Add(current); current = ""; }
                lines.Add(w[..fit]);
                w = w[fit..];
            }
            string candidate = current.Length == 0 ? w : current + " " + w;
            if (font.MeasureText(candidate) <= width) current = candidate;
            else
            {
                lines.Add(current);
                current = w;
            }
        }
        if (current.Length > 0 || lines.Count == 0) lines.Add(current);
        return lines;
    }

    private void EnsureSpace(float height)
    {
        if (_y + height > BodyBottom && _pages[^1].Count > 0) NewPage();
    }

    private void NewPage()
    {
        _pages.Add(new List<Action<SKCanvas>>());
        _y = BodyTop + 6;
    }

    private void Add(Action<SKCanvas> op) => _pages[^1].Add(op);

    // Unhinted, linear metrics: the advances drawn match the widths the PDF declares, so text extracts as whole words at any size.
    internal static SKFont Font(float size, bool bold) =>
        new(bold ? Bold.Value : Regular.Value, size) { Hinting = SKFontHinting.None, LinearMetrics = true, Subpixel = true };

    private static SKTypeface LoadFont(string file)
    {
        using var stream = typeof(PdfDocumentBuilder).Assembly.GetManifestResourceStream("DiffusionCircuits.Fonts." + file)
            ?? throw new InvalidOperationException($"Embedded font {file} is missing from the library.");
        return SKTypeface.FromStream(stream) ?? throw new InvalidOperationException($"Embedded font {file} could not be loaded.");
    }
}
