using System.Runtime.InteropServices;
using DiffusionCircuits.Cli;

// Ctrl-C and SIGTERM: one line saying what is kept, then the default (the process ends with 130 or 143).
using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => Console.Error.WriteLine(CliApp.InterruptedNote("SIGINT")));
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => Console.Error.WriteLine(CliApp.InterruptedNote("SIGTERM")));
return CliApp.Run(args);
