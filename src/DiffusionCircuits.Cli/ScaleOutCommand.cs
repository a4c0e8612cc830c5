using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using DiffusionCircuits.Reporting;
using k8s;
using k8s.Models;

namespace DiffusionCircuits.Cli;

/// <summary>
/// `slurm` and `k8s`: the report as array jobs on an existing engine. The work folder of a report (<c>&lt;out&gt;/.work/</c>,
/// keyed chunks written atomically) is the shared queue; each stage is one array job of <c>report --shard K/N</c> runs,
/// the next stage starts when the last one has finished, and a final plain <c>report</c> assembles the results.
/// </summary>
internal static partial class ScaleOutCommand
{
    /// <summary>A stage: one array job whose shards stop at the barrier after it (see <see cref="WorkShard"/>).</summary>
    internal sealed record Stage(string Name, string What);

    /// <summary>The stages of a report: latents only for latent models; the last is the assembly (one task).</summary>
    internal static List<Stage> Stages(bool latent)
    {
        var stages = new List<Stage>();
        if (latent) stages.Add(new("latents", "each face through the VAE encoder"));
        stages.Add(new("features", "attention features and single-head ablation of every image"));
        stages.Add(new("joint", "roles, role and circuit ablation, activation patching"));
        stages.Add(new("assemble", "statistics, tables, charts, results.json and the report"));
        return stages;
    }

    /// <summary>The report options after `slurm`/`k8s`'s own: checked by the report command itself (<c>--check-options</c>), so a bad one is refused here, not on the cluster.</summary>
    private static List<string> ReportArguments(ParseResult parse, string outDir)
    {
        var tokens = parse.UnmatchedTokens.ToList();
        if (tokens.Any(t => t == "--shard" || t.StartsWith("--shard=", StringComparison.Ordinal)))
            throw new UserFacingException("--shard is set by the jobs themselves (one per array task); leave it out.");
        if (tokens.Any(t => t is "--out" or "-o" || t.StartsWith("--out=", StringComparison.Ordinal)))
            throw new UserFacingException("--out is an option of this command (before or after the report options), given once.");
        var error = new StringWriter();
        int code = CliApp.Run(new[] { "report" }.Concat(tokens).Concat(new[] { "--out", outDir, "--check-options" }).ToArray(), TextWriter.Null, error);
        if (code != CliApp.Ok)
            throw new UserFacingException("report options: " + (error.ToString().Split('\n').FirstOrDefault(l => l.StartsWith("error: ", StringComparison.Ordinal))?["error: ".Length..] ?? error.ToString().Trim()));
        return tokens;
    }

    private static bool IsLatent(IReadOnlyList<string> reportArguments) =>
        reportArguments.Any(t => t is "--pipeline" or "--vae-encoder" || t.StartsWith("--pipeline=", StringComparison.Ordinal) || t.StartsWith("--vae-encoder=", StringComparison.Ordinal));

    private static Option<int> Shards() => new("--shards")
    {
        Description = $"Shards per stage: array tasks that share the work (1..{WorkShard.MaxCount}).", Required = true,
    };

    private static int CheckShards(int n) => n is >= 1 and <= WorkShard.MaxCount ? n
        : throw new UserFacingException($"--shards must be 1..{WorkShard.MaxCount} (got {n}).");

    // ---------------------------------------------------------------- Slurm

    public static Command CreateSlurm()
    {
        var shards = Shards();
        var output = new Option<string>("--out", "-o") { Description = "The report's output folder, on a file system every node sees; the scripts go into <out>/slurm/.", Required = true };
        var submit = new Option<bool>("--submit") { Description = "Submit the jobs with sbatch (each stage after the last, --dependency=afterok) and print their ids." };
        var partition = new Option<string?>("--partition") { Description = "Slurm partition (sbatch --partition)." };
        var gpus = new Option<int>("--gpus-per-task") { Description = "GPUs per task (sbatch --gpus-per-task); > 0 also runs the model with --gpu 0 (the task's first visible GPU).", DefaultValueFactory = _ => 0 };
        var time = new Option<string?>("--time") { Description = "Time limit per task (sbatch --time), e.g. 02:00:00." };
        var cmd = new Command("slurm",
            "Write the report as Slurm array jobs into <out>/slurm/ (one per stage, each task `report --shard $SLURM_ARRAY_TASK_ID/N`, then an assembly job) " +
            "and with --submit submit them. Every other option is a report option, passed on unchanged.")
        {
            shards, output, submit, partition, gpus, time,
        };
        cmd.TreatUnmatchedTokensAsErrors = false;
        cmd.SetAction(parse =>
        {
            int n = CheckShards(parse.GetValue(shards));
            string outDir = Path.GetFullPath(parse.GetValue(output)!);
            var report = ReportArguments(parse, outDir);
            int gpusPerTask = parse.GetValue(gpus);
            if (gpusPerTask < 0) throw new UserFacingException($"--gpus-per-task must be >= 0 (got {gpusPerTask}).");
            if (gpusPerTask > 0 && !report.Contains("--gpu")) report.AddRange(new[] { "--gpu", "0" });
            if (parse.GetValue(time) is string t && !SlurmTime().IsMatch(t))
                throw new UserFacingException($"--time must be a Slurm time such as 30, 02:00:00 or 1-12:00:00 (got '{t}').");
            var scripts = SlurmScripts.Write(outDir, n, report, IsLatent(report), parse.GetValue(partition), gpusPerTask, parse.GetValue(time));
            Console.Out.WriteLine($"Wrote {scripts.Count} job scripts and submit.sh into {Path.Combine(outDir, "slurm")} ({n} shards per stage).");
            if (!parse.GetValue(submit))
            {
                Console.Out.WriteLine($"Submit them with: bash {Path.Combine(outDir, "slurm", "submit.sh")}");
                return CliApp.Ok;
            }
            string? previous = null;
            foreach (var (stage, script) in scripts)
            {
                string id = SlurmScripts.Submit(script, previous);
                Console.Out.WriteLine($"{stage.Name}: job {id}{(stage.Name == "assemble" ? "" : $" (array 0-{n - 1})")}{(previous != null ? $", after {previous}" : "")}");
                previous = id;
            }
            Console.Out.WriteLine($"The report appears in {outDir} when job {previous} ends; logs in {Path.Combine(outDir, "slurm", "logs")}.");
            return CliApp.Ok;
        });
        return cmd;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^(\d+-)?\d+(:\d{1,2}){0,2}$")]
    private static partial System.Text.RegularExpressions.Regex SlurmTime();

    // ---------------------------------------------------------------- Kubernetes

    public static Command CreateKubernetes()
    {
        var shards = Shards();
        var output = new Option<string>("--out", "-o") { Description = "The report's output folder as the pods see it: an absolute path under --mount, on the shared volume.", Required = true };
        var image = new Option<string>("--image") { Description = "Container image with the diffcircuits tool on its PATH (and the model and data the options name).", Required = true };
        var claim = new Option<string>("--claim") { Description = "PersistentVolumeClaim (ReadWriteMany) that holds --out, shared by every pod.", DefaultValueFactory = _ => "diffcircuits-work" };
        var mount = new Option<string>("--mount") { Description = "Where the claim is mounted in the pods.", DefaultValueFactory = _ => "/work" };
        var gpus = new Option<int>("--gpus-per-task") { Description = "nvidia.com/gpu per pod; > 0 also runs the model with --gpu 0.", DefaultValueFactory = _ => 0 };
        var manifests = new Option<string>("--manifests") { Description = "Folder for the manifests (one Indexed Job per stage) and run.sh.", DefaultValueFactory = _ => "k8s" };
        var name = new Option<string>("--name") { Description = "Name prefix of the Jobs (a DNS label).", DefaultValueFactory = _ => "diffcircuits" };
        var cmd = new Command("k8s",
            "Write the report as Kubernetes Indexed Jobs (one per stage, each pod `report --shard $(JOB_COMPLETION_INDEX)/N` on a shared volume, then an " +
            "assembly Job) and run.sh, which applies them in order with kubectl. Every other option is a report option, passed on unchanged.")
        {
            shards, output, image, claim, mount, gpus, manifests, name,
        };
        cmd.TreatUnmatchedTokensAsErrors = false;
        cmd.SetAction(parse =>
        {
            int n = CheckShards(parse.GetValue(shards));
            string outDir = parse.GetValue(output)!, mountPath = parse.GetValue(mount)!.TrimEnd('/');
            if (!outDir.StartsWith('/') || !(outDir + "/").StartsWith(mountPath + "/", StringComparison.Ordinal))
                throw new UserFacingException($"--out must be an absolute path under --mount '{mountPath}' (the shared volume as the pods see it); got '{outDir}'.");
            string prefix = parse.GetValue(name)!;
            if (!DnsLabel().IsMatch(prefix) || prefix.Length > 40)
                throw new UserFacingException($"--name must be a DNS label of at most 40 characters (a-z, 0-9, '-'); got '{prefix}'.");
            var report = ReportArguments(parse, outDir);
            int gpusPerTask = parse.GetValue(gpus);
            if (gpusPerTask < 0) throw new UserFacingException($"--gpus-per-task must be >= 0 (got {gpusPerTask}).");
            if (gpusPerTask > 0 && !report.Contains("--gpu")) report.AddRange(new[] { "--gpu", "0" });
            var jobs = KubernetesJobs.Create(prefix, n, report, outDir, IsLatent(report), parse.GetValue(image)!, parse.GetValue(claim)!, mountPath, gpusPerTask);
            string folder = Path.GetFullPath(parse.GetValue(manifests)!);
            var files = KubernetesJobs.Write(folder, jobs);
            Console.Out.WriteLine($"Wrote {files.Count} Job manifests and run.sh into {folder} ({n} pods per stage); apply them in order with: bash {Path.Combine(folder, "run.sh")}");
            return CliApp.Ok;
        });
        return cmd;
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial System.Text.RegularExpressions.Regex DnsLabel();

    /// <summary>The command that runs this tool again: the apphost, or dotnet with the assembly.</summary>
    internal static IReadOnlyList<string> SelfInvocation()
    {
        string process = Environment.ProcessPath ?? "dotnet";
        string assembly = typeof(ScaleOutCommand).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? new[] { process, assembly } : new[] { process };
    }
}

/// <summary>sbatch scripts of a sharded report, and their submission.</summary>
internal static class SlurmScripts
{
    /// <summary>Writes one script per stage and submit.sh into <c>&lt;out&gt;/slurm/</c>; the stages with their script paths, in order.</summary>
    public static List<(ScaleOutCommand.Stage Stage, string Script)> Write(string outDir, int shards, IReadOnlyList<string> report, bool latent,
        string? partition, int gpusPerTask, string? time)
    {
        string dir = Path.Combine(outDir, "slurm"), logs = Path.Combine(dir, "logs");
        Directory.CreateDirectory(logs);
        var invocation = string.Join(" ", ScaleOutCommand.SelfInvocation().Select(Quote));
        var written = new List<(ScaleOutCommand.Stage, string)>();
        foreach (var stage in ScaleOutCommand.Stages(latent))
        {
            bool array = stage.Name != "assemble";
            var s = new StringBuilder();
            s.Append("#!/bin/bash\n");
            s.Append($"# DiffusionCircuits report, stage '{stage.Name}': {stage.What}. Written by `diffcircuits slurm`.\n");
            s.Append($"#SBATCH --job-name=dc-{stage.Name}\n");
            if (array) s.Append($"#SBATCH --array=0-{shards - 1}\n");
            s.Append($"#SBATCH --output={logs}/{stage.Name}{(array ? "-%a" : "")}.log\n");
            s.Append("#SBATCH --ntasks=1\n");
            if (partition != null) s.Append($"#SBATCH --partition={partition}\n");
            if (time != null) s.Append($"#SBATCH --time={time}\n");
            if (gpusPerTask > 0) s.Append($"#SBATCH --gpus-per-task={gpusPerTask}\n");
            s.Append("set -euo pipefail\n");
            s.Append($"cd {Quote(Environment.CurrentDirectory)}   # relative paths in the options are relative to where `slurm` ran\n");
            var args = report.Select(Quote).Append("--out").Append(Quote(outDir));
            if (array) args = args.Append("--shard").Append($"\"${{SLURM_ARRAY_TASK_ID}}/{shards}\"");
            s.Append($"exec {invocation} report {string.Join(" ", args)}\n");
            string path = Path.Combine(dir, $"{written.Count + 1}-{stage.Name}.sbatch");
            AtomicFile.WriteAllText(path, s.ToString());
            written.Add((stage, path));
        }
        var submit = new StringBuilder("#!/bin/bash\n# Submits the stages in order, each after the last has ended well. Written by `diffcircuits slurm`.\nset -euo pipefail\nprevious=\n");
        foreach (var (stage, path) in written)
        {
            submit.Append($"id=$(sbatch --parsable ${{previous:+--dependency=afterok:$previous}} {Quote(path)})\nprevious=${{id%%;*}}\n");
            submit.Append($"echo \"{stage.Name}: job $previous\"\n");
        }
        AtomicFile.WriteAllText(Path.Combine(dir, "submit.sh"), submit.ToString());
        return written;
    }

    /// <summary>Submits a script (after <paramref name="after"/> ended well) and returns its job id.</summary>
    public static string Submit(string script, string? after)
    {
        var info = new ProcessStartInfo("sbatch") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("--parsable");
        if (after != null) info.ArgumentList.Add($"--dependency=afterok:{after}");
        info.ArgumentList.Add(script);
        Process process;
        try { process = Process.Start(info)!; }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new UserFacingException($"sbatch is not on the PATH: install Slurm's client (Debian: slurm-client) or submit {Path.Combine(Path.GetDirectoryName(script)!, "submit.sh")} where it is.");
        }
        using (process)
        {
            string output = process.StandardOutput.ReadToEnd(), error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0) throw new UserFacingException($"sbatch refused {script}: {error.Trim()}");
            return output.Trim().Split(';')[0];
        }
    }

    /// <summary>A word for bash, in single quotes where it needs them.</summary>
    public static string Quote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./,=:@%+".Contains(c)) ? word : "'" + word.Replace("'", "'\\''") + "'";
}

/// <summary>Kubernetes Indexed Jobs of a sharded report (typed with the official client's API models, written as YAML).</summary>
internal static class KubernetesJobs
{
    public static List<(ScaleOutCommand.Stage Stage, V1Job Job)> Create(string prefix, int shards, IReadOnlyList<string> report, string outDir, bool latent,
        string image, string claim, string mountPath, int gpusPerTask)
    {
        var jobs = new List<(ScaleOutCommand.Stage, V1Job)>();
        foreach (var stage in ScaleOutCommand.Stages(latent))
        {
            bool indexed = stage.Name != "assemble";
            var args = new List<string> { "report" };
            args.AddRange(report);
            args.AddRange(new[] { "--out", outDir });
            // Kubernetes puts the pod's index in JOB_COMPLETION_INDEX and expands $(VAR) in args.
            if (indexed) args.AddRange(new[] { "--shard", $"$(JOB_COMPLETION_INDEX)/{shards}" });
            var container = new V1Container
            {
                Name = "diffcircuits", Image = image, Command = new List<string> { "diffcircuits" }, Args = args, WorkingDir = mountPath,
                VolumeMounts = new List<V1VolumeMount> { new() { Name = "work", MountPath = mountPath } },
            };
            if (gpusPerTask > 0)
                container.Resources = new V1ResourceRequirements { Limits = new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new(gpusPerTask.ToString(CultureInfo.InvariantCulture)) } };
            var job = new V1Job
            {
                ApiVersion = "batch/v1", Kind = "Job",
                Metadata = new V1ObjectMeta
                {
                    Name = $"{prefix}-{jobs.Count + 1}-{stage.Name}",
                    Labels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "diffcircuits", ["diffcircuits/stage"] = stage.Name },
                    Annotations = new Dictionary<string, string> { ["diffcircuits/what"] = stage.What },
                },
                Spec = new V1JobSpec
                {
                    CompletionMode = indexed ? "Indexed" : "NonIndexed", Completions = indexed ? shards : 1, Parallelism = indexed ? shards : 1,
                    // A failed pod is retried on its own index; a shard that is run again keeps its finished chunks.
                    BackoffLimitPerIndex = indexed ? 3 : null, BackoffLimit = indexed ? null : 3,
                    Template = new V1PodTemplateSpec
                    {
                        Metadata = new V1ObjectMeta { Labels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "diffcircuits" } },
                        Spec = new V1PodSpec
                        {
                            RestartPolicy = "Never", Containers = new List<V1Container> { container },
                            Volumes = new List<V1Volume> { new() { Name = "work", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = claim } } },
                        },
                    },
                },
            };
            jobs.Add((stage, job));
        }
        return jobs;
    }

    /// <summary>The manifests (one YAML file per stage) and run.sh, which applies each after the last has completed.</summary>
    public static List<string> Write(string folder, IReadOnlyList<(ScaleOutCommand.Stage Stage, V1Job Job)> jobs)
    {
        Directory.CreateDirectory(folder);
        var files = new List<string>();
        var run = new StringBuilder("#!/bin/bash\n# Applies the stages in order, each after the last has completed. Written by `diffcircuits k8s`.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n");
        foreach (var (_, job) in jobs)
        {
            string file = $"{job.Metadata.Name}.yaml";
            AtomicFile.WriteAllText(Path.Combine(folder, file), KubernetesYaml.Serialize(job));
            files.Add(file);
            run.Append($"kubectl apply -f {file}\nkubectl wait --for=condition=complete --timeout=-1s job/{job.Metadata.Name}\n");
        }
        AtomicFile.WriteAllText(Path.Combine(folder, "run.sh"), run.ToString());
        return files;
    }
}
