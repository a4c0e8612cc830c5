using DiffusionCircuits.Capture;
using DiffusionCircuits.Transforms;

namespace DiffusionCircuits.Tests.Transforms;

public class FastEntropyTests
{
    [Theory]
    [InlineData(3)]        // scalar tail only
    [InlineData(9)]        // one 256-bit vector and a tail
    [InlineData(36)]
    [InlineData(65536)]    // a 256 x 256 map
    [InlineData(65541)]
    public void Sum_p_ln_p_agrees_with_double_precision_including_zeros_and_tiny_values(int n)
    {
        var rng = new Random(n);
        var p = new float[n];
        for (int i = 0; i < n; i++)
            p[i] = (i % 7) switch
            {
                0 => 0f,                                        // 0 ln 0 = 0
                1 => 1e-38f,                                    // below the clamp
                2 => (float)rng.NextDouble() * 1e-9f,
                _ => (float)rng.NextDouble(),
            };
        double exact = 0;
        foreach (var v in p) if (v > 0) exact += v * Math.Log(v);
        double fast = FastEntropy.SumPLogP(p);
        Assert.True(Math.Abs(fast - exact) <= 1e-6 * Math.Max(1, Math.Abs(exact)), $"n = {n}: fast {fast}, exact {exact}");
    }

    [Fact]
    public void A_one_hot_row_has_zero_entropy_and_a_uniform_row_ln_n()
    {
        var oneHot = new float[256];
        oneHot[17] = 1f;
        Assert.Equal(0.0, FastEntropy.SumPLogP(oneHot), 12);
        var uniform = Enumerable.Repeat(1f / 256, 256).ToArray();
        Assert.Equal(-Math.Log(256), FastEntropy.SumPLogP(uniform), 5);
    }
}
