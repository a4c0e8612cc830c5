namespace DiffusionCircuits.Reporting;

/// <summary>
/// What finished work is valid for: model hash, data hashes, options and seed. Stored beside the work so that a
/// changed input is named when the work is thrown away.
/// </summary>
internal sealed record WorkKey(string ModelSha256, IReadOnlyDictionary<string, string> DataSha256, string Options)
{
    public string Describe(WorkKey other)
    {
        var changed = new List<string>();
        if (ModelSha256 != other.ModelSha256) changed.Add("the model");
        foreach (var set in DataSha256.Keys.Union(other.DataSha256.Keys).Order(StringComparer.Ordinal))
            if (DataSha256.GetValueOrDefault(set) != other.DataSha256.GetValueOrDefault(set)) changed.Add($"the {set} images");
        if (Options != other.Options) changed.Add("the options or seed");
        return changed.Count == 0 ? "nothing" : string.Join(", ", changed);
    }
}
