using System.Collections.Concurrent;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Capture;

/// <summary>
/// Runs of a sweep in flight at once: every item runs once, a worker's buffers are never used by two threads, the
/// first failure comes back as thrown, and the sweep's and patching's numbers are the same bits as one Run at a time.
/// </summary>
public class RunParallelismTests
{
    private static string ReferenceModel => Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");

    private sealed class WorkerState
    {
        public int InUse;
        public int Items;
    }

    [Fact]
    public void Every_item_runs_once_and_no_workers_state_is_used_by_two_threads_at_once()
    {
        var items = Enumerable.Range(0, 60).ToList();
        var runs = new int[items.Count];
        var states = new ConcurrentBag<WorkerState>();
        new RunParallelism(4, 1).ForEach(items, () =>
        {
            var s = new WorkerState();
            states.Add(s);
            return s;
        }, (index, item, state) =>
        {
            Assert.Equal(item, index);
            Assert.Equal(0, Interlocked.Exchange(ref state.InUse, 1));
            Thread.Sleep(2);   // long enough for another worker to take the same state if states were shared
            Interlocked.Increment(ref runs[index]);
            state.Items++;
            Assert.Equal(1, Interlocked.Exchange(ref state.InUse, 0));
        });
        Assert.All(runs, r => Assert.Equal(1, r));
        Assert.InRange(states.Count, 2, 4);                 // several workers took part, each with a state of its own
        Assert.Equal(items.Count, states.Sum(s => s.Items));
    }

    [Fact]
    public void The_first_failure_stops_the_workers_and_comes_back_as_it_was_thrown()
    {
        int ran = 0;
        var e = Assert.Throws<InvalidDataException>(() => new RunParallelism(3, 1).ForEach(Enumerable.Range(0, 1000).ToList(), () => 0, (index, _, _) =>
        {
            Interlocked.Increment(ref ran);
            Thread.Sleep(1);
            if (index == 5) throw new InvalidDataException("item 5 failed");
        }));
        Assert.Equal("item 5 failed", e.Message);
        Assert.True(ran < 1000, $"{ran} items ran after the failure");
    }

    [Theory]
    [InlineData(1, 1, 0)]
    [InlineData(2, 2, 1)]
    [InlineData(4, 4, 1)]
    [InlineData(8, 4, 2)]
    [InlineData(64, 8, 2)]
    public void The_default_runs_single_threaded_runs_side_by_side_on_a_small_cpu(int cores, int workers, int threads)
    {
        Assert.Equal(new RunParallelism(workers, threads), RunParallelism.For(new CaptureOptions(), cores));
    }

    [Fact]
    public void A_gpu_or_a_fixed_thread_count_runs_one_run_at_a_time()
    {
        Assert.Equal(new RunParallelism(1, 0), RunParallelism.For(new CaptureOptions { GpuDeviceId = 0 }, 16));
        Assert.Equal(new RunParallelism(1, 3), RunParallelism.For(new CaptureOptions { Threads = 3 }, 16));
    }

    private static List<FaceImage> Images(string prefix, int count, int seed) => Enumerable.Range(0, count).Select(k =>
    {
        var rng = new Random(seed * 100 + k);
        return new FaceImage($"{prefix}{k}", 32, 32, Enumerable.Range(0, 3 * 32 * 32).Select(_ => (float)rng.NextDouble()).ToArray(), null);
    }).ToList();

    [Theory]
    [InlineData(AblationKind.Zero)]
    [InlineData(AblationKind.Mean)]
    [InlineData(AblationKind.Resample)]
    public void A_sweep_with_conditions_in_flight_gives_the_same_bits_as_one_run_at_a_time(AblationKind kind)
    {
        using var session = new AttentionCaptureSession(ReferenceModel, new CaptureOptions { ExposeMaps = false, ExposeHeadOutputs = true });
        var images = Images("img", 7, 1);
        int[] ts = { 150, 650 };
        // Single heads and a few head sets, run 3 at a time; batches of 3 (image, timestep) rows.
        var conditions = AblationSweep.SingleHeads(session).Concat(new[]
        {
            new AblationCondition("late", new[] { 20, 23 }), new AblationCondition("all", Enumerable.Range(0, session.TotalHeads).ToArray()),
        }).ToList();
        AblationResult Run(RunParallelism parallelism)
        {
            using var sweep = new AblationSweep(session, ts, seed: 5, batchSize: 3, kind, resampleDraws: 2, parallelism: parallelism);
            return sweep.Run(new DataSetId("x"), images, conditions);
        }
        var one = Run(new RunParallelism(1, 2));
        var three = Run(new RunParallelism(3, 1));
        Assert.Equal(one.BaseLoss, three.BaseLoss);
        Assert.Equal(one.AblatedLoss, three.AblatedLoss);
        Assert.Equal(one.ForwardPasses, three.ForwardPasses);
        Assert.Equal(one.ForwardFlops, three.ForwardFlops);      // added up in condition order, not in the order runs finished
        Assert.Equal(one.RunCalls, three.RunCalls);
        Assert.True(one.DegradationPercent(conditions.Count - 1) > 1, "ablating every head must move the loss");
    }

    [Fact]
    public void Patching_with_heads_in_flight_gives_the_same_bits_as_one_run_at_a_time()
    {
        using var session = new AttentionCaptureSession(ReferenceModel, new CaptureOptions { ExposeMaps = false, ExposeHeadOutputs = true });
        var pairs = ActivationPatching.Pairs(Images("s", 5, 2), Images("r", 5, 3), maxPairs: 5, seed: 1);
        PatchingResult Run(RunParallelism parallelism)
        {
            using var sweep = new AblationSweep(session, new[] { 300, 700 }, seed: 2, batchSize: 4, parallelism: parallelism);
            using var patching = new ActivationPatching(session, new[] { 300, 700 }, seed: 2, batchSize: 4, sweep);
            return patching.Run(pairs);
        }
        var one = Run(new RunParallelism(1, 2));
        var three = Run(new RunParallelism(3, 1));
        Assert.Equal(one.OutputGap, three.OutputGap);
        Assert.Equal(one.SyntheticPatched, three.SyntheticPatched);
        Assert.Equal(one.RealPatched, three.RealPatched);
        Assert.Equal(one.ForwardFlops, three.ForwardFlops);
        Assert.Contains(one.SyntheticPatched.SelectMany(h => h).SelectMany(k => k), d => d > 0);
    }
}
