using DiffusionCircuits.Analysis;
using DiffusionCircuits.Reporting;

namespace DiffusionCircuits.Tests.Reporting;

/// <summary>The findings state what the numbers support: the direction of each complexity measure, plainly when they disagree, and "measurably" only when the CI excludes 1 and p &lt;= 0.05.</summary>
public class FindingsTests
{
    private static RatioRow Ratio(ComplexityMeasure kind, double ratio, double low, double high, double? p) =>
        new(kind.ToString(), 1, 1, ratio, low, high, p, 2000, false, "") { Kind = kind };

    private static RatioRow Effective(double ratio, double low, double high, double? p) => Ratio(ComplexityMeasure.EffectiveHeads, ratio, low, high, p);
    private static RatioRow Size(double ratio, double? p) => Ratio(ComplexityMeasure.CircuitSize, ratio, double.NaN, double.NaN, p);

    [Fact]
    public void Opposite_directions_are_said_plainly_and_never_called_measurably_higher()
    {
        // The paper-style over-claim this replaces: effective heads 1.528 (CI above 1) but circuit size 9 vs 11 (ratio 0.818).
        string text = ReportAssembler.ComplexityConclusion(Effective(1.528, 1.39, 1.66, 0.0005), Size(0.818, 0.4), "CelebA");
        Assert.Contains("By effective heads, the complexity CelebA faces needed was measurably higher", text);
        Assert.Contains("by circuit size, lower, but not measurably", text);
        Assert.Contains("opposite directions", text);
        Assert.DoesNotContain("required circuits of measurably higher", text);
    }

    [Theory]
    [InlineData(1.2, 0.95, 1.4, 0.01)]     // CI includes 1
    [InlineData(1.2, 1.05, 1.4, 0.08)]     // p above 0.05
    [InlineData(1.2, 1.05, 1.4, null)]     // no p-value
    public void A_ci_that_contains_1_or_a_p_above_005_is_never_measurable(double ratio, double low, double high, double? p)
    {
        string text = ReportAssembler.ComplexityConclusion(Effective(ratio, low, high, p), Size(1.0, 0.9), "real");
        Assert.DoesNotContain("measurably higher", text);
        Assert.Contains("higher, but not measurably", text);
        Assert.Contains("Neither measure shows a measurable difference", text);
    }

    [Fact]
    public void An_undefined_ratio_is_called_undefined()
    {
        string text = ReportAssembler.ComplexityConclusion(Effective(double.NaN, double.NaN, double.NaN, null), Size(double.NaN, null), "real");
        Assert.Contains("needed was undefined (a 0/0 ratio); by circuit size, undefined", text);
        Assert.Equal("undefined", Size(double.NaN, null).PValueText);
    }
}
