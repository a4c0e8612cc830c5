using System.Text.Json;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Diffusion;
using DiffusionCircuits.Onnx;
using DiffusionCircuits.Tests.Support;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionCircuits.Tests.Diffusion;

/// <summary>
/// A latent, text-conditioned pipeline exported from diffusers v0.24.0 (UNet2DConditionModel, AutoencoderKL) with
/// CLIP's own tokenizer files and text tower (tools/fixtures/export_latent_pipeline.py): every step the tool takes
/// equals what PyTorch computed on the same weights (Fixtures/latent/reference.json).
/// </summary>
public class LatentPipelineTests
{
    internal static string Pipeline => ModelRunner.Fixture("latent-pipeline");
    internal static JsonElement Reference { get; } = JsonDocument.Parse(File.ReadAllText(ModelRunner.Fixture("latent/reference.json"))).RootElement;

    private static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => v.GetSingle()).ToArray();

    [Fact]
    public void Clip_token_ids_equal_openai_clips_tokenizer_on_reference_prompts()
    {
        var tokenizer = new ClipTokenizer(Path.Combine(Pipeline, "tokenizer"));
        int prompts = 0;
        foreach (var t in Reference.GetProperty("tokens").EnumerateArray())
        {
            string prompt = t.GetProperty("prompt").GetString()!;
            var expected = t.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var got = tokenizer.Tokenize(prompt);
            Assert.True(expected.SequenceEqual(got.Ids), $"'{prompt}': expected {string.Join(",", expected.Take(20))}..., got {string.Join(",", got.Ids.Take(20))}...");
            Assert.Equal(t.GetProperty("length").GetInt32(), got.Length);
            prompts++;
        }
        Assert.True(prompts >= 10);
        var face = tokenizer.Tokenize("a photo of a face");
        Assert.Equal(new[] { "<|startoftext|>", "a", "photo", "of", "a", "face", "<|endoftext|>" }, face.Texts.Take(face.Length));
    }

    [Theory]
    [InlineData("scaled_linear")]
    [InlineData("linear")]
    [InlineData("squaredcos_cap_v2")]
    public void Schedules_from_a_scheduler_config_equal_diffusers_alphas_cumprod(string kind)
    {
        var r = Reference.GetProperty("schedules").GetProperty(kind);
        string config = Path.Combine(Directory.CreateTempSubdirectory("sched-").FullName, "scheduler_config.json");
        File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["beta_schedule"] = kind, ["beta_start"] = r.GetProperty("beta_start").GetDouble(), ["beta_end"] = r.GetProperty("beta_end").GetDouble(),
            ["num_train_timesteps"] = 1000, ["prediction_type"] = "epsilon",
        }));
        var schedule = NoiseSchedule.FromSchedulerConfig(config);
        var ts = r.GetProperty("t").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var expected = r.GetProperty("alpha_bar").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        for (int i = 0; i < ts.Length; i++)
            Assert.True(Math.Abs(schedule.AlphaBar(ts[i]) - expected[i]) <= 2e-6 * Math.Max(1e-3, expected[i]) + 1e-9,
                $"{kind} t={ts[i]}: expected {expected[i]:R}, got {schedule.AlphaBar(ts[i]):R}");
    }

    [Fact]
    public void A_scheduler_config_with_an_unknown_schedule_or_prediction_is_refused_by_name()
    {
        string dir = Directory.CreateTempSubdirectory("sched-").FullName, config = Path.Combine(dir, "scheduler_config.json");
        File.WriteAllText(config, """{"beta_schedule": "sigmoid"}""");
        var e = Assert.Throws<InvalidDataException>(() => NoiseSchedule.FromSchedulerConfig(config));
        Assert.Contains("sigmoid", e.Message);
        Assert.Contains(config, e.Message);
        File.WriteAllText(config, """{"prediction_type": "v_prediction"}""");
        Assert.Equal(PredictionType.VPrediction, NoiseSchedule.FromSchedulerConfig(config).Prediction);
    }

    [Fact]
    public void The_text_encoder_gives_pytorchs_embeddings_for_the_prompt_and_the_empty_prompt()
    {
        var r = Reference.GetProperty("text_encoder");
        var expected = Floats(r.GetProperty("last_hidden_state"));
        var prompts = r.GetProperty("prompts").EnumerateArray().Select(p => p.GetString()!).ToArray();
        using var encoder = new TextEncoder(Path.Combine(Pipeline, "text_encoder", "model.onnx"), new ClipTokenizer(Path.Combine(Pipeline, "tokenizer")));
        for (int p = 0; p < prompts.Length; p++)
        {
            var c = encoder.Encode(prompts[p]);
            Assert.Equal((1, 77, 8), (c.Rows, c.Tokens, c.Dim));
            var want = expected.AsSpan(p * 77 * 8, 77 * 8).ToArray();
            Assert.True(ModelRunner.MaxAbsDiff(want, c.Embeddings) < 1e-5, $"'{prompts[p]}': max |diff| {ModelRunner.MaxAbsDiff(want, c.Embeddings):G3}");
            Assert.Equal(prompts[p], c.Prompt);
        }
    }

    [Fact]
    public void Latents_equal_pytorchs_vae_mean_times_the_scaling_factor()
    {
        var r = Reference.GetProperty("vae");
        var pixels = Floats(r.GetProperty("pixels_unit"));
        var mean = Floats(r.GetProperty("latent_mean"));
        double scaling = r.GetProperty("scaling_factor").GetDouble();
        var setup = DenoiserSetup.FromPipeline(Pipeline);
        Assert.Equal(scaling, setup.LatentScalingFactor);
        using var encoder = setup.OpenLatentEncoder(latentChannels: 4, latentSide: 8)!;
        Assert.Equal((32, 32, 8, 8), (encoder.Height, encoder.Width, encoder.LatentHeight, encoder.LatentWidth));
        // optimum exports latent_dist.sample(): the random draw is replaced by zeros, which leaves the mean.
        Assert.Contains("random node", encoder.Note);
        int n = 3 * 32 * 32, z = 4 * 8 * 8;
        var images = Enumerable.Range(0, 2).Select(i => new FaceImage($"img{i}", 32, 32, pixels.AsSpan(i * n, n).ToArray(), null)).ToList();
        var encoded = encoder.Encode(images, batchSize: 2).ToList();
        for (int i = 0; i < 2; i++)
        {
            var want = mean.AsSpan(i * z, z).ToArray().Select(v => (float)(v * scaling)).ToArray();
            Assert.True(ModelRunner.MaxAbsDiff(want, encoded[i].Latent!) < 1e-5, $"image {i}: max |diff| {ModelRunner.MaxAbsDiff(want, encoded[i].Latent!):G3}");
            Assert.Same(images[i].RgbPlanes, encoded[i].RgbPlanes);
        }
    }

    /// <summary>The UNet run by the capture session on the reference input: predicted noise, per-head entropy and per-token mass.</summary>
    [Theory]
    [InlineData("latent-pipeline/unet/model.onnx")]
    [InlineData("latent/unet_sliced.onnx")]
    [InlineData("latent/unet_masked.onnx")]
    public void Cross_attention_maps_and_token_mass_equal_pytorchs(string unet)
    {
        var r = Reference.GetProperty("unet");
        var embeddings = Floats(Reference.GetProperty("text_encoder").GetProperty("last_hidden_state"));
        var conditioning = new ModelConditioning(embeddings, 2, 77, 8, "reference prompts");
        conditioning.AssignRows(ModelRunner.SampleIds);
        using var session = new AttentionCaptureSession(ModelRunner.Fixture(unet), new CaptureOptions { Conditioning = conditioning });
        var sample = Floats(r.GetProperty("sample"));
        var t = r.GetProperty("timestep").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var batch = session.Run(sample, t, imageIds: ModelRunner.SampleIds);
        var noise = Floats(r.GetProperty("noise"));
        var predicted = Enumerable.Range(0, 2).SelectMany(b => batch.PredictedNoise(b).ToArray()).ToArray();
        Assert.True(ModelRunner.MaxAbsDiff(noise, predicted) < 1e-4, $"noise: max |diff| {ModelRunner.MaxAbsDiff(noise, predicted):G3}");

        var calculator = new AttentionFeatureCalculator();
        int crossHeads = 0, wholeMaps = 0;
        foreach (var expected in r.GetProperty("layers").EnumerateArray())
        {
            string name = expected.GetProperty("name").GetString()!;
            int l = session.Layers.ToList().FindIndex(x => x.Name.EndsWith(name, StringComparison.Ordinal));
            Assert.True(l >= 0, $"no layer named ...{name} among {string.Join(", ", session.Layers.Select(x => x.Name))}");
            var layer = session.Layers[l];
            Assert.Equal(expected.GetProperty("cross").GetBoolean(), layer.IsCrossAttention);
            Assert.Equal(expected.GetProperty("heads").GetInt32(), layer.Heads);
            Assert.Equal(expected.GetProperty("key_tokens").GetInt32(), layer.KeyTokens);
            var entropy = Floats(expected.GetProperty("entropy_nats"));
            var mass = expected.TryGetProperty("token_mass", out var m) ? Floats(m) : null;
            if (expected.TryGetProperty("maps", out var whole))
            {
                // One cross-attention layer's maps, every probability: [B, H, S_q, S_k].
                var maps = Floats(whole);
                int size = layer.QueryTokens * layer.KeyTokens;
                for (int b = 0; b < 2; b++)
                    for (int h = 0; h < layer.Heads; h++)
                    {
                        var want = maps.AsSpan((b * layer.Heads + h) * size, size).ToArray();
                        // float32 softmax of sharp scores: a few ulp of probabilities near 1.
                        Assert.True(ModelRunner.MaxAbsDiff(want, batch.Map(l, b, h).ToArray()) < 5e-6, $"{layer.Name}.h{h} sample {b}: maps differ by {ModelRunner.MaxAbsDiff(want, batch.Map(l, b, h).ToArray()):G3}");
                    }
                wholeMaps++;
            }
            for (int b = 0; b < 2; b++)
                for (int h = 0; h < layer.Heads; h++)
                {
                    var map = batch.Map(l, b, h);
                    double e = calculator.EntropyNats(map, layer.QueryTokens, layer.KeyTokens);
                    Assert.True(Math.Abs(e - entropy[b * layer.Heads + h]) < 1e-5, $"{layer.Name}.h{h} sample {b}: entropy {e:R} vs {entropy[b * layer.Heads + h]:R}");
                    if (mass == null) continue;
                    var tokenMass = CrossAttention.TokenMass(map.ToArray().Select(v => (double)v).ToArray(), layer.QueryTokens, layer.KeyTokens);
                    var want = mass.AsSpan((b * layer.Heads + h) * layer.KeyTokens, layer.KeyTokens).ToArray();
                    Assert.True(ModelRunner.MaxAbsDiff(want, tokenMass.Select(v => (float)v).ToArray()) < 1e-6, $"{layer.Name}.h{h} token mass");
                    crossHeads++;
                }
        }
        Assert.Equal(2 * 4 * 2, crossHeads);
        Assert.Equal(1, wholeMaps);
        if (unet.Contains("sliced")) Assert.Equal(8, session.Discovery.MergedSlicedLayers);
    }

    [Fact]
    public void A_text_conditioned_unet_without_conditioning_is_refused_naming_the_input_and_the_options()
    {
        var e = Assert.Throws<InvalidDataException>(() => new AttentionCaptureSession(Path.Combine(Pipeline, "unet", "model.onnx")));
        Assert.Contains("'encoder_hidden_states'", e.Message);
        Assert.Contains("--prompt", e.Message);
        Assert.Contains("--conditioning", e.Message);
        Assert.Contains("never filled with zeros", e.Message);
        // Embeddings of the wrong width are refused too, not broadcast.
        var wrong = new ModelConditioning(new float[77 * 16], 1, 77, 16, "a test");
        var w = Assert.Throws<InvalidDataException>(() => new AttentionCaptureSession(Path.Combine(Pipeline, "unet", "model.onnx"), new CaptureOptions { Conditioning = wrong }));
        Assert.Contains("width", w.Message);
    }

    [Fact]
    public void Sliced_attention_that_cannot_be_joined_is_refused_with_a_message_saying_so()
    {
        // Break the merge: one slice of one layer reads another query tensor.
        var model = OnnxModel.Load(ModelRunner.Fixture("latent/unet_sliced.onnx"));
        var slice = model.Graph.Node.First(n => n.OpType == "Slice" && n.Name.Contains("attn1") && model.Graph.Node.Any(m => m.OpType == "MatMul" && m.Input[0] == n.Output[0]));
        var other = model.Graph.Node.First(n => n.OpType == "Reshape" && n.Name.Contains("attn2")).Output[0];
        slice.Input[0] = other;
        var e = Assert.ThrowsAny<OnnxModelException>(() => AttentionDiscovery.Discover(model));
        Assert.Contains("sliced attention", e.Message);
        Assert.Contains("disable_attention_slicing", e.Message);
    }

    [Fact]
    public void The_merged_sliced_unet_runs_any_batch_size_and_predicts_what_the_unsliced_one_does()
    {
        // The slices were traced at batch 2: merged, the layer covers every row of a batch of 3 too.
        var conditioning = new ModelConditioning(Floats(Reference.GetProperty("text_encoder").GetProperty("last_hidden_state"))[..(77 * 8)], 1, 77, 8, "a test");
        using var sliced = new AttentionCaptureSession(ModelRunner.Fixture("latent/unet_sliced.onnx"), new CaptureOptions { Conditioning = conditioning, ExposeMaps = false });
        using var plain = new AttentionCaptureSession(Path.Combine(Pipeline, "unet", "model.onnx"), new CaptureOptions { Conditioning = conditioning, ExposeMaps = false });
        Assert.Equal(plain.Layers.Select(l => (l.Name, l.Heads, l.KeyTokens)), sliced.Layers.Select(l => (l.Name, l.Heads, l.KeyTokens)));
        Assert.Contains(sliced.Discovery.Notes, n => n.Contains("sliced attention"));
        var x = ModelRunner.RandomSample(3, 4, 8, 11);
        var t = new[] { 20, 500, 900 };
        using var a = sliced.Run(x, t);
        using var b = plain.Run(x, t);
        for (int r = 0; r < 3; r++)
            Assert.True(ModelRunner.MaxAbsDiff(b.PredictedNoise(r).ToArray(), a.PredictedNoise(r).ToArray()) < 1e-4, $"row {r}");
    }

    [Fact]
    public void An_attention_mask_input_is_fed_ones_for_the_given_tokens()
    {
        var signature = new ModelSignature(OnnxModel.Load(ModelRunner.Fixture("latent/unet_masked.onnx")));
        var conditioning = new ModelConditioning(new float[2 * 77 * 8], 2, 77, 8, "a test");
        conditioning.AssignRows(ModelRunner.SampleIds);
        var binding = ModelConditioning.Bind(signature, conditioning, "unet_masked.onnx");
        Assert.Equal("encoder_hidden_states", binding.EmbeddingsInput!.Name);
        Assert.Equal("encoder_attention_mask", binding.MaskInput!.Name);
        using var mask = binding.ValueFor(binding.MaskInput, 3, _ => 0);
        Assert.Equal(new long[] { 3, 77 }, mask.GetTensorTypeAndShape().Shape);
        Assert.All(mask.GetTensorDataAsSpan<long>().ToArray(), v => Assert.Equal(1L, v));
        // Rows per image: row r of the batch gets the embeddings of its image.
        var rows = new ModelConditioning(Enumerable.Range(0, 2 * 77 * 8).Select(i => (float)(i / (77 * 8))).ToArray(), 2, 77, 8, "two rows");
        rows.AssignRows(new[] { "a", "b" });
        var bound = ModelConditioning.Bind(signature, rows, "unet_masked.onnx");
        using var embeddings = bound.ValueFor(bound.EmbeddingsInput!, 3, r => rows.RowOf(new[] { "b", "a", "b" }[r]));
        var values = embeddings.GetTensorDataAsSpan<float>().ToArray();
        Assert.Equal(new[] { 1f, 0f, 1f }, new[] { values[0], values[77 * 8], values[2 * 77 * 8] });
    }

    [Fact]
    public void Embeddings_from_a_npy_file_are_read_as_written_and_bad_files_are_refused_by_name()
    {
        string dir = Directory.CreateTempSubdirectory("npy-").FullName;
        var values = Enumerable.Range(0, 77 * 8).Select(i => i * 0.25f - 3).ToArray();
        string path = Path.Combine(dir, "c.npy");
        NpyFile.WriteFloat32(path, values, 77, 8);                         // [tokens, dim] is one row
        var c = ModelConditioning.FromNpy(path);
        Assert.Equal((1, 77, 8), (c.Rows, c.Tokens, c.Dim));
        Assert.Equal(values, c.Embeddings);
        string ints = Path.Combine(dir, "i.npy");
        NpyFile.WriteInt32(ints, new int[4], 1, 4);
        var e = Assert.Throws<InvalidDataException>(() => ModelConditioning.FromNpy(ints));
        Assert.Contains("i.npy", e.Message);
        Assert.Contains("float32", e.Message);
        File.WriteAllBytes(Path.Combine(dir, "short.npy"), File.ReadAllBytes(path)[..200]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => ModelConditioning.FromNpy(Path.Combine(dir, "short.npy"))).Message);
    }

    [Theory]
    [InlineData(PredictionType.VPrediction)]
    [InlineData(PredictionType.Sample)]
    public void A_v_or_sample_prediction_is_turned_back_into_the_noise_it_stands_for(PredictionType prediction)
    {
        var typed = NoiseScheduleWith(prediction);
        var rng = new Random(3);
        var x0 = Enumerable.Range(0, 50).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var eps = Enumerable.Range(0, 50).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        foreach (int t in new[] { 10, 500, 990 })
        {
            float a = (float)typed.SignalScale(t), s = (float)typed.NoiseScale(t);
            var xt = x0.Select((v, i) => a * v + s * eps[i]).ToArray();
            var output = prediction == PredictionType.VPrediction ? eps.Select((e, i) => a * e - s * x0[i]).ToArray() : x0;
            var recovered = new float[50];
            ForwardNoising.NoiseFromPrediction(output, xt, typed, t, recovered);
            Assert.True(ModelRunner.MaxAbsDiff(eps, recovered) < 2e-4, $"t = {t}: {ModelRunner.MaxAbsDiff(eps, recovered):G3}");
        }
    }

    private static NoiseSchedule NoiseScheduleWith(PredictionType prediction)
    {
        string config = Path.Combine(Directory.CreateTempSubdirectory("sched-").FullName, "scheduler_config.json");
        File.WriteAllText(config, $$"""{"beta_schedule": "linear", "prediction_type": "{{(prediction == PredictionType.VPrediction ? "v_prediction" : "sample")}}"}""");
        return NoiseSchedule.FromSchedulerConfig(config);
    }

    [Fact]
    public void Features_from_the_graph_equal_those_from_the_maps_on_the_latent_pipeline_token_masses_included()
    {
        var setup = DenoiserSetup.FromPipeline(Pipeline, "a photo of a face");
        var conditioning = setup.LoadConditioning()!;
        using var maps = new AttentionCaptureSession(setup.ModelPath, new CaptureOptions { Conditioning = conditioning, Schedule = setup.LoadSchedule() });
        using var graph = new AttentionCaptureSession(setup.ModelPath, new CaptureOptions { Conditioning = conditioning, Schedule = setup.LoadSchedule(), ExposeMaps = false, GraphFeatures = true });
        using var encoder = setup.OpenLatentEncoder(maps.Channels, maps.Height)!;
        var images = encoder.Encode(new SyntheticFaceGenerator(4, 32).GenerateMany(3)).ToList();
        var ts = new[] { 50, 600 };
        var set = new DataSetId("faces");
        var fromMaps = new DiffusionCircuits.Analysis.FeatureExtractor(maps, ts, seed: 2, batchSize: 4).Run(set, images);
        var fromGraph = new DiffusionCircuits.Analysis.FeatureExtractor(graph, ts, seed: 2, batchSize: 4).Run(set, images);
        int tokenMasses = 0;
        for (int k = 0; k < ts.Length; k++)
            for (int i = 0; i < images.Count; i++)
                for (int h = 0; h < maps.TotalHeads; h++)
                    foreach (var feature in HeadFeatures.All)
                    {
                        float a = fromMaps.Features[k][i][h][feature], b = fromGraph.Features[k][i][h][feature];
                        Assert.Equal(float.IsNaN(a), float.IsNaN(b));
                        if (float.IsNaN(a)) continue;
                        Assert.True(Math.Abs(a - b) < 1e-4, $"{feature} of head {h}: {a} vs {b}");
                        if (HeadFeatures.TokenMasses.Contains(feature)) tokenMasses++;
                    }
        // 8 cross-attention heads x 3 token masses, at every image and timestep.
        Assert.Equal(ts.Length * images.Count * 8 * 3, tokenMasses);
    }
}
