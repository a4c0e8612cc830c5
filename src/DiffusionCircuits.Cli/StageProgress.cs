using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace DiffusionCircuits.Cli;

/// <summary>
/// Progress of a long run's stages on the console. In a terminal: a live table in which each finished stage keeps its
/// final time and an overall line gives the remaining time of the whole run. In a log (output redirected): plain lines,
/// one when a stage starts, one at every 10%, one when it ends, each with the elapsed time and the overall estimate.
/// </summary>
internal static class StageProgress
{
    /// <summary>
    /// Relative cost of a stage (by its name's start) for the overall estimate: the seconds each stage took in the default
    /// report on the bundled model (2-core EPYC, 2026-12-07; per data set where a stage runs per data set). A stage not
    /// listed counts 1.
    /// </summary>
    private static readonly (string Prefix, double Weight)[] Weights =
    {
        ("latents", 2), ("features", 3.5), ("single-head ablation", 12.5), ("roles", 3), ("role and circuit ablation", 29),
        ("activation patching", 12), ("statistics", 4), ("charts and report", 5),
    };

    private static double WeightOf(string stage) => Weights.FirstOrDefault(w => stage.StartsWith(w.Prefix, StringComparison.Ordinal)).Weight is var w && w > 0 ? w : 1;

    /// <summary>Runs <paramref name="work"/>, showing its progress reports; <paramref name="expected"/> are the stages it will report (for the overall estimate).</summary>
    public static T Run<T>(IReadOnlyList<string> expected, Func<IProgress<(string Stage, double Fraction)>, T> work) =>
        IsLive ? Live(expected, work) : Plain(expected, work);

    private static bool IsLive => AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected;

    /// <summary>A message of the run: grey in a terminal; in a log one unwrapped line, so that grep finds it whole.</summary>
    public static void Log(string line)
    {
        if (IsLive) AnsiConsole.MarkupLineInterpolated($"[grey]{line}[/]");
        else Console.Out.WriteLine(line);
    }

    private sealed class Overall(IReadOnlyList<string> expected)
    {
        private readonly Dictionary<string, double> _fractions = new();
        private readonly Stopwatch _watch = Stopwatch.StartNew();

        public TimeSpan Elapsed => _watch.Elapsed;

        public void Report(string stage, double fraction) => _fractions[stage] = Math.Clamp(fraction, 0, 1);

        /// <summary>The weighted share of the run done: stages reported so far and those still expected.</summary>
        public double Fraction
        {
            get
            {
                var stages = expected.Union(_fractions.Keys).ToList();
                double total = stages.Sum(WeightOf);
                return total == 0 ? 0 : stages.Sum(s => WeightOf(s) * _fractions.GetValueOrDefault(s)) / total;
            }
        }

        public string Remaining()
        {
            double f = Fraction;
            if (f < 0.02) return "estimating";
            var left = TimeSpan.FromSeconds(_watch.Elapsed.TotalSeconds * (1 - f) / f);
            return $"about {Duration(left)} left";
        }
    }

    private static T Live<T>(IReadOnlyList<string> expected, Func<IProgress<(string Stage, double Fraction)>, T> work)
    {
        T result = default!;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var overall = new Overall(expected);
                var total = ctx.AddTask("[bold]overall (estimated)[/]", maxValue: 1);
                var tasks = new Dictionary<string, ProgressTask>();
                var progress = new SynchronousProgress<(string Stage, double Fraction)>(p =>
                {
                    if (!tasks.TryGetValue(p.Stage, out var task)) tasks[p.Stage] = task = ctx.AddTask(Markup.Escape(p.Stage), maxValue: 1);
                    task.Value = Math.Min(1, p.Fraction);
                    if (p.Fraction >= 1 && !task.IsFinished) task.StopTask();   // a finished stage keeps its time
                    overall.Report(p.Stage, p.Fraction);
                    total.Value = overall.Fraction;
                });
                result = work(progress);
                foreach (var t in tasks.Values.Append(total))
                {
                    t.Value = 1;
                    t.StopTask();
                }
            });
        return result;
    }

    private static T Plain<T>(IReadOnlyList<string> expected, Func<IProgress<(string Stage, double Fraction)>, T> work)
    {
        var overall = new Overall(expected);
        var started = new Dictionary<string, TimeSpan>();
        var lastTenth = new Dictionary<string, int>();
        void Line(string text) => Console.Out.WriteLine($"[{Duration(overall.Elapsed),8}] {text}");
        var progress = new SynchronousProgress<(string Stage, double Fraction)>(p =>
        {
            overall.Report(p.Stage, p.Fraction);
            if (!started.ContainsKey(p.Stage))
            {
                started[p.Stage] = overall.Elapsed;
                lastTenth[p.Stage] = 0;
                Line($"{p.Stage}: started ({overall.Remaining()})");
            }
            int tenth = (int)Math.Floor(Math.Min(1, p.Fraction) * 10);
            if (tenth >= 10 && lastTenth[p.Stage] < 10)
                Line($"{p.Stage}: done in {Duration(overall.Elapsed - started[p.Stage])} ({overall.Remaining()})");
            else if (tenth > lastTenth[p.Stage] && tenth < 10)
                Line($"{p.Stage}: {tenth * 10}% ({overall.Remaining()})");
            lastTenth[p.Stage] = Math.Max(lastTenth[p.Stage], tenth);
        });
        var result = work(progress);
        Line($"finished in {Duration(overall.Elapsed)}");
        return result;
    }

    /// <summary>"45 s", "3 min 05 s", "1 h 02 min".</summary>
    public static string Duration(TimeSpan t) => t.TotalSeconds < 60 ? $"{t.TotalSeconds:F0} s"
        : t.TotalMinutes < 60 ? $"{(int)t.TotalMinutes} min {t.Seconds:D2} s"
        : $"{(int)t.TotalHours} h {t.Minutes:D2} min";
}
