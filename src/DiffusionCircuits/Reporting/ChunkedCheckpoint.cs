using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using DiffusionCircuits.Analysis;
using DiffusionCircuits.Data;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Diffusion;

namespace DiffusionCircuits.Reporting;

/// <summary>
/// Keeps the analysis' finished work in <c>&lt;out&gt;/.work/</c> in chunks of images: per-image features and mean maps,
/// per-image losses of every ablation. Each chunk is written atomically when done; a rerun with the same
/// <see cref="WorkKey"/> loads finished chunks and computes the rest. Freshly computed chunks are used through the
/// same bytes that are stored, so an interrupted and resumed run gives exactly the numbers of an uninterrupted one.
/// </summary>
internal sealed class ChunkedCheckpoint : IAnalysisCheckpoint
{
    private const int Magic = 0x44434B32;   // "DCK2" (DCK1 had no FLOPs)
    private readonly string _dir;
    private readonly int _chunkImages;
    private readonly WorkShard? _shard;
    private int _unit;              // the next chunk's place in the run's order: which shard owns it
    private int _pending;           // chunks of other shards found missing: the next barrier stops a shard when there are any

    /// <param name="chunkImages">Images per chunk; 0 picks max(16, n/32) so that at most about 32 chunks exist per stage.</param>
    /// <param name="shard">
    /// This process's share of the work when several share the folder: it computes only its chunks, never deletes or
    /// rewrites a shared file, and stops at the first <see cref="Barrier"/> whose stage other shards have not finished.
    /// </param>
    public ChunkedCheckpoint(string workDir, WorkKey key, int chunkImages = 0, Action<string>? log = null, WorkShard? shard = null)
    {
        _dir = workDir;
        _chunkImages = chunkImages;
        _shard = shard;
        Directory.CreateDirectory(workDir);
        string keyPath = Path.Combine(workDir, "key.json");
        string keyJson = JsonFiles.Serialize(key);
        if (shard != null && !File.Exists(keyPath))
        {
            // The first shard to arrive writes the key; a move that does not replace fails for the others, which compare.
            string temporary = Path.Combine(workDir, $".key.{shard.Value.Index}.{Environment.ProcessId}.tmp");
            File.WriteAllText(temporary, keyJson);
            try { File.Move(temporary, keyPath, overwrite: false); }
            catch (IOException) { File.Delete(temporary); }
        }
        if (File.Exists(keyPath))
        {
            WorkKey? old = null;
            try { old = JsonSerializer.Deserialize<WorkKey>(File.ReadAllText(keyPath), JsonFiles.Options); } catch (JsonException) { }
            // A key of another version (other names) reads as empty: unreadable, not a crash.
            if (old is { ModelSha256: null } or { DataSha256: null } or { Options: null }) old = null;
            if (old == null || old.Describe(key) != "nothing")
            {
                string what = old == null ? "unreadable key" : old.Describe(key);
                if (shard != null)
                    throw new InvalidDataException($"Work folder '{workDir}' holds work of other inputs ({what} changed): a shard never deletes shared work. " +
                                                   "Give every shard the same model, data and options, or another --out.");
                log?.Invoke($"Finished work in '{workDir}' was made with different inputs ({what} changed); starting afresh.");
                foreach (var f in Directory.EnumerateFiles(workDir, "*.bin")) File.Delete(f);
            }
        }
        if (shard == null) AtomicFile.WriteAllText(keyPath, keyJson);
    }

    /// <summary>Whether work unit <paramref name="unit"/> is this process's to compute (always, without a shard).</summary>
    private bool Owns(int unit) => _shard is not { } s || s.Owns(unit);

    /// <summary>A chunk file's bytes: the magic, the ids of its items, then what <paramref name="write"/> writes.</summary>
    private static byte[] Bytes(string ids, Action<BinaryWriter> write)
    {
        var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(ids);
            write(w);
        }
        return buffer.ToArray();
    }

    /// <summary>
    /// The end of a stage that later stages need whole. Without a shard, nothing. A shard stops here (by
    /// <see cref="ShardStoppedException"/>) while chunks of other shards are missing, and after the last stage.
    /// </summary>
    public void Barrier(string stage, bool last = false)
    {
        if (_shard is not { } s) return;
        if (_pending > 0)
            throw new ShardStoppedException($"Shard {s}: {ChunksComputed} chunk(s) computed, {ChunksLoaded} found finished; {_pending} chunk(s) of other shards " +
                                            $"before '{stage}' are not finished yet, so this shard stops here. Run it again after the others (Slurm and Kubernetes " +
                                            "jobs from `diffcircuits slurm|k8s` do so by stage).", ChunksComputed, _pending, false);
        if (last)
            throw new ShardStoppedException($"Shard {s}: {ChunksComputed} chunk(s) computed, {ChunksLoaded} found finished; every chunk of every stage is finished. " +
                                            "A plain `report` with the same options and --out assembles the results.", ChunksComputed, 0, true);
    }

    /// <summary>
    /// The finished work found at the start, stage by stage in the order the run does them ("features real: 3 of 3
    /// chunks done, single-head ablation real: 1 of 3 chunks done"), or null when there is none: what a resumed run
    /// says before it goes on. <paramref name="images"/> are the run's image counts per data set; <paramref name="patchPairs"/>
    /// its activation-patching pairs (0: none).
    /// </summary>
    public string? FinishedWork(IReadOnlyDictionary<DataSetId, int> images, int patchPairs)
    {
        var names = Directory.EnumerateFiles(_dir, "*.bin").Select(Path.GetFileName).ToList();
        int Files(string prefix) => names.Count(n => n!.StartsWith(prefix + ".", StringComparison.Ordinal));
        int Chunks(int n) => (n + ChunkSize(n) - 1) / ChunkSize(n);
        var said = new List<string>();
        void Say(string stage, int done, int of) { if (done > 0) said.Add($"{stage}: {Math.Min(done, of)} of {of} chunk{(of == 1 ? "" : "s")} done"); }
        foreach (var (set, n) in images) Say($"latents {set}", Files($"latents.{set}"), Chunks(n));
        foreach (var (set, n) in images)
        {
            // The running file holds the first chunks; shards keep a file per chunk.
            int running = FeatureChunksDone(Path.Combine(_dir, $"features.{set}.bin"));
            int separate = names.Count(f => f!.StartsWith($"features.{set}.", StringComparison.Ordinal) && f.Length == $"features.{set}.0000.bin".Length
                                            && int.TryParse(f.AsSpan($"features.{set}.".Length, 4), out int c) && c >= running);
            Say($"features {set}", running + separate, Chunks(n));
        }
        foreach (var (set, n) in images) Say($"single-head ablation {set}", Files($"ablation.single.{set}"), Chunks(n));
        foreach (var (set, n) in images) Say($"role and circuit ablation {set}", Files($"ablation.joint.{set}"), Chunks(n));
        if (patchPairs > 0) Say("activation patching", Files("patching"), Chunks(Math.Min(patchPairs, images.Values.Min())));
        return said.Count == 0 ? null : string.Join(", ", said);
    }

    /// <summary>The chunks a features file holds (its first number), or 0 when it is missing or unreadable.</summary>
    private static int FeatureChunksDone(string path)
    {
        if (!File.Exists(path)) return 0;
        try
        {
            using var r = new BinaryReader(File.OpenRead(path));
            return r.ReadInt32() == Magic && r.ReadString() == "" ? r.ReadInt32() : 0;
        }
        catch (Exception e) when (e is IOException or EndOfStreamException) { return 0; }
    }

    public int ChunksLoaded { get; private set; }
    public int ChunksComputed { get; private set; }

    private int ChunkSize(int n) => _chunkImages > 0 ? _chunkImages : Math.Max(16, (n + 31) / 32);

    /// <summary>
    /// Features are kept in one file per data set, rewritten atomically after each chunk: the per-image features so far
    /// and the running sums of the attention maps (storing every chunk's maps would cost tens of MB per chunk).
    /// </summary>
    public DataSetFeatures Features(DataSetId dataSet, IReadOnlyList<FaceImage> images, Func<IReadOnlyList<FaceImage>, IProgress<double>, DataSetFeatures> compute,
        IProgress<double>? progress)
    {
        int size = ChunkSize(images.Count), chunks = (images.Count + size - 1) / size;
        string path = Path.Combine(_dir, $"features.{dataSet}.bin");
        DataSetFeatures? sums = null;
        int done = 0;
        int firstUnit = _unit;
        _unit += chunks;
        bool missing = false;
        if (File.Exists(path) && TryRead(path, "", r => (r.ReadInt32(), ReadFeatures(r)), out var stored)
            && stored.Item1 <= chunks && stored.Item2.ImageIds.SequenceEqual(images.Take(stored.Item1 * size).Select(i => i.Id)))
        {
            (done, sums) = stored;
            ChunksLoaded += done;
        }
        for (int c = done; c < chunks; c++)
        {
            int cc = c;
            var chunk = images.Skip(c * size).Take(size).ToList();
            // Shards keep each chunk's sums in a file of its own (features.<set>.<chunk>.bin); folded in chunk order, as
            // here, they give the running sums one process would have, to the bit.
            string chunkPath = Path.Combine(_dir, $"features.{dataSet}.{c:D4}.bin");
            string ids = string.Join("\n", chunk.Select(i => i.Id));
            DataSetFeatures? part;
            if (File.Exists(chunkPath) && TryRead(chunkPath, ids, ReadFeatures, out part)) ChunksLoaded++;
            else if (Owns(firstUnit + c))
            {
                part = compute(chunk, new SynchronousProgress<double>(f => progress?.Report((cc + f) / chunks)));
                foreach (var perT in part.MeanMaps)          // chunk means back to sums
                    foreach (var map in perT)
                        for (int i = 0; i < map.Length; i++) map[i] *= part.ImageCount;
                if (_shard != null) AtomicFile.WriteAllBytes(chunkPath, Bytes(ids, w => WriteFeatures(w, part)));
                ChunksComputed++;
            }
            else
            {
                _pending++;
                missing = true;
                continue;
            }
            progress?.Report((c + 1.0) / chunks);
            if (missing) continue;           // after a gap nothing folds in order: this shard stops at the next barrier
            sums = sums == null ? part! : Add(sums, part!);
            if (_shard != null) continue;    // a shard never writes the shared running file
            AtomicFile.WriteAllBytes(path, Bytes("", w =>
            {
                w.Write(c + 1);
                WriteFeatures(w, sums);
            }));
        }
        if (missing) return null!;          // a shard's run ends at the barrier after this stage (Barrier)
        var result = sums!;
        foreach (var perT in result.MeanMaps)
            foreach (var map in perT)
                for (int i = 0; i < map.Length; i++) map[i] /= result.ImageCount;
        return result;
    }

    private static DataSetFeatures Add(DataSetFeatures sums, DataSetFeatures part)
    {
        sums.ImageIds.AddRange(part.ImageIds);
        for (int k = 0; k < sums.Timesteps.Count; k++)
        {
            sums.Features[k].AddRange(part.Features[k]);
            sums.LossMse[k].AddRange(part.LossMse[k]);
            for (int l = 0; l < sums.MeanMaps[k].Length; l++)
            {
                var a = sums.MeanMaps[k][l];
                var b = part.MeanMaps[k][l];
                for (int i = 0; i < a.Length; i++) a[i] += b[i];
            }
        }
        return sums;
    }

    /// <summary>
    /// The images with their latents (<see cref="FaceImage.Latent"/>): kept in chunks like the rest of the work, so a
    /// resumed run encodes no face twice.
    /// </summary>
    public List<FaceImage> Latents(DataSetId dataSet, IReadOnlyList<FaceImage> images, LatentEncoder encoder, IProgress<double>? progress)
    {
        var latents = Chunks($"latents.{dataSet}", images, (chunk, _) => encoder.Encode(chunk).Select(i => i.Latent!).ToList(),
            (w, list) =>
            {
                w.Write(list.Count);
                foreach (var z in list)
                {
                    w.Write(z.Length);
                    foreach (var v in z) w.Write(v);
                }
            },
            r => Enumerable.Range(0, r.ReadInt32()).Select(_ => Enumerable.Range(0, r.ReadInt32()).Select(_ => r.ReadSingle()).ToArray()).ToList(),
            progress)?.SelectMany(x => x).ToList();
        // A shard missing other shards' latents goes on without them and stops at the barrier after this stage.
        return latents == null ? images.ToList() : images.Select((image, i) => image with { Latent = latents[i] }).ToList();
    }

    public AblationResult Ablation(string stage, DataSetId dataSet, IReadOnlyList<FaceImage> images, IReadOnlyList<AblationCondition> conditions,
        Func<IReadOnlyList<FaceImage>, IProgress<double>, AblationResult> compute, IProgress<double>? progress)
    {
        // The conditions are part of the name: roles and circuit prefixes depend on earlier results.
        var text = string.Join(";", conditions.Select(c => c.Name + ":" + string.Join(",", c.Heads)));
        string tag = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..12].ToLowerInvariant();
        return Chunks($"ablation.{stage}.{dataSet}.{tag}", images, compute, WriteAblation, r => ReadAblation(r, conditions), progress) is { } parts
            ? AblationResult.Concat(parts) : null!;   // null: a shard's, with chunks of other shards missing (see Barrier)
    }

    public PatchingResult Patching(IReadOnlyList<PatchPair> pairs, Func<IReadOnlyList<PatchPair>, IProgress<double>, PatchingResult> compute, IProgress<double>? progress) =>
        Chunks("patching", pairs, p => p.Id, compute, WritePatching, ReadPatching, progress) is { } parts ? PatchingResult.Concat(parts) : null!;

    private List<T>? Chunks<T>(string name, IReadOnlyList<FaceImage> images, Func<IReadOnlyList<FaceImage>, IProgress<double>, T> compute,
        Action<BinaryWriter, T> write, Func<BinaryReader, T> read, IProgress<double>? progress) =>
        Chunks(name, images, i => i.Id, compute, write, read, progress);

    /// <summary>The items cut into chunks, each loaded when a file holds it (same item ids) or computed and written atomically.</summary>
    private List<T>? Chunks<TItem, T>(string name, IReadOnlyList<TItem> items, Func<TItem, string> idOf, Func<IReadOnlyList<TItem>, IProgress<double>, T> compute,
        Action<BinaryWriter, T> write, Func<BinaryReader, T> read, IProgress<double>? progress)
    {
        int size = ChunkSize(items.Count), chunks = (items.Count + size - 1) / size;
        var parts = new List<T>(chunks);
        int firstUnit = _unit;
        _unit += chunks;
        bool missing = false;
        for (int c = 0; c < chunks; c++)
        {
            var chunk = items.Skip(c * size).Take(size).ToList();
            string path = Path.Combine(_dir, $"{name}.{c:D4}.bin");
            string ids = string.Join("\n", chunk.Select(idOf));
            T? part = default;
            if (File.Exists(path) && TryRead(path, ids, read, out part)) ChunksLoaded++;
            else if (Owns(firstUnit + c))
            {
                int cc = c;
                var value = compute(chunk, new SynchronousProgress<double>(f => progress?.Report((cc + f) / chunks)));
                var bytes = Bytes(ids, w => write(w, value));
                AtomicFile.WriteAllBytes(path, bytes);
                // Used through the stored bytes: a resumed run reads exactly these numbers.
                using var r = new BinaryReader(new MemoryStream(bytes));
                r.ReadInt32();
                r.ReadString();
                part = read(r);
                ChunksComputed++;
            }
            else
            {
                _pending++;
                missing = true;
                continue;
            }
            parts.Add(part!);
            progress?.Report((c + 1.0) / chunks);
        }
        return missing ? null : parts;   // missing: another shard's chunks; this shard stops at the next barrier
    }

    private static bool TryRead<T>(string path, string ids, Func<BinaryReader, T> read, out T? value)
    {
        value = default;
        try
        {
            using var r = new BinaryReader(File.OpenRead(path));
            if (r.ReadInt32() != Magic || r.ReadString() != ids) return false;
            value = read(r);
            return r.BaseStream.Position == r.BaseStream.Length;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or OverflowException) { return false; }
    }

    private static void WriteFeatures(BinaryWriter w, DataSetFeatures f)
    {
        w.Write(f.DataSet.Name);
        WriteInts(w, f.Timesteps);
        WriteInts(w, f.HeadsPerLayer);
        WriteInts(w, f.MeanMaps[0].Select(m => m.Length).ToList());
        WriteStrings(w, f.ImageIds);
        for (int k = 0; k < f.Timesteps.Count; k++)
        {
            for (int i = 0; i < f.ImageCount; i++)
            {
                foreach (var head in f.Features[k][i])
                    foreach (var feature in HeadFeatures.All) w.Write(head[feature]);
                w.Write(f.LossMse[k][i]);
            }
            foreach (var map in f.MeanMaps[k])
                foreach (var v in map) w.Write(v);
        }
    }

    private static DataSetFeatures ReadFeatures(BinaryReader r)
    {
        string name = r.ReadString();
        var timesteps = ReadInts(r);
        var headsPerLayer = ReadInts(r);
        var mapSizes = ReadInts(r);
        var f = new DataSetFeatures(new DataSetId(name), timesteps, headsPerLayer, mapSizes);
        f.ImageIds.AddRange(ReadStrings(r));
        int n = f.ImageCount, heads = headsPerLayer.Sum();
        for (int k = 0; k < timesteps.Count; k++)
        {
            for (int i = 0; i < n; i++)
            {
                var row = new HeadFeatures[heads];
                for (int h = 0; h < heads; h++)
                    foreach (var feature in HeadFeatures.All) row[h][feature] = r.ReadSingle();
                f.Features[k].Add(row);
                f.LossMse[k].Add(r.ReadSingle());
            }
            foreach (var map in f.MeanMaps[k])
                for (int i = 0; i < map.Length; i++) map[i] = r.ReadDouble();
        }
        return f;
    }

    private static void WriteAblation(BinaryWriter w, AblationResult a)
    {
        w.Write(a.DataSet.Name);
        WriteStrings(w, a.ImageIds);
        WriteInts(w, a.Timesteps);
        w.Write(a.Conditions.Count);
        w.Write(a.ForwardPasses);
        w.Write(a.RunCalls);
        w.Write(a.Seconds);
        w.Write(a.ForwardFlops);
        w.Write(a.FullPassFlops);
        for (int k = 0; k < a.Timesteps.Count; k++)
            foreach (var v in a.BaseLoss[k]) w.Write(v);
        for (int c = 0; c < a.Conditions.Count; c++)
            for (int k = 0; k < a.Timesteps.Count; k++)
                foreach (var v in a.AblatedLoss[c][k]) w.Write(v);
    }

    private static AblationResult ReadAblation(BinaryReader r, IReadOnlyList<AblationCondition> conditions)
    {
        string set = r.ReadString();
        var ids = ReadStrings(r);
        var timesteps = ReadInts(r);
        if (r.ReadInt32() != conditions.Count) throw new InvalidDataException("condition count differs");
        var a = new AblationResult(new DataSetId(set), timesteps, ids, conditions) 
        {
            ForwardPasses = r.ReadInt64(), RunCalls = r.ReadInt64(), Seconds = r.ReadDouble(), ForwardFlops = r.ReadDouble(), FullPassFlops = r.ReadDouble(),
        };
        for (int k = 0; k < timesteps.Count; k++)
            for (int i = 0; i < ids.Count; i++) a.BaseLoss[k][i] = r.ReadSingle();
        for (int c = 0; c < conditions.Count; c++)
            for (int k = 0; k < timesteps.Count; k++)
                for (int i = 0; i < ids.Count; i++) a.AblatedLoss[c][k][i] = r.ReadSingle();
        return a;
    }

    private static void WritePatching(BinaryWriter w, PatchingResult p)
    {
        WriteStrings(w, p.HeadNames);
        WriteInts(w, p.Timesteps);
        WriteStrings(w, p.SyntheticIds);
        WriteStrings(w, p.RealIds);
        w.Write(p.ForwardPasses);
        w.Write(p.ForwardFlops);
        w.Write(p.Seconds);
        foreach (var perT in p.OutputGap)
            foreach (var v in perT) w.Write(v);
        foreach (var set in new[] { p.SyntheticPatched, p.RealPatched })
            foreach (var head in set)
                foreach (var perT in head)
                    foreach (var v in perT) w.Write(v);
    }

    private static PatchingResult ReadPatching(BinaryReader r)
    {
        var p = new PatchingResult(ReadStrings(r), ReadInts(r), ReadStrings(r), ReadStrings(r))
        {
            ForwardPasses = r.ReadInt64(), ForwardFlops = r.ReadDouble(), Seconds = r.ReadDouble(),
        };
        foreach (var perT in p.OutputGap)
            for (int i = 0; i < perT.Length; i++) perT[i] = r.ReadSingle();
        foreach (var set in new[] { p.SyntheticPatched, p.RealPatched })
            foreach (var head in set)
                foreach (var perT in head)
                    for (int i = 0; i < perT.Length; i++) perT[i] = r.ReadSingle();
        return p;
    }

    // Lists are written as a count and their items.
    private static void WriteInts(BinaryWriter w, IReadOnlyCollection<int> values)
    {
        w.Write(values.Count);
        foreach (var v in values) w.Write(v);
    }

    private static void WriteStrings(BinaryWriter w, IReadOnlyCollection<string> values)
    {
        w.Write(values.Count);
        foreach (var v in values) w.Write(v);
    }

    private static List<int> ReadInts(BinaryReader r) => Enumerable.Range(0, r.ReadInt32()).Select(_ => r.ReadInt32()).ToList();

    private static List<string> ReadStrings(BinaryReader r) => Enumerable.Range(0, r.ReadInt32()).Select(_ => r.ReadString()).ToList();
}
