using System.CommandLine;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>The <c>diffcircuits</c> command line: one root command, a sub-command per job.</summary>
public static class CliApp
{
    /// <summary>Exit codes: 0 success, 1 a check or analysis failed, 2 bad usage or input, 3 unexpected error.</summary>
    public const int Ok = 0, Failed = 1, BadInput = 2, Crashed = 3;

    public static int Run(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var root = new RootCommand("DiffusionCircuits: find, measure and ablate the attention heads of a diffusion UNet exported to ONNX.")
        {
            ReportCommand.Create(),
            CheckCommand.Create(),
            CheckCommand.CreateBaseline(),
            InspectCommand.Create(),
            InstrumentCommand.Create(),
            SynthCommand.Create(),
            PrepareCommand.Create(),
            EvaluateCommand.Create(),
            FeaturesCommand.Create(),
            BenchCommand.Create(),
            CircuitsCommand.Create(),
        };
        var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 160;   // tables in logs are not wrapped at 80
        if (output != null) config.Output = output;
        if (error != null) config.Error = error;
        try
        {
            return root.Parse(args).Invoke(config);
        }
        catch (UserFacingException e)
        {
            (error ?? Console.Error).WriteLine($"error: {e.Message}");
            return BadInput;
        }
        catch (Exception e)
        {
            (error ?? Console.Error).WriteLine($"unexpected error: {e}");
            return Crashed;
        }
    }
}

/// <summary>An error caused by the user's input, shown as one clear line without a stack trace.</summary>
public sealed class UserFacingException(string message, Exception? inner = null) : Exception(message, inner);
