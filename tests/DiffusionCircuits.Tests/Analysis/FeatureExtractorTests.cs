using DiffusionCircuits.Analysis;
using DiffusionCircuits.Capture;
using DiffusionCircuits.Data;
using DiffusionCircuits.Tests.Support;

namespace DiffusionCircuits.Tests.Analysis;

public class FeatureExtractorTests
{
    [Fact]
    public void A_batch_whose_rows_run_on_every_core_gives_the_bits_of_one_row_at_a_time()
    {
        // One batch of 12 rows (features per row and the map sums in blocks, on every core) against batches of one row.
        var model = Path.Combine(ModelRunner.RepoRoot(), "models", "reference-ddpm-32.onnx");
        var images = new SyntheticFaceGenerator(5, 32).GenerateMany(4).ToList();
        var ts = new[] { 50, 400, 800 };
        using var session = new AttentionCaptureSession(model);
        var set = new DataSetId("faces");
        var together = new FeatureExtractor(session, ts, seed: 2, batchSize: 12).Run(set, images);
        var alone = new FeatureExtractor(session, ts, seed: 2, batchSize: 1).Run(set, images);
        Assert.Equal(alone.ImageIds, together.ImageIds);
        for (int k = 0; k < ts.Length; k++)
        {
            Assert.Equal(alone.LossMse[k], together.LossMse[k]);
            for (int i = 0; i < images.Count; i++)
                for (int h = 0; h < session.TotalHeads; h++)
                    foreach (var feature in HeadFeatures.All)
                        Assert.Equal(alone.Features[k][i][h][feature], together.Features[k][i][h][feature]);
            for (int l = 0; l < session.Layers.Count; l++) Assert.Equal(alone.MeanMaps[k][l], together.MeanMaps[k][l]);
        }
        // The rows differ (a mix-up of rows would show): the images' entropies are not all one value.
        Assert.True(together.Features[0].Select(row => row[0].EntropyNats).Distinct().Count() > 1);
    }
}
