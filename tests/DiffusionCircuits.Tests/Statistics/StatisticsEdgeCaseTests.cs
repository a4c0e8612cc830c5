using DiffusionCircuits.Statistics;

namespace DiffusionCircuits.Tests.Statistics;

public class StatisticsEdgeCaseTests
{
    [Fact]
    public void Nan_and_infinity_are_rejected_naming_the_sample_and_index()
    {
        var e = Assert.Throws<ArgumentException>(() => TTests.Welch(new[] { 1.0, double.NaN, 3 }, new[] { 1.0, 2, 3 }));
        Assert.Contains("'x'", e.Message);
        Assert.Contains("index 1", e.Message);
        Assert.Throws<ArgumentException>(() => RankTests.MannWhitneyU(new[] { 1.0, 2 }, new[] { double.PositiveInfinity, 2 }));
        Assert.Throws<ArgumentException>(() => RankTests.Wilcoxon(new[] { 1.0, 2 }, new[] { double.NaN, 2 }));
    }

    [Fact]
    public void Fewer_than_two_values_give_no_p_value_with_a_note_not_a_crash()
    {
        var r = TTests.Welch(new[] { 1.0 }, new[] { 1.0, 2, 3 });
        Assert.Null(r.PValue);
        Assert.Contains("at least 2", r.Note);
        Assert.Null(TTests.Paired(new[] { 1.0 }, new[] { 2.0 }).PValue);
    }

    [Fact]
    public void Zero_variance_samples_give_an_infinite_or_undefined_t_and_no_p_value()
    {
        // SciPy gives t = -inf with p = 0 here; an infinite statistic is undefined for the report (METHOD.md 7), never "significant".
        var differ = TTests.Welch(new[] { 1.0, 1, 1 }, new[] { 2.0, 2, 2 });
        Assert.Equal(double.NegativeInfinity, differ.Statistic);
        Assert.Null(differ.PValue);
        Assert.StartsWith("no p-value: the statistic t is infinite", differ.Note);
        var same = TTests.Welch(new[] { 1.0, 1, 1 }, new[] { 1.0, 1, 1 });
        Assert.True(double.IsNaN(same.Statistic));
        Assert.Null(same.PValue);
        Assert.False(same.Defined);
    }

    [Fact]
    public void A_permutation_test_of_an_undefined_ratio_has_no_p_value_and_no_interval()
    {
        // 0 / 0: both "circuits" empty. Every comparison with NaN is false, so the old rule reported the smallest p.
        var zeros = new double[6];
        var perm = Resampling.PermutationTest(zeros, zeros, (x, y) => x.Sum() / y.Sum(), permutations: 200, ratio: true);
        Assert.False(perm.Defined);
        Assert.True(double.IsNaN(perm.PValue));
        Assert.False(perm.AtResolution);
        var ci = Resampling.Bootstrap(zeros, zeros, (x, y) => x.Sum() / y.Sum(), resamples: 200);
        Assert.True(double.IsNaN(ci.Low) && double.IsNaN(ci.High));
        var adjusted = MultipleComparisons.Adjust(new[]
        {
            new HypothesisTest { Test = "a", N1 = 6, StatisticName = "ratio", Statistic = double.NaN, PValue = perm.PValue, Method = "permutation" }.Checked(),
            new HypothesisTest { Test = "b", N1 = 6, StatisticName = "ratio", Statistic = 1.2, PValue = 0.01, Method = "permutation" },
        }, "family", "Holm");
        Assert.Null(adjusted[0].PValue);
        Assert.Null(adjusted[0].AdjustedPValue);
        Assert.Equal(0.01, adjusted[1].AdjustedPValue);       // a family of one defined test
    }

    [Fact]
    public void All_ties_give_p_one_in_rank_tests()
    {
        Assert.Equal(1.0, RankTests.MannWhitneyU(Enumerable.Repeat(3.0, 12).ToArray(), Enumerable.Repeat(3.0, 15).ToArray()).PValue);
        var w = RankTests.Wilcoxon(new[] { 1.0, 2, 3 }, new[] { 1.0, 2, 3 });
        Assert.Equal(1.0, w.PValue);
        Assert.Equal("all differences are zero", w.Note);
    }

    [Fact]
    public void Mann_whitney_on_a_huge_sample_is_fast_enough_to_be_n_log_n()
    {
        var rng = new Random(1);
        var x = Enumerable.Range(0, 200_000).Select(_ => rng.NextDouble()).ToArray();
        var y = Enumerable.Range(0, 200_000).Select(_ => rng.NextDouble() + 0.01).ToArray();
        var r = RankTests.MannWhitneyU(x, y);   // an O(n^2) implementation would take minutes here
        Assert.InRange(r.PValue!.Value, 0, 1e-6);
        Assert.Equal("asymptotic (tie and continuity corrected)", r.Method);
    }

    [Fact]
    public void Adjust_keeps_order_records_the_family_and_skips_nan()
    {
        var tests = new[] { 0.01, double.NaN, 0.04, 0.03 }.Select(p => new HypothesisTest
        {
            Test = "t", N1 = 5, StatisticName = "t", Statistic = 1, PValue = p, Method = "t distribution",
        }).ToList();
        var adjusted = MultipleComparisons.Adjust(tests, "entropy by data set");
        Assert.Equal(new double?[] { 0.03, null, 0.04, 0.04 }, adjusted.Select(t => t.AdjustedPValue is double a ? Math.Round(a, 12) : (double?)null));
        Assert.All(adjusted, t => Assert.Equal("entropy by data set", t.Family));
        Assert.Throws<ArgumentException>(() => MultipleComparisons.Holm(new[] { 0.5, 1.5 }));
    }
}

public class ResamplingTests
{
    [Fact]
    public void Bootstrap_is_seeded_and_brackets_the_estimate()
    {
        var rng = new Random(3);
        var x = Enumerable.Range(0, 200).Select(_ => rng.NextDouble() * 10).ToArray();
        var a = Resampling.Bootstrap(x, s => s.Average(), 2000, seed: 5);
        var b = Resampling.Bootstrap(x, s => s.Average(), 2000, seed: 5);
        Assert.Equal(a, b);
        Assert.True(a.Low < a.Estimate && a.Estimate < a.High);
        // The percentile CI of a mean is close to mean +- 1.96 SE for n = 200.
        double se = DiffusionCircuits.Statistics.Descriptive.StandardDeviation(x) / Math.Sqrt(x.Length);
        Assert.Equal(a.Estimate - 1.96 * se, a.Low, 0.15);
        Assert.Equal(a.Estimate + 1.96 * se, a.High, 0.15);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 2)]
    [InlineData(2000, 3)]
    public void BootstrapMean_gives_the_same_bits_as_the_bootstrap_of_the_average(int n, int seed)
    {
        // Values of very different magnitudes: a summation in another order would round differently.
        var rng = new Random(seed);
        var x = Enumerable.Range(0, n).Select(i => (rng.NextDouble() - 0.3) * Math.Pow(10, rng.Next(-8, 9))).ToArray();
        var general = Resampling.Bootstrap(x, s => s.Average(), 500, seed);
        var mean = Resampling.BootstrapMean(x, 500, seed);
        Assert.Equal(general.Estimate, mean.Estimate);
        Assert.Equal(general.Low, mean.Low);
        Assert.Equal(general.High, mean.High);
        Assert.Equal(general, mean);
        if (n > 1)
        {
            // The seed matters: another seed draws other resamples.
            var other = Resampling.BootstrapMean(x, 500, seed + 1);
            Assert.NotEqual((mean.Low, mean.High), (other.Low, other.High));
        }
    }

    [Fact]
    public void Bootstrap_of_a_ratio_covers_the_true_ratio_about_95_percent_of_the_time()
    {
        int covered = 0, trials = 200;
        var rng = new Random(11);
        for (int k = 0; k < trials; k++)
        {
            var x = Enumerable.Range(0, 60).Select(_ => 1.2 + rng.NextDouble()).ToArray();   // mean 1.7
            var y = Enumerable.Range(0, 60).Select(_ => 1.0 + rng.NextDouble()).ToArray();   // mean 1.5
            var ci = Resampling.Bootstrap(x, y, (a, b) => a.Average() / b.Average(), 400, seed: k);
            if (ci.Low <= 1.7 / 1.5 && 1.7 / 1.5 <= ci.High) covered++;
        }
        Assert.InRange(covered / (double)trials, 0.88, 0.99);
    }

    [Fact]
    public void Permutation_p_is_uniform_under_the_null_and_small_under_a_shift()
    {
        var rng = new Random(4);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var nullP = Enumerable.Range(0, 100).Select(k =>
        {
            var x = Enumerable.Range(0, 20).Select(_ => Normal()).ToArray();
            var y = Enumerable.Range(0, 20).Select(_ => Normal()).ToArray();
            return Resampling.PermutationTest(x, y, (a, b) => a.Average() - b.Average(), 199, seed: k).PValue;
        }).ToList();
        Assert.InRange(nullP.Count(p => p <= 0.05), 1, 12);
        var shifted = Resampling.PermutationTest(
            Enumerable.Range(0, 30).Select(_ => Normal() + 3).ToArray(), Enumerable.Range(0, 30).Select(_ => Normal()).ToArray(),
            (a, b) => a.Average() - b.Average(), 2000, seed: 1);
        Assert.True(shifted.AtResolution);
        Assert.Equal(1.0 / 2001, shifted.PValue);
        Assert.Equal(shifted.Resolution, shifted.PValue);
    }

    [Fact]
    public void Permutation_test_of_a_ratio_is_symmetric_on_the_log_scale()
    {
        var x = new[] { 1.0, 1.1, 0.9, 1.2, 1.05 };
        var y = new[] { 2.0, 2.1, 1.9, 2.2, 2.05 };
        var a = Resampling.PermutationTest(x, y, (p, q) => p.Average() / q.Average(), 999, seed: 2, ratio: true);
        var b = Resampling.PermutationTest(y, x, (p, q) => p.Average() / q.Average(), 999, seed: 2, ratio: true);
        Assert.Equal(a.PValue, b.PValue);
        Assert.True(a.PValue < 0.02);
    }
}
