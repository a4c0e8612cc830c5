using System.Diagnostics;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Reporting;

/// <summary>Interrupted runs keep their finished work and resume to the same bytes; output folders are guarded.</summary>
public class ResumeTests
{
    private static readonly string[] Args = { "report", "--images", "12", "--timesteps", "200,600", "--bootstrap", "200", "--chunk", "4" };

    private static Process Start(string outDir)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "diffcircuits.dll");
        // SIGINT at its default, as in a terminal: a test runner started as a background job of a non-interactive
        // shell ignores SIGINT, and the CLI would inherit that and never see the Ctrl-C these tests send.
        var info = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = ModelRunner.RepoRoot() };
        info.ArgumentList.Add("--default-signal=INT");
        info.ArgumentList.Add("dotnet");
        info.ArgumentList.Add(dll);
        foreach (var a in Args) info.ArgumentList.Add(a);
        info.ArgumentList.Add("--out");
        info.ArgumentList.Add(outDir);
        info.Environment.Remove("DIFFCIRCUITS_REAL");
        return Process.Start(info)!;
    }

    /// <summary>Starts the CLI and SIGKILLs it as soon as a finished chunk matching <paramref name="pattern"/> appears.</summary>
    private static int KillWhen(string outDir, string pattern)
    {
        using var p = Start(outDir);
        p.StandardOutput.ReadToEndAsync();
        p.StandardError.ReadToEndAsync();
        var work = Path.Combine(outDir, ".work");
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromMinutes(3))
        {
            if (Directory.Exists(work) && Directory.EnumerateFiles(work, pattern).Any())
            {
                p.Kill(entireProcessTree: true);   // SIGKILL: no handler, no cleanup
                p.WaitForExit();
                return Directory.EnumerateFiles(work, "*.bin").Count();
            }
            Assert.False(p.HasExited, $"the run ended before '{pattern}' appeared (exit {(p.HasExited ? p.ExitCode : 0)})");
            Thread.Sleep(10);
        }
        throw new TimeoutException($"no '{pattern}' chunk within 3 minutes");
    }

    [Fact]
    public void A_run_killed_in_capture_and_again_in_ablation_resumes_to_byte_identical_results()
    {
        var uninterrupted = Directory.CreateTempSubdirectory("resume-a-").FullName;
        new ReportRunner(SmallReport.Options(uninterrupted) with { Images = 12, ChunkImages = 4 }).Run();

        var dir = Directory.CreateTempSubdirectory("resume-b-").FullName;
        int chunks1 = KillWhen(dir, "features.*.bin");
        Assert.InRange(chunks1, 1, 5);      // 3 chunks per data set: killed during capture
        Assert.False(File.Exists(Path.Combine(dir, "results.json")));
        Assert.False(File.Exists(Path.Combine(dir, "report.pdf")));

        int chunks2 = KillWhen(dir, "ablation.single.*.bin");
        Assert.True(chunks2 > chunks1, "the second run keeps the first run's chunks and adds ablation chunks");
        Assert.False(File.Exists(Path.Combine(dir, "report.pdf")));

        using var last = Start(dir);
        string output = last.StandardOutput.ReadToEnd() + last.StandardError.ReadToEnd();
        last.WaitForExit();
        Assert.True(last.ExitCode == 0, output);
        // One line says where it resumed: both data sets' features whole, the single-head ablation partly done.
        var resumed = output.Split('\n').Single(l => l.StartsWith("Resumed: ", StringComparison.Ordinal));
        Assert.Contains("features real: 3 of 3 chunks done, features synthetic: 3 of 3 chunks done", resumed);
        Assert.Matches(@"single-head ablation real: [1-3] of 3 chunks done", resumed);
        Assert.DoesNotContain("role and circuit ablation", resumed);
        // A log (output redirected) gets plain lines: each stage's start, tenths and end, with the overall estimate;
        // the stand-in banner once at the start and once with the summary.
        Assert.Matches(@"\[ *\d+ s\] role and circuit ablation real: started \((about .* left|estimating)\)", output);
        Assert.Matches(@"role and circuit ablation synthetic: done in \d+ s \((about .* left|estimating)\)", output);
        Assert.Equal(2, output.Split("NO REAL FACES GIVEN").Length - 1);
        Assert.DoesNotContain("Estimate before starting", output);   // a resumed run has the live estimate only
        Assert.Equal(File.ReadAllText(Path.Combine(uninterrupted, "results.json")), File.ReadAllText(Path.Combine(dir, "results.json")));
        Assert.True(File.Exists(Path.Combine(dir, "report.pdf")));
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    [Fact]
    public async Task Ctrl_c_says_what_is_kept_exits_130_and_the_next_run_resumes_from_the_kept_work()
    {
        var dir = Directory.CreateTempSubdirectory("sigint-").FullName;
        using var p = Start(dir);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var work = Path.Combine(dir, ".work");
        var watch = Stopwatch.StartNew();
        while (!(Directory.Exists(work) && Directory.EnumerateFiles(work, "features.*.bin").Any()))
        {
            Assert.False(p.HasExited, "the run ended before a chunk was kept");
            Assert.True(watch.Elapsed < TimeSpan.FromMinutes(3), "no chunk within 3 minutes");
            Thread.Sleep(10);
        }
        Assert.Equal(0, SendSignal(p.Id, 2));   // SIGINT, as Ctrl-C sends it
        Assert.True(p.WaitForExit(60_000), "the run did not stop on SIGINT");
        Assert.Equal(130, p.ExitCode);
        Assert.Contains("interrupted (SIGINT)", await stderr);
        Assert.False(File.Exists(Path.Combine(dir, "results.json")));
        // A fresh run starts with its estimate from a forward pass timed on this machine.
        Assert.Matches(@"Estimate before starting: at most about \d+ (s|min|h) \([\d,]+ forward passes at [\d.]+ ms each", await stdout);

        using var again = Start(dir);
        string output = again.StandardOutput.ReadToEnd() + again.StandardError.ReadToEnd();
        again.WaitForExit();
        Assert.True(again.ExitCode == 0, output);
        Assert.Contains("Resumed:", output);
    }

    [Fact]
    public void Changed_inputs_discard_the_finished_work_with_a_message_naming_what_changed()
    {
        var dir = Directory.CreateTempSubdirectory("work-").FullName;
        var images = new SyntheticFaceGenerator(1, 16).GenerateMany(2).ToList();
        var key = new WorkKey("abc", new Dictionary<string, string> { ["real"] = "r1", ["synthetic"] = "s1" }, "{\"seed\":\"1\"}");
        var first = new ChunkedCheckpoint(dir, key, 2);
        int computed = 0;
        AblationResult Compute(IReadOnlyList<FaceImage> chunk, IProgress<double> _)
        {
            computed++;
            return new AblationResult(DataSetId.Synthetic, new[] { 200 }, chunk.Select(i => i.Id).ToList(), Array.Empty<AblationCondition>());
        }
        first.Ablation("single", DataSetId.Synthetic, images, Array.Empty<AblationCondition>(), Compute, null);
        var same = new ChunkedCheckpoint(dir, key, 2);
        same.Ablation("single", DataSetId.Synthetic, images, Array.Empty<AblationCondition>(), Compute, null);
        Assert.Equal(1, computed);
        Assert.Equal(1, same.ChunksLoaded);

        var messages = new List<string>();
        var changed = new ChunkedCheckpoint(dir, key with { ModelSha256 = "def", Options = "{\"seed\":\"2\"}" }, 2, messages.Add);
        Assert.Contains(messages, m => m.Contains("the model") && m.Contains("the options or seed") && m.Contains("starting afresh"));
        changed.Ablation("single", DataSetId.Synthetic, images, Array.Empty<AblationCondition>(), Compute, null);
        Assert.Equal(2, computed);
    }

    [Fact]
    public void A_corrupt_chunk_is_computed_again_instead_of_trusted()
    {
        var dir = Directory.CreateTempSubdirectory("work-").FullName;
        var images = new SyntheticFaceGenerator(1, 16).GenerateMany(2).ToList();
        var key = new WorkKey("abc", new Dictionary<string, string>(), "o");
        int computed = 0;
        AblationResult Compute(IReadOnlyList<FaceImage> chunk, IProgress<double> _)
        {
            computed++;
            return new AblationResult(DataSetId.Synthetic, new[] { 200 }, chunk.Select(i => i.Id).ToList(), Array.Empty<AblationCondition>());
        }
        new ChunkedCheckpoint(dir, key, 2).Ablation("single", DataSetId.Synthetic, images, Array.Empty<AblationCondition>(), Compute, null);
        var file = Directory.EnumerateFiles(dir, "*.bin").Single();
        File.WriteAllBytes(file, File.ReadAllBytes(file)[..10]);   // truncated, as by a full disk
        var again = new ChunkedCheckpoint(dir, key, 2);
        again.Ablation("single", DataSetId.Synthetic, images, Array.Empty<AblationCondition>(), Compute, null);
        Assert.Equal(2, computed);
        Assert.Equal(0, again.ChunksLoaded);
    }

    [Fact]
    public void A_second_run_on_the_same_output_folder_is_refused_naming_the_first()
    {
        var dir = Directory.CreateTempSubdirectory("lock-").FullName;
        using (RunLock.Acquire(dir, "report --model first.onnx"))
        {
            var e = Assert.Throws<IOException>(() => new ReportRunner(SmallReport.Options(dir)).Run());
            Assert.Contains("in use by another run", e.Message);
            Assert.Contains("first.onnx", e.Message);
            Assert.Contains($"pid {Environment.ProcessId}", e.Message);
        }
        using (RunLock.Acquire(dir, "the lock is free again")) { }
    }

    [Fact]
    public void An_output_folder_that_cannot_be_written_is_an_error_before_any_work()
    {
        var file = Path.Combine(Directory.CreateTempSubdirectory().FullName, "a-file");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<IOException>(() => new ReportRunner(SmallReport.Options(Path.Combine(file, "out"))).Run());
        Assert.Contains("cannot be written", e.Message);
        Assert.Contains("a-file", e.Message);
    }
}
