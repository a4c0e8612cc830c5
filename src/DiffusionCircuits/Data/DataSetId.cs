using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiffusionCircuits.Data;

/// <summary>
/// A data set's identity: the name it has in tables, results.json and the report. The causal analysis compares
/// <see cref="Real"/> with <see cref="Synthetic"/>; other names (e.g. <c>celeba</c>) label feature runs.
/// </summary>
[JsonConverter(typeof(DataSetIdJsonConverter))]
public readonly record struct DataSetId(string Name)
{
    /// <summary>Real faces (or the announced naturalistic stand-in).</summary>
    public static readonly DataSetId Real = new("real");

    /// <summary>Procedural synthetic faces.</summary>
    public static readonly DataSetId Synthetic = new("synthetic");

    /// <summary>The two data sets the analysis compares, in the order of its tables: real, then synthetic.</summary>
    public static readonly IReadOnlyList<DataSetId> Compared = new[] { Real, Synthetic };

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>A <see cref="DataSetId"/> is its name in JSON: <c>"real"</c>.</summary>
public sealed class DataSetIdJsonConverter : JsonConverter<DataSetId>
{
    /// <inheritdoc/>
    public override DataSetId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        new(reader.GetString() ?? throw new JsonException("A data set is named by a string."));

    /// <inheritdoc/>
    public override void Write(Utf8JsonWriter writer, DataSetId value, JsonSerializerOptions options) => writer.WriteStringValue(value.Name);
}
