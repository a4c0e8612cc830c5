using System.CommandLine;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>The <c>diffcircuits</c> command line: one root command, a sub-command per job.</summary>
public static class CliApp
{
    /// <summary>Exit codes: 0 success, 1 a check or analysis failed, 2 bad usage or input, 3 unexpected error (a bug); 130/143 interrupted.</summary>
    public const int Ok = 0, Failed = 1, BadInput = 2, Crashed = 3;

    /// <summary>What an interrupted command leaves, for the line printed on Ctrl-C or SIGTERM.</summary>
    public static string InterruptedNote(string signal) =>
        $"interrupted ({signal}): every file already written is complete (all are written atomically) and a finished report is kept; " +
        "report resumes from its kept work (<out>/.work) when run again with the same options.";

    /// <summary>
    /// Errors of the input or the environment that a user can fix (a missing or unreadable file, a model ONNX Runtime
    /// refuses, data that is not what it claims, a folder that cannot be written, a full disk): exit 2 with their
    /// message, which names the file. Anything else is a bug (exit 3).
    /// </summary>
    private static Exception? InputError(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } or System.Reflection.TargetInvocationException && e.InnerException != null) e = e.InnerException!;
        return e is UserFacingException or Onnx.OnnxModelException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException
            or UnauthorizedAccessException or IOException or System.Text.Json.JsonException ? e : null;
    }

    private static int UsageError(ParseResult parse, TextWriter error)
    {
        error.WriteLine($"error: {UsageErrors.Describe(parse)}");
        error.WriteLine($"hint: {UsageErrors.CommandPath(parse)} --help lists what is allowed.");
        return BadInput;
    }

    /// <summary>Runs the command line; the exit code (see <see cref="Ok"/>).</summary>
    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var root = new RootCommand("DiffusionCircuits: find, measure and ablate the attention heads of a diffusion UNet exported to ONNX.")
        {
            ReportCommand.Create(),
            CheckCommand.Create(),
            CheckCommand.CreateBaseline(),
            CheckCommand.CreateSchema(),
            InspectCommand.Create(),
            InstrumentCommand.Create(),
            SynthCommand.Create(),
            PrepareCommand.Create(),
            EvaluateCommand.Create(),
            FeaturesCommand.Create(),
            BenchCommand.Create(),
            CircuitsCommand.Create(),
            ScaleOutCommand.CreateSlurm(),
            ScaleOutCommand.CreateKubernetes(),
        };
        var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 160;   // tables in logs are not wrapped at 80
        if (output != null) config.Output = output;
        if (error != null) config.Error = error;
        try
        {
            var parse = root.Parse(args);
            // A usage error is bad input: exit 2 with one error line and a hint, not the whole help text.
            if (parse.Errors.Count > 0) return UsageError(parse, error ?? Console.Error);
            return parse.Invoke(config);
        }
        catch (Exception e) when (InputError(e) is { } input)
        {
            (error ?? Console.Error).WriteLine($"error: {input.Message.Split('\n')[0].Trim()}");
            return BadInput;
        }
        catch (Exception e)
        {
            (error ?? Console.Error).WriteLine($"unexpected error: {e}");
            return Crashed;
        }
    }
}

/// <summary>Usage errors (unknown commands or options, values of the wrong type) as one line, a guess and a hint.</summary>
internal static partial class UsageErrors
{
    /// <summary>The first parse error in words a user reads, with "did you mean" for a mistyped command or option.</summary>
    public static string Describe(ParseResult parse)
    {
        // An unknown token explains the other errors ("required command was not provided"), so it goes first.
        string? token = parse.UnmatchedTokens.FirstOrDefault();
        if (token != null)
        {
            string? guess = Closest(token, Candidates(parse.CommandResult.Command));
            return $"unknown command or option '{token}' for {CommandPath(parse)}." + (guess == null ? "" : $" Did you mean '{guess}'?");
        }
        string first = parse.Errors[0].Message.Split('\n')[0].Replace(" Did you mean one of the following?", "").Trim();
        return ExpectedType().Replace(first, m => $": expected {Describe(m.Groups[1].Value)}").TrimEnd('.') + ".";
    }

    /// <summary>The command path for the hint: <c>diffcircuits report</c>.</summary>
    public static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var result = parse.CommandResult; result != null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
            if (result.Command is not RootCommand) names.Insert(0, result.Command.Name);
        return string.Join(" ", new[] { "diffcircuits" }.Concat(names));
    }

    private static IEnumerable<string> Candidates(Command command) =>
        command.Subcommands.Select(c => c.Name).Concat(command.Options.SelectMany(o => o.Aliases.Prepend(o.Name))).Where(n => !n.StartsWith("-?", StringComparison.Ordinal));

    /// <summary>The candidate within a small edit distance of the token (a third of its length, at least 2), if any.</summary>
    private static string? Closest(string token, IEnumerable<string> candidates)
    {
        var best = candidates.Select(c => (Name: c, Distance: Levenshtein(token, c))).OrderBy(x => x.Distance).ThenBy(x => x.Name, StringComparer.Ordinal).FirstOrDefault();
        return best.Name != null && best.Distance > 0 && best.Distance <= Math.Max(2, token.Length / 3) ? best.Name : null;
    }

    private static int Levenshtein(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    private static string Describe(string dotnetType) => dotnetType switch
    {
        "System.Int32" or "System.Int64" or "System.Nullable`1[System.Int32]" => "a whole number",
        "System.Double" or "System.Single" => "a number",
        "System.Boolean" => "true or false",
        _ when dotnetType.EndsWith("AblationKind", StringComparison.Ordinal) => "zero, mean or resample",
        _ => $"a value of type {dotnetType.Split('.').Last()}",
    };

    [System.Text.RegularExpressions.GeneratedRegex(@" as expected type '([^']+)'")]
    private static partial System.Text.RegularExpressions.Regex ExpectedType();
}

/// <summary>An error caused by the user's input, shown as one clear line without a stack trace.</summary>
public sealed class UserFacingException(string message, Exception? inner = null) : Exception(message, inner);
