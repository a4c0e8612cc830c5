using System.Globalization;
using BenchmarkDotNet.Running;
using DiffusionCircuits.Bench;

// `memory-probe MODEL IMAGES BATCH` is the child side of the peak-memory runs; anything else goes to BenchmarkDotNet
// (e.g. `--filter '*'`, `--list flat`). The end-to-end run is `diffcircuits bench`.
if (args is ["memory-probe", var model, var images, var batch])
{
    MemoryProbe.Probe(model, int.Parse(images, CultureInfo.InvariantCulture), int.Parse(batch, CultureInfo.InvariantCulture), Console.Out);
    return 0;
}
BenchmarkSwitcher.FromAssembly(typeof(KernelBenchmarks).Assembly).Run(args);
return 0;
