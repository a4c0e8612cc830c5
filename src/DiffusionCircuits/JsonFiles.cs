using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusionCircuits;

/// <summary>
/// The one set of JSON settings of every file the tool writes (results.json, baselines, circuits.json, bench.json,
/// manifests, inspect --json): indented, camelCase names, enums as camelCase strings, NaN and infinities as named
/// literals, no property left out. Invariant number formatting is System.Text.Json's own.
/// </summary>
internal static class JsonFiles
{
    /// <summary>The settings.</summary>
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>A value as JSON text ending in a newline.</summary>
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options) + "\n";
}
