using DiffusionCircuits.Analysis;
using static DiffusionCircuits.CsvFile;

namespace DiffusionCircuits.Reporting;

/// <summary>The report's CSV tables (invariant, round-trip numbers; written atomically).</summary>
internal static class ReportTables
{
    /// <summary>
    /// degradation.csv, long format: every head and role condition of both data sets, one row over timesteps (timestep
    /// empty; with its bootstrap CI and Wilcoxon test) and one row per timestep (degradation only).
    /// </summary>
    public static void WriteDegradationCsv(string path, CircuitAnalysisResult a) =>
        Write(path, "dataset,condition,timestep,degradation_percent,ci_low,ci_high,wilcoxon_w,p,p_bh",
            a.Degradations.SelectMany(x => new[]
            {
                $"{x.DataSet},{x.Condition},,{Number(x.DegradationPercent)},{Number(x.CiLowPercent)},{Number(x.CiHighPercent)}," +
                $"{Number(x.Test.Statistic)},{Number(x.Test.PValue ?? double.NaN)},{Number(x.Test.AdjustedPValue ?? double.NaN)}",
            }.Concat(x.PerTimestepPercent.Select((d, k) => $"{x.DataSet},{x.Condition},{a.Ablations[0].Timesteps[k]},{Number(d)},,,,,"))));

    /// <summary>roles.csv: each head's role, importance and the probe values the clustering saw.</summary>
    public static void WriteRolesCsv(string path, CircuitAnalysisResult a) =>
        Write(path, "head,role,importance_percent," + string.Join(",", HeadRoles.Probes.Select(SnakeCase)),
            a.HeadNames.Select((h, i) => $"{h},{a.Roles.RoleOf(i)},{Number(a.ImportancePercent[i])}," + string.Join(",", a.ProbeMatrix[i].Select(Number))));

    public static void WriteTestsCsv(string path, ReportResults r) =>
        Write(path, "test,family,n1,n2,statistic_name,statistic,df,p,p_adjusted,correction,effect,effect_value,effect_ci_low,effect_ci_high,method,note",
            r.Tests.Select(t => $"{Text(t.Test)},{Text(t.Family ?? "")},{t.N1},{t.N2},{t.StatisticName},{Number(t.Statistic)},{Number(t.DegreesOfFreedom ?? double.NaN)}," +
                                $"{Number(t.PValue ?? double.NaN)},{Number(t.AdjustedPValue ?? double.NaN)},{Text(t.Correction ?? "")},{Text(t.Effect?.Name ?? "")},{Number(t.Effect?.Value ?? double.NaN)}," +
                                $"{Number(t.Effect?.CiLow ?? double.NaN)},{Number(t.Effect?.CiHigh ?? double.NaN)},{Text(t.Method)},{Text(t.Note ?? "")}"));

    /// <summary>
    /// tokens.csv (cross-attention models): each cross-attention head's mass on each prompt token per data set and
    /// timestep (empty timestep: mean over timesteps), long format; the padding after the prompt is one row.
    /// </summary>
    public static void WriteTokensCsv(string path, CrossAttentionSummary c) =>
        Write(path, "dataset,timestep,head,token_index,token,mass",
            c.TokenMass.SelectMany(r => r.Mass.Select((m, t) => $"{r.DataSet},{r.Timestep?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? ""},{r.Head},{t},{Text(c.Tokens[t])},{Number(m)}")
                .Append($"{r.DataSet},{r.Timestep?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? ""},{r.Head},,(padding),{Number(r.PaddingMass)}")));

    /// <summary>
    /// patching.csv, long format: each head's activation-patching share in each direction (METHOD.md 5b), one row over
    /// timesteps (timestep empty, with the 95% CI over pairs) and one per timestep.
    /// </summary>
    public static void WritePatchingCsv(string path, PatchingSummary p, IReadOnlyList<int> timesteps) =>
        Write(path, "head,direction,timestep,share,ci_low,ci_high",
            p.Heads.SelectMany(h => new[] { ("real_into_synthetic", h.RealIntoSynthetic), ("synthetic_into_real", h.SyntheticIntoReal) }
                .SelectMany(d => new[] { $"{h.Head},{d.Item1},,{Number(d.Item2.Share)},{Number(d.Item2.CiLow)},{Number(d.Item2.CiHigh)}" }
                    .Concat(d.Item2.PerTimestep.Select((v, k) => $"{h.Head},{d.Item1},{timesteps[k]},{Number(v)},,")))));
}
