using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Cli;

/// <summary>
/// The packages as a user gets them: the library and the `diffcircuits` .NET tool packed with their metadata, the tool
/// installed and run from a folder outside the repository (its default model travels with it), and run.ps1 through
/// PowerShell (the global tool from NuGet). One class: the steps build the same projects and must not overlap.
/// </summary>
public class PackagingTests
{
    private static (int Code, string Out, string Err) Exec(string file, string workingDirectory, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("DIFFCIRCUITS_REAL");
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(8)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 8 minutes.");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static XElement Nuspec(string package)
    {
        using var zip = ZipFile.OpenRead(package);
        using var s = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
        return XDocument.Load(s).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }

    private static string? Meta(XElement metadata, string name) => metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;

    [Fact]
    public void The_tool_and_the_library_pack_with_metadata_and_the_installed_tool_reports_from_any_folder()
    {
        string root = ModelRunner.RepoRoot();
        string feed = Directory.CreateTempSubdirectory("dc-feed-").FullName;
        foreach (var project in new[] { "src/DiffusionCircuits", "src/DiffusionCircuits.Cli" })
        {
            var (code, output, err) = Exec("dotnet", root, "pack", project, "-c", "Release", "-o", feed);
            Assert.True(code == 0, $"dotnet pack {project} failed:\n{output}\n{err}");
        }
        var library = Nuspec(Directory.GetFiles(feed, "DiffusionCircuits.*.nupkg").Single(f => !f.EndsWith(".snupkg", StringComparison.Ordinal)));
        var tool = Nuspec(Path.Combine(feed, $"diffcircuits.{Meta(library, "version")}.nupkg"));
        foreach (var metadata in new[] { library, tool })
        {
            Assert.DoesNotContain("Package Description", Meta(metadata, "description"));
            Assert.Equal("MIT", Meta(metadata, "license"));
            Assert.Equal("README.md", Meta(metadata, "readme"));
            Assert.Contains("interpretability", Meta(metadata, "tags"));
            Assert.NotNull(metadata.Elements().FirstOrDefault(e => e.Name.LocalName == "repository")?.Attribute("commit"));
        }
        Assert.Single(Directory.GetFiles(feed, "DiffusionCircuits.*.snupkg"));
        // One package per platform, each with only its own ONNX Runtime natives and with the bundled model.
        var linux = Directory.GetFiles(feed, "diffcircuits.linux-x64.*.nupkg").Single();
        using (var zip = ZipFile.OpenRead(linux))
        {
            Assert.Contains(zip.Entries, e => e.FullName.EndsWith("models/reference-ddpm-32.onnx", StringComparison.Ordinal));
            Assert.Contains(zip.Entries, e => e.FullName.EndsWith("libonnxruntime.so", StringComparison.Ordinal));
            Assert.DoesNotContain(zip.Entries, e => e.FullName.EndsWith("onnxruntime.dll", StringComparison.Ordinal));
        }

        string tools = Directory.CreateTempSubdirectory("dc-tools-").FullName;
        var install = Exec("dotnet", feed, "tool", "install", "diffcircuits", "--version", Meta(tool, "version")!, "--add-source", feed, "--tool-path", tools);
        Assert.True(install.Code == 0, $"dotnet tool install failed:\n{install.Out}\n{install.Err}");
        string exe = Path.Combine(tools, OperatingSystem.IsWindows() ? "diffcircuits.exe" : "diffcircuits");
        string away = Directory.CreateTempSubdirectory("dc-away-").FullName;   // no models/ folder here or above
        var version = Exec(exe, away, "--version");
        Assert.Equal(0, version.Code);
        Assert.StartsWith(Meta(tool, "version")!, version.Out.Trim());
        var report = Exec(exe, away, "report", "--images", "4", "--timesteps", "500", "--bootstrap", "100", "--roles", "3", "--patch-pairs", "2", "--out", "r");
        Assert.True(report.Code == 0, $"the installed tool's report failed:\n{report.Out}\n{report.Err}");
        Assert.True(File.Exists(Path.Combine(away, "r", "report.pdf")));
        Assert.Contains("reference-ddpm-32.onnx", File.ReadAllText(Path.Combine(away, "r", "results.json")));

        // run.ps1 through PowerShell, installed as the global tool NuGet serves.
        string pwshDir = Directory.CreateTempSubdirectory("dc-pwsh-").FullName;
        var pwshInstall = Exec("dotnet", pwshDir, "tool", "install", "PowerShell", "--version", "7.6.9", "--tool-path", pwshDir);
        Assert.True(pwshInstall.Code == 0, $"installing PowerShell failed:\n{pwshInstall.Out}\n{pwshInstall.Err}");
        string pwsh = Path.Combine(pwshDir, OperatingSystem.IsWindows() ? "pwsh.exe" : "pwsh");
        var inspect = Exec(pwsh, root, "-NoProfile", "-File", "./run.ps1", "inspect", "models/reference-ddpm-32.onnx", "--json");
        Assert.True(inspect.Code == 0, $"run.ps1 inspect failed:\n{inspect.Out}\n{inspect.Err}");
        Assert.Contains("\"down.1.attn\"", inspect.Out);
        string psOut = Directory.CreateTempSubdirectory("dc-ps-report-").FullName;
        var psReport = Exec(pwsh, root, "-NoProfile", "-File", "./run.ps1", "report", "--images", "4", "--timesteps", "500", "--bootstrap", "100", "--roles", "3",
            "--patch-pairs", "0", "--out", psOut);
        Assert.True(psReport.Code == 0, $"run.ps1 report failed:\n{psReport.Out}\n{psReport.Err}");
        Assert.True(File.Exists(Path.Combine(psOut, "report.pdf")));
        var bad = Exec(pwsh, root, "-NoProfile", "-File", "./run.ps1", "report", "--images", "many");
        Assert.Equal(2, bad.Code);   // the CLI's exit code passes through
        Assert.Contains("error: ", bad.Err);
    }
}
