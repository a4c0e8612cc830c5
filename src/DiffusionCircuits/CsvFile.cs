using System.Globalization;
using System.Text;

namespace DiffusionCircuits;

/// <summary>
/// The one CSV writer of the tool: UTF-8 without BOM, a header line and one line per row, written atomically;
/// numbers in invariant round-trip form (NaN as an empty cell), so tables are byte-identical across runs and cultures.
/// </summary>
internal static class CsvFile
{
    /// <summary>Writes <paramref name="header"/> and <paramref name="rows"/> (already joined with commas) to <paramref name="path"/>.</summary>
    public static void Write(string path, string header, IEnumerable<string> rows) =>
        AtomicFile.Write(path, stream =>
        {
            using var w = new StreamWriter(stream, new UTF8Encoding(false), 1 << 16, leaveOpen: true);
            w.WriteLine(header);
            foreach (var row in rows) w.WriteLine(row);
        });

    /// <summary>A number as a cell: round-trip invariant form, NaN as empty.</summary>
    public static string Number(double v) => double.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A float as a cell: round-trip invariant form, NaN as empty.</summary>
    public static string Number(float v) => float.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Text as a cell, quoted when it holds a comma or a quote.</summary>
    public static string Text(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    /// <summary>A PascalCase name as a snake_case column name: <c>EntropyNats</c> -> <c>entropy_nats</c>.</summary>
    public static string SnakeCase(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}
