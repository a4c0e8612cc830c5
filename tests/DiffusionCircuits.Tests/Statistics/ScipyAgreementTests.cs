using System.Text.Json;
using DiffusionCircuits.Statistics;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Statistics;

/// <summary>
/// Every test statistic and p-value against SciPy 1.10.1 (Fixtures/stats/scipy_reference.json, made by
/// tools/stats/make_fixtures.py), to 1e-9 relative. Effect sizes and corrections against their numpy formulas.
/// </summary>
public class ScipyAgreementTests
{
    private const double Relative = 1e-9;
    private static readonly JsonElement Root = JsonDocument.Parse(File.ReadAllText(ModelRunner.Fixture("stats/scipy_reference.json"))).RootElement;

    private static JsonElement Case(string name) => Root.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);
    private static double[] Values(JsonElement e, string key) => e.GetProperty(key).EnumerateArray().Select(v => v.GetDouble()).ToArray();

    public static TheoryData<string> TwoSampleCases() => new(Root.GetProperty("cases").EnumerateArray()
        .Where(c => c.GetProperty("kind").GetString() == "two_sample").Select(c => c.GetProperty("name").GetString()!));

    public static TheoryData<string> PairedCases() => new(Root.GetProperty("cases").EnumerateArray()
        .Where(c => c.GetProperty("kind").GetString() == "paired").Select(c => c.GetProperty("name").GetString()!));

    private static void Close(double expected, double actual, string what)
    {
        double tolerance = Relative * Math.Max(Math.Abs(expected), 1e-300);
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: expected {expected:R}, got {actual:R} (relative error {Math.Abs(expected - actual) / Math.Abs(expected):E2})");
    }

    [Fact]
    public void The_fixture_file_has_at_least_twenty_cases_and_names_its_scipy()
    {
        Assert.Equal("1.10.1", Root.GetProperty("scipy").GetString());
        Assert.True(Root.GetProperty("cases").GetArrayLength() >= 20);
    }

    [Theory]
    [MemberData(nameof(TwoSampleCases))]
    public void Welch_and_student_t_match_scipy(string name)
    {
        var c = Case(name);
        var (x, y) = (Values(c, "x"), Values(c, "y"));
        var welch = TTests.Welch(x, y);
        Close(c.GetProperty("welch_t").GetDouble(), welch.Statistic, "Welch t");
        Close(c.GetProperty("welch_df").GetDouble(), welch.DegreesOfFreedom!.Value, "Welch df");
        Close(c.GetProperty("welch_p").GetDouble(), welch.PValue!.Value, "Welch p");
        var student = TTests.Student(x, y);
        Close(c.GetProperty("student_t").GetDouble(), student.Statistic, "Student t");
        Close(c.GetProperty("student_p").GetDouble(), student.PValue!.Value, "Student p");
    }

    [Theory]
    [MemberData(nameof(TwoSampleCases))]
    public void Mann_whitney_u_matches_scipy(string name)
    {
        var c = Case(name);
        var r = RankTests.MannWhitneyU(Values(c, "x"), Values(c, "y"));
        Close(c.GetProperty("mwu_u").GetDouble(), r.Statistic, "U");
        Close(c.GetProperty("mwu_p").GetDouble(), r.PValue!.Value, $"p ({r.Method})");
        Close(c.GetProperty("rank_biserial").GetDouble(), r.Effect!.Value, "rank-biserial");
    }

    [Theory]
    [MemberData(nameof(TwoSampleCases))]
    public void Cohens_d_and_hedges_g_with_ci_match_their_formulas(string name)
    {
        var c = Case(name);
        var (x, y) = (Values(c, "x"), Values(c, "y"));
        Close(c.GetProperty("cohens_d").GetDouble(), EffectSizes.CohensD(x, y), "d");
        var g = EffectSizes.HedgesG(x, y);
        Close(c.GetProperty("hedges_g").GetDouble(), g.Value, "g");
        var ci = Values(c, "hedges_g_ci");
        Close(ci[0], g.CiLow!.Value, "g CI low");
        Close(ci[1], g.CiHigh!.Value, "g CI high");
    }

    [Theory]
    [MemberData(nameof(PairedCases))]
    public void Paired_t_and_wilcoxon_match_scipy(string name)
    {
        var c = Case(name);
        var (x, y) = (Values(c, "x"), Values(c, "y"));
        var t = TTests.Paired(x, y);
        Close(c.GetProperty("paired_t").GetDouble(), t.Statistic, "paired t");
        Close(c.GetProperty("paired_p").GetDouble(), t.PValue!.Value, "paired p");
        var w = RankTests.Wilcoxon(x, y);
        Close(c.GetProperty("wilcoxon_w").GetDouble(), w.Statistic, "W");
        Close(c.GetProperty("wilcoxon_p").GetDouble(), w.PValue!.Value, $"Wilcoxon p ({w.Method})");
        Close(c.GetProperty("matched_rank_biserial").GetDouble(), w.Effect!.Value, "matched rank-biserial");
        var pratt = RankTests.Wilcoxon(x, y, WilcoxonZeros.Pratt);
        Close(c.GetProperty("wilcoxon_pratt_w").GetDouble(), pratt.Statistic, "Pratt W");
        Close(c.GetProperty("wilcoxon_pratt_p").GetDouble(), pratt.PValue!.Value, "Pratt p");
    }

    [Fact]
    public void Corrections_match_their_definitions_in_input_order()
    {
        foreach (var c in Root.GetProperty("corrections").EnumerateArray())
        {
            var p = Values(c, "p");
            foreach (var (key, actual) in new[] { ("bh", MultipleComparisons.BenjaminiHochberg(p)), ("holm", MultipleComparisons.Holm(p)), ("bonferroni", MultipleComparisons.Bonferroni(p)) })
            {
                var expected = Values(c, key);
                for (int i = 0; i < p.Length; i++) Close(expected[i], actual[i], $"{c.GetProperty("name").GetString()} {key}[{i}]");
            }
        }
    }

    [Fact]
    public void Entropy_and_jensen_shannon_match_scipy()
    {
        foreach (var c in Root.GetProperty("divergences").EnumerateArray())
        {
            var (p, q) = (Values(c, "p"), Values(c, "q"));
            string name = c.GetProperty("name").GetString()!;
            Close(c.GetProperty("entropy_p").GetDouble(), Divergence.EntropyNats(p), $"{name} H(p)");
            Close(c.GetProperty("entropy_q").GetDouble(), Divergence.EntropyNats(q), $"{name} H(q)");
            double jsd = c.GetProperty("jsd").GetDouble();
            if (jsd < 1e-15) Assert.True(Divergence.JensenShannonNats(p, q) < 1e-15);
            else Close(jsd, Divergence.JensenShannonNats(p, q), $"{name} JSD");
        }
    }
}
