using DiffusionCircuits.Data;
using System.Runtime.InteropServices;
using System.Xml.Linq;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Cli;
using DiffusionCircuits.Tests.Support;
using Google.Protobuf;

namespace DiffusionCircuits.Tests.Reporting;

public class RegressionCheckTests
{
    private static Metric M(string name, double value, double? lo = null, double? hi = null) => new(name, value, "u", "METHOD.md 1", lo, hi);

    private static CheckStatus StatusOf(Metric baseline, Metric current, IReadOnlyList<ToleranceRule>? rules = null) =>
        RegressionCheck.Compare(new[] { baseline }, new[] { current }, rules).Single().Status;

    [Fact]
    public void A_metric_passes_within_its_absolute_or_relative_tolerance_and_fails_outside_both()
    {
        var rules = new[] { new ToleranceRule("x.*", Absolute: 0.1, Relative: 0.02, CiOverlap: false) };
        Assert.Equal(CheckStatus.Pass, StatusOf(M("x.a", 1.0), M("x.a", 1.09), rules));    // absolute
        Assert.Equal(CheckStatus.Pass, StatusOf(M("x.a", 10.0), M("x.a", 10.19), rules));  // relative 2% of 10
        Assert.Equal(CheckStatus.Fail, StatusOf(M("x.a", 1.0), M("x.a", 1.11), rules));
        Assert.Equal(CheckStatus.Fail, StatusOf(M("x.a", 10.0), M("x.a", 9.7), rules));
    }

    [Fact]
    public void Statistics_with_overlapping_confidence_intervals_pass_and_separated_ones_fail()
    {
        var rules = new[] { new ToleranceRule("*", Absolute: 0.01) };
        Assert.Equal(CheckStatus.Pass, StatusOf(M("s", 1.0, 0.8, 1.2), M("s", 1.3, 1.1, 1.5), rules));
        Assert.Equal(CheckStatus.Fail, StatusOf(M("s", 1.0, 0.8, 1.2), M("s", 1.5, 1.3, 1.7), rules));
        Assert.Equal(CheckStatus.Fail, StatusOf(M("s", 1.0, 0.8, 1.2), M("s", 1.3), rules));   // no CI: tolerance only
    }

    [Fact]
    public void P_values_are_compared_by_significance_and_missing_metrics_fail_unless_optional()
    {
        Assert.Equal(CheckStatus.Pass, StatusOf(M("complexity_ratio.effective_heads.p", 0.001), M("complexity_ratio.effective_heads.p", 0.03)));
        Assert.Equal(CheckStatus.Fail, StatusOf(M("complexity_ratio.effective_heads.p", 0.001), M("complexity_ratio.effective_heads.p", 0.2)));
        var checks = RegressionCheck.Compare(new[] { M("circuit.real.size", 8), M("role.edge.entropy", 3) }, new[] { M("jsd.t50.mean", 0.01) });
        Assert.Equal(CheckStatus.Missing, checks.Single(c => c.Metric == "circuit.real.size").Status);
        Assert.Equal(CheckStatus.Pass, checks.Single(c => c.Metric == "role.edge.entropy").Status);
        Assert.Equal(CheckStatus.New, checks.Single(c => c.Metric == "jsd.t50.mean").Status);
        Assert.False(RegressionCheck.Passed(checks));
    }

    [Fact]
    public void JUnit_xml_has_one_case_per_metric_and_counts_failures()
    {
        var checks = RegressionCheck.Compare(new[] { M("entropy.real.a", 1), M("entropy.real.b", 1) }, new[] { M("entropy.real.a", 1), M("entropy.real.b", 2), M("new.one", 0) });
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "junit.xml");
        RegressionCheck.WriteJUnit(path, checks);
        var suite = XDocument.Load(path).Root!.Element("testsuite")!;
        Assert.Equal("3", suite.Attribute("tests")!.Value);
        Assert.Equal("1", suite.Attribute("failures")!.Value);
        Assert.Equal("1", suite.Attribute("skipped")!.Value);
        Assert.Single(suite.Elements("testcase"), t => t.Element("failure") != null && t.Attribute("name")!.Value == "entropy.real.b");
    }

    [Fact]
    public void A_tolerance_file_with_a_bad_rule_is_refused_by_name()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "tol.json");
        File.WriteAllText(path, "{\"rules\": [{\"pattern\": \"entropy.*\", \"absolute\": -1}]}");
        var e = Assert.Throws<InvalidDataException>(() => RegressionCheck.ReadRules(path));
        Assert.Contains("tol.json", e.Message);
        File.WriteAllText(path, "{\"rules\": [{\"pattern\": \"entropy.*\", \"absolute\": 1}]}");
        Assert.Equal(1, RegressionCheck.ReadRules(path)[0].Absolute);
    }
}

/// <summary>End to end through the CLI: baseline from one run; the unchanged model passes the check, a perturbed model fails it.</summary>
[Collection("Console")]
public class RegressionGateTests(SmallReport report) : IClassFixture<SmallReport>
{
    /// <summary>The reference model with mid.attn's query/key/value weights tripled: its attention becomes much sharper.</summary>
    private static string PerturbedModel()
    {
        var model = OnnxModel.Load(Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx"));
        var weight = model.Graph.Initializer.Single(i => i.Name == "mid.attn.qkv.weight");
        var values = MemoryMarshal.Cast<byte, float>(weight.RawData.ToByteArray()).ToArray();
        for (int i = 0; i < values.Length; i++) values[i] *= 3;
        weight.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan()));
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "perturbed.onnx");
        model.Save(path);
        return path;
    }

    [Fact]
    public void The_unchanged_model_passes_the_check_and_a_perturbed_model_fails_it()
    {
        var dir = Directory.CreateTempSubdirectory("gate-").FullName;
        var baseline = Path.Combine(dir, "baseline.json");
        Assert.Equal(0, CliTests.Run("baseline", Path.Combine(report.Dir, "results.json"), "-o", baseline).Code);

        var same = Path.Combine(dir, "same");
        new ReportRunner(SmallReport.Options(same)).Run();
        var (code, output, _) = CliTests.Run("check", Path.Combine(same, "results.json"), "--baseline", baseline, "--junit", Path.Combine(dir, "same.xml"));
        Assert.True(code == 0, output);
        Assert.Contains(" 0 failed", output);

        var perturbed = Path.Combine(dir, "perturbed");
        new ReportRunner(SmallReport.Options(perturbed, PerturbedModel())).Run();
        (code, output, _) = CliTests.Run("check", Path.Combine(perturbed, "results.json"), "--baseline", baseline, "--junit", Path.Combine(dir, "perturbed.xml"));
        Assert.Equal(1, code);
        var failed = XDocument.Load(Path.Combine(dir, "perturbed.xml")).Descendants("testcase").Where(t => t.Element("failure") != null)
            .Select(t => t.Attribute("name")!.Value).ToList();
        Assert.Contains("entropy.real.mid.attn", failed);
        Assert.Contains("entropy.synthetic.mid.attn", failed);
        Assert.Contains(failed, f => f.StartsWith("entropy.synthetic.mid.attn.h", StringComparison.Ordinal));
    }
}
