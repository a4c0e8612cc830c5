using System.Diagnostics;
using DiffusionCircuits.Reporting;
using DiffusionCircuits.Tests.Reporting;
using DiffusionCircuits.Tests.Support;
using k8s;
using k8s.Models;

namespace DiffusionCircuits.Tests.Cli;

/// <summary>
/// A report split over shards that share its work folder gives the results of one machine, to the byte: in process,
/// as Slurm array jobs on a real one-node cluster (trait Needs=slurm), and as Kubernetes Indexed Jobs (manifests only).
/// </summary>
[Collection("Console")]
public class ScaleOutTests
{
    /// <summary>The small report both ways: 12 + 12 faces in chunks of 4 (3 chunks per data set and stage), two timesteps.</summary>
    private static readonly string[] SmallArgs = { "--images", "12", "--timesteps", "200,600", "--bootstrap", "200", "--chunk", "4" };

    private static ReportOptions Options(string outDir, WorkShard? shard = null) => SmallReport.Options(outDir) with { Images = 12, ChunkImages = 4, Shard = shard };

    private static readonly Lazy<string> OneMachine = new(() =>
    {
        var dir = Directory.CreateTempSubdirectory("one-machine-").FullName;
        new ReportRunner(Options(dir)).Run();
        return File.ReadAllText(Path.Combine(dir, "results.json"));
    });

    private static HashSet<string> WorkFiles(string dir) =>
        Directory.Exists(Path.Combine(dir, ".work")) ? Directory.EnumerateFiles(Path.Combine(dir, ".work")).Select(f => Path.GetFileName(f)).ToHashSet() : new();

    [Fact]
    public void Four_shards_write_disjoint_files_and_the_assembly_is_byte_identical_to_one_machine()
    {
        var dir = Directory.CreateTempSubdirectory("shards-").FullName;
        var written = Enumerable.Range(0, 4).Select(_ => new HashSet<string>()).ToList();
        var stops = new List<ShardStoppedException>();
        // Stage by stage, as array jobs run them: every shard once per round until each says all is finished.
        for (int round = 0; round < 4 && !(stops.Count >= 4 && stops.TakeLast(4).All(s => s.AllFinished)); round++)
            for (int k = 0; k < 4; k++)
            {
                var before = WorkFiles(dir);
                var stop = Assert.Throws<ShardStoppedException>(() => new ReportRunner(Options(dir, new WorkShard(k, 4))).Run());
                stops.Add(stop);
                written[k].UnionWith(WorkFiles(dir).Except(before));
            }
        Assert.True(stops.TakeLast(4).All(s => s.AllFinished), "four rounds did not finish the work");
        Assert.Contains(stops, s => !s.AllFinished && s.ChunksPending > 0);   // shards did stop at barriers, waiting on others
        // No file is written by two shards, and no shard writes the running features file or the outputs.
        for (int a = 0; a < 4; a++)
        {
            Assert.Contains(written[a], f => f.EndsWith(".bin", StringComparison.Ordinal));
            for (int b = a + 1; b < 4; b++) Assert.DoesNotContain(written[a].Intersect(written[b]), f => f != "key.json");
        }
        Assert.DoesNotContain("features.real.bin", written.SelectMany(w => w));
        Assert.False(File.Exists(Path.Combine(dir, "results.json")));
        Assert.Empty(Directory.EnumerateFiles(dir, ".shard-*"));   // each shard's lock is gone when it ends

        var outcome = new ReportRunner(Options(dir)).Run();
        Assert.Equal(0, outcome.ChunksComputed);     // the assembly computes nothing: every chunk came from a shard
        Assert.Equal(OneMachine.Value, File.ReadAllText(Path.Combine(dir, "results.json")));
    }

    [Fact]
    public void A_shard_with_other_inputs_is_refused_and_leaves_the_shared_work_alone()
    {
        var dir = Directory.CreateTempSubdirectory("shards-key-").FullName;
        Assert.Throws<ShardStoppedException>(() => new ReportRunner(Options(dir, new WorkShard(0, 2))).Run());
        var before = WorkFiles(dir);
        var wrong = Options(dir, new WorkShard(1, 2)) with { Analysis = Options(dir).Analysis with { Seed = 2 } };
        var e = Assert.Throws<InvalidDataException>(() => new ReportRunner(wrong).Run());
        Assert.Contains("never deletes shared work", e.Message);
        Assert.Equal(before, WorkFiles(dir));
        // The command line: exit 2 with one error line naming the folder.
        var run = CliTests.Run(new[] { "report" }.Concat(SmallArgs).Concat(new[] { "--seed", "2", "--out", dir, "--shard", "1/2" }).ToArray());
        Assert.Equal(2, run.Code);
        Assert.StartsWith("error: Work folder", run.Err);
    }

    [Theory]
    [InlineData("4/4")]
    [InlineData("0/0")]
    [InlineData("1")]
    [InlineData("a/b")]
    public void A_bad_shard_is_refused_with_what_is_allowed(string shard)
    {
        var run = CliTests.Run("report", "--out", Directory.CreateTempSubdirectory("shard-bad-").FullName, "--shard", shard);
        Assert.Equal(2, run.Code);
        Assert.Contains("--shard must be K/N with 0 <= K < N", run.Err);
        var noOut = CliTests.Run("report", "--shard", "0/2");
        Assert.Equal(2, noOut.Code);
        Assert.Contains("--shard needs --out", noOut.Err);
    }

    [Fact]
    public void Slurm_scripts_are_array_jobs_chained_after_each_other_and_valid_bash()
    {
        var dir = Directory.CreateTempSubdirectory("slurm-scripts-").FullName;
        var run = CliTests.Run(new[] { "slurm", "--shards", "4", "--partition", "gpu", "--time", "02:00:00", "--gpus-per-task", "1", "--out", dir }.Concat(SmallArgs).ToArray());
        Assert.True(run.Code == 0, run.Err);
        // The report options are checked in process, silently: only report --check-options itself says they are valid.
        Assert.DoesNotContain("The options are valid.", run.Out);
        Assert.Contains("The options are valid.", CliTests.Run(new[] { "report", "--check-options", "--out", dir }.Concat(SmallArgs).ToArray()).Out);
        var scripts = Directory.GetFiles(Path.Combine(dir, "slurm"), "*.sbatch").Order().ToList();
        Assert.Equal(new[] { "1-features.sbatch", "2-joint.sbatch", "3-assemble.sbatch" }, scripts.Select(Path.GetFileName));
        foreach (var script in scripts)
        {
            var text = File.ReadAllText(script);
            bool array = !script.EndsWith("assemble.sbatch", StringComparison.Ordinal);
            Assert.Equal(array, text.Contains("#SBATCH --array=0-3\n"));
            Assert.Equal(array, text.Contains("--shard \"${SLURM_ARRAY_TASK_ID}/4\""));
            Assert.Contains("#SBATCH --partition=gpu\n", text);
            Assert.Contains("#SBATCH --time=02:00:00\n", text);
            Assert.Contains("#SBATCH --gpus-per-task=1\n", text);
            Assert.Contains($"--chunk 4 --gpu 0 --out {dir}", text);   // one GPU per task: the task's first visible one
            Bash("-n", script);
        }
        var submit = File.ReadAllText(Path.Combine(dir, "slurm", "submit.sh"));
        Assert.Contains("--dependency=afterok:$previous", submit);
        Assert.True(submit.IndexOf("1-features", StringComparison.Ordinal) < submit.IndexOf("2-joint", StringComparison.Ordinal));
        Bash("-n", Path.Combine(dir, "slurm", "submit.sh"));
        // A bad report option is refused here, before anything reaches the cluster.
        var bad = CliTests.Run("slurm", "--shards", "4", "--out", dir, "--timesteps", "2000");
        Assert.Equal(2, bad.Code);
        Assert.Contains("timestep", bad.Err);
    }

    private static void Bash(params string[] args)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardError = true };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"bash {string.Join(" ", args)}: {err}");
    }

    [Fact]
    public void Kubernetes_manifests_are_indexed_jobs_that_parse_strictly_as_the_api_types()
    {
        var folder = Directory.CreateTempSubdirectory("k8s-").FullName;
        var run = CliTests.Run(new[] { "k8s", "--shards", "4", "--image", "registry.example/diffcircuits:0.9.0", "--claim", "faces", "--out", "/work/run1",
            "--manifests", folder, "--gpus-per-task", "1" }.Concat(SmallArgs).ToArray());
        Assert.True(run.Code == 0, run.Err);
        var files = Directory.GetFiles(folder, "*.yaml").Order().ToList();
        Assert.Equal(new[] { "diffcircuits-1-features.yaml", "diffcircuits-2-joint.yaml", "diffcircuits-3-assemble.yaml" }, files.Select(Path.GetFileName));
        foreach (var file in files)
        {
            string yaml = File.ReadAllText(file);
            // Strict: a field the Kubernetes API types (generated from its OpenAPI schema) do not have is refused.
            var job = KubernetesYaml.Deserialize<V1Job>(yaml, strict: true);
            bool indexed = !file.EndsWith("assemble.yaml", StringComparison.Ordinal);
            Assert.Equal(("batch/v1", "Job"), (job.ApiVersion, job.Kind));
            Assert.Matches("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", job.Metadata.Name);
            Assert.Equal(indexed ? "Indexed" : "NonIndexed", job.Spec.CompletionMode);
            Assert.Equal(indexed ? 4 : 1, job.Spec.Completions);
            Assert.Equal(indexed ? 4 : 1, job.Spec.Parallelism);
            var pod = job.Spec.Template.Spec;
            Assert.Equal("Never", pod.RestartPolicy);   // required by backoffLimitPerIndex and Indexed retries
            var container = Assert.Single(pod.Containers);
            Assert.False(string.IsNullOrEmpty(container.Name));
            Assert.Equal("registry.example/diffcircuits:0.9.0", container.Image);
            Assert.Equal("report", container.Args[0]);
            Assert.Equal(indexed, container.Args.Contains("$(JOB_COMPLETION_INDEX)/4"));
            Assert.Equal("/work/run1", container.Args[container.Args.IndexOf("--out") + 1]);
            Assert.Equal("1", container.Resources.Limits["nvidia.com/gpu"].ToString());
            // The shared volume: the mount names a volume of the pod, which is the claim.
            var mount = Assert.Single(container.VolumeMounts);
            Assert.Equal("/work", mount.MountPath);
            Assert.Equal("faces", pod.Volumes.Single(v => v.Name == mount.Name).PersistentVolumeClaim.ClaimName);
            // The schema check has teeth: a misspelt field is refused.
            Assert.ThrowsAny<Exception>(() => KubernetesYaml.Deserialize<V1Job>(yaml.Replace("completionMode:", "completionMod:"), strict: true));
        }
        var runSh = File.ReadAllText(Path.Combine(folder, "run.sh"));
        Assert.True(runSh.IndexOf("diffcircuits-1-features", StringComparison.Ordinal) < runSh.IndexOf("kubectl wait --for=condition=complete --timeout=-1s job/diffcircuits-1-features", StringComparison.Ordinal));
        Assert.True(runSh.IndexOf("job/diffcircuits-1-features", StringComparison.Ordinal) < runSh.IndexOf("apply -f diffcircuits-2-joint.yaml", StringComparison.Ordinal));
        Bash("-n", Path.Combine(folder, "run.sh"));
        var outside = CliTests.Run("k8s", "--shards", "2", "--image", "x", "--out", "/data/run", "--manifests", folder);
        Assert.Equal(2, outside.Code);
        Assert.Contains("--out must be an absolute path under --mount", outside.Err);
    }

    /// <summary>Slurm is usable here: sbatch on the PATH and a controller that answers (.ci/run starts a one-node cluster).</summary>
    private static string? SlurmMissing()
    {
        try
        {
            var info = new ProcessStartInfo("sinfo", "-h -o %T") { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(info)!;
            string state = p.StandardOutput.ReadToEnd().Trim(), err = p.StandardError.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 && state.Length > 0 ? null : $"sinfo found no controller ({err}); start one with: bash .ci/slurm.sh up, then export SLURM_CONF";
        }
        catch (System.ComponentModel.Win32Exception) { return "Slurm is not installed (sinfo is not on the PATH); .ci/run installs and starts a one-node cluster"; }
    }

    [SkippableFact]
    [Trait("Needs", "slurm")]
    public void A_four_shard_slurm_run_gives_the_results_of_one_machine_byte_for_byte()
    {
        string? missing = SlurmMissing();
        // CI (.ci/run) starts Slurm and sets DIFFCIRCUITS_REQUIRE_SLURM: there a missing cluster is a failure, not a skip.
        if (Environment.GetEnvironmentVariable("DIFFCIRCUITS_REQUIRE_SLURM") == "1") Assert.True(missing == null, missing);
        Skip.If(missing != null, missing);

        var dir = Directory.CreateTempSubdirectory("slurm-run-").FullName;
        string dll = Path.Combine(AppContext.BaseDirectory, "diffcircuits.dll");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = ModelRunner.RepoRoot() };
        foreach (var a in new[] { dll, "slurm", "--shards", "4", "--out", dir, "--submit" }.Concat(SmallArgs)) info.ArgumentList.Add(a);
        info.Environment.Remove("DIFFCIRCUITS_REAL");
        using var submit = Process.Start(info)!;
        string output = submit.StandardOutput.ReadToEnd() + submit.StandardError.ReadToEnd();
        submit.WaitForExit();
        Assert.True(submit.ExitCode == 0, output);
        var ids = System.Text.RegularExpressions.Regex.Matches(output, @": job (\d+)").Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(3, ids.Count);

        // Wait until none of the jobs is queued or running, then the assembly's results must be there.
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromMinutes(10))
        {
            var q = new ProcessStartInfo("squeue", $"-h -j {string.Join(",", ids)} -o %i") { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(q)!;
            string queued = p.StandardOutput.ReadToEnd().Trim();
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (queued.Length == 0) break;
            Thread.Sleep(1000);
        }
        string logs = string.Join("\n", Directory.EnumerateFiles(Path.Combine(dir, "slurm", "logs")).Order()
            .Select(f => $"== {Path.GetFileName(f)}\n{string.Join("\n", File.ReadLines(f).TakeLast(3))}"));
        Assert.True(File.Exists(Path.Combine(dir, "results.json")), $"no results.json after the jobs ended; logs:\n{logs}");
        Assert.Equal(4, Directory.GetFiles(Path.Combine(dir, "slurm", "logs"), "features-*.log").Length);
        Assert.Contains("Shard ", File.ReadAllText(Path.Combine(dir, "slurm", "logs", "features-0.log")));
        Assert.Equal(OneMachine.Value, File.ReadAllText(Path.Combine(dir, "results.json")));
    }
}
