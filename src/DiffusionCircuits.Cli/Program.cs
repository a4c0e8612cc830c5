using System.CommandLine;
using DiffusionCircuits.Cli;

return CliApp.Run(args);
