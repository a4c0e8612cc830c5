using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using static DiffusionCircuits.Analysis.FeatureAggregation;

namespace DiffusionCircuits.Reporting;

/// <summary>The report's CSV tables (invariant, round-trip numbers; written atomically).</summary>
public static class ReportTables
{
    private static void Csv(string path, string header, IEnumerable<string> rows) =>
        AtomicFile.Write(path, stream =>
        {
            using var w = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
            w.WriteLine(header);
            foreach (var row in rows) w.WriteLine(row);
        });

    private static string Q(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    /// <summary>degradation.csv: every head and role condition of both data sets, overall and per timestep, with its test.</summary>
    public static void WriteDegradationCsv(string path, CircuitAnalysisResult a) =>
        Csv(path, "dataset,condition,degradation_percent,ci_low,ci_high," + string.Join(",", a.Ablations[0].Timesteps.Select(t => $"t{t}_percent")) + ",wilcoxon_w,p,p_bh",
            a.Degradations.Select(x => $"{x.DataSet},{x.Degradation.Condition},{Num(x.Degradation.DegradationPercent)},{Num(x.Degradation.CiLow)},{Num(x.Degradation.CiHigh)}," +
                                       string.Join(",", x.Degradation.PerTimestepPercent.Select(Num)) +
                                       $",{Num(x.Degradation.Test.Statistic)},{Num(x.Degradation.Test.PValue)},{Num(x.Degradation.Test.AdjustedPValue ?? double.NaN)}"));

    /// <summary>roles.csv: each head's role, importance and the probe values the clustering saw.</summary>
    public static void WriteRolesCsv(string path, CircuitAnalysisResult a) =>
        Csv(path, "head,role,importance_percent," + string.Join(",", HeadRoles.Probes.Select(Snake)),
            a.HeadNames.Select((h, i) => $"{h},{a.Roles.RoleOf(i)},{Num(a.ImportancePercent[i])}," + string.Join(",", a.ProbeMatrix[i].Select(Num))));

    public static void WriteTestsCsv(string path, ReportResults r) =>
        Csv(path, "test,family,n1,n2,statistic_name,statistic,df,p,p_adjusted,correction,effect,effect_value,effect_ci_low,effect_ci_high,method,note",
            r.Tests.Select(t => $"{Q(t.Test)},{Q(t.Family ?? "")},{t.N1},{t.N2},{t.StatisticName},{Num(t.Statistic)},{Num(t.DegreesOfFreedom ?? double.NaN)}," +
                                $"{Num(t.PValue)},{Num(t.AdjustedPValue ?? double.NaN)},{Q(t.Correction ?? "")},{Q(t.Effect?.Name ?? "")},{Num(t.Effect?.Value ?? double.NaN)}," +
                                $"{Num(t.Effect?.CiLow ?? double.NaN)},{Num(t.Effect?.CiHigh ?? double.NaN)},{Q(t.Method)},{Q(t.Note ?? "")}"));
}
