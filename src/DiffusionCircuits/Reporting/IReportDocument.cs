using SkiaSharp;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// What the report's sections are written into: the PDF (<see cref="PdfDocumentBuilder"/>) and the self-contained HTML
/// page (<see cref="HtmlDocumentBuilder"/>) get the same headings, paragraphs, tables, charts and pictures.
/// </summary>
internal interface IReportDocument
{
    /// <summary>Width of the text column in points (charts and pictures are sized against it).</summary>
    float ContentWidth { get; }

    /// <summary>A section heading (level 1) or a sub-heading.</summary>
    void Heading(string text, int level = 1);

    /// <summary>A paragraph of text at <paramref name="size"/> points.</summary>
    void Paragraph(string text, float size = 10, bool bold = false);

    /// <summary>A boxed warning that cannot be overlooked.</summary>
    void Notice(string text, float size = 10);

    /// <summary>A table with a header row; <paramref name="columnWeights"/> share the width.</summary>
    void Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows, IReadOnlyList<float>? columnWeights = null, float size = 8);

    /// <summary>A raster picture <paramref name="width"/> points wide.</summary>
    void Image(SKBitmap bitmap, float width, string? caption = null);

    /// <summary>A grid of pictures with text labels for columns (and a note under each) and rows.</summary>
    void TileGrid(IReadOnlyList<string> columns, IReadOnlyList<string> columnNotes, IReadOnlyList<string> rows, SKBitmap[,] tiles, float cell, string? caption = null);

    /// <summary>A chart as vectors, <paramref name="width"/> by <paramref name="height"/> points.</summary>
    void Chart(ScottPlot.Plot plot, float width, float height, string? caption = null);
}
