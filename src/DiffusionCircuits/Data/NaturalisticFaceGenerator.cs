namespace DiffusionCircuits.Data;

/// <summary>
/// A procedural stand-in for real photographs, used only when no real faces are given (and then announced loudly).
/// It starts from a synthetic face of another seed stream and adds what separates photographs from clean drawings:
/// cluttered multi-scale backgrounds, skin and hair texture, uneven lighting with a colour cast, slight defocus and
/// sensor noise. Part masks are kept (exact), so every probe is defined. It is not CelebA: numbers measured on it
/// say nothing about real faces.
/// </summary>
public sealed class NaturalisticFaceGenerator
{
    private readonly SyntheticFaceGenerator _faces;
    private readonly int _seed;

    /// <summary>Faces of side <paramref name="size"/> drawn from <paramref name="seed"/>.</summary>
    public NaturalisticFaceGenerator(int seed, int size = 64)
    {
        _seed = seed;
        _faces = new SyntheticFaceGenerator(StableSeed.Of(seed, 0x4A7), size);
    }

    /// <summary>Image side in pixels.</summary>
    public int Size => _faces.Size;

    /// <summary>Face number <paramref name="index"/> (the same index always gives the same face).</summary>
    public FaceImage Generate(int index)
    {
        var face = _faces.Generate(index);
        int n = face.Width, plane = n * n;
        var rng = new Random(StableSeed.Of(_seed, index, 0x4A71));
        var rgb = (float[])face.RgbPlanes.Clone();
        var mask = face.PartMask!;

        // Background clutter: value noise at three scales in two random colours.
        var background = ValueNoise(n, rng, 3, 0.55f);
        var colourA = RandomColour(rng);
        var colourB = RandomColour(rng);
        // Texture on skin and hair (pores, strands): fine noise with a part-dependent strength.
        var fine = ValueNoise(n, rng, 1, 0.5f, baseCells: n / 2);
        // Light: a linear gradient in a random direction and a colour cast.
        double angle = rng.NextDouble() * 2 * Math.PI;
        float strength = 0.15f + 0.25f * (float)rng.NextDouble();
        var cast = new[] { 1 + 0.12f * (float)(rng.NextDouble() - 0.5), 1 + 0.08f * (float)(rng.NextDouble() - 0.5), 1 + 0.12f * (float)(rng.NextDouble() - 0.5) };
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
            {
                int p = y * n + x;
                var part = (FacePart)mask[p];
                float light = 1 + strength * (float)(((x + 0.5) / n - 0.5) * Math.Cos(angle) + ((y + 0.5) / n - 0.5) * Math.Sin(angle));
                for (int c = 0; c < 3; c++)
                {
                    float v = rgb[c * plane + p];
                    if (part == FacePart.Background) v = colourA[c] + (colourB[c] - colourA[c]) * background[p];
                    else if (part is FacePart.Skin or FacePart.Nose) v *= 0.93f + 0.14f * fine[p];
                    else if (part == FacePart.Hair) v *= 0.7f + 0.6f * fine[p];
                    rgb[c * plane + p] = v * light * cast[c];
                }
            }
        rgb = Blur(rgb, n, 0.6f + 0.4f * (float)rng.NextDouble());
        for (int i = 0; i < rgb.Length; i++)
            rgb[i] = Math.Clamp(rgb[i] + 0.02f * (float)Gaussian(rng), 0f, 1f);
        return new FaceImage($"naturalistic-{index:D6}", n, n, rgb, mask);
    }

    /// <summary>Faces <paramref name="start"/> .. start + count - 1, lazily.</summary>
    public IEnumerable<FaceImage> GenerateMany(int count, int start = 0)
    {
        for (int i = start; i < start + count; i++) yield return Generate(i);
    }

    private static float[] RandomColour(Random rng) =>
        new[] { 0.15f + 0.7f * (float)rng.NextDouble(), 0.15f + 0.7f * (float)rng.NextDouble(), 0.15f + 0.7f * (float)rng.NextDouble() };

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>Sum of bilinearly interpolated random grids (octaves), normalised to [0, 1].</summary>
    private static float[] ValueNoise(int n, Random rng, int octaves, float persistence, int baseCells = 3)
    {
        var sum = new float[n * n];
        float amplitude = 1;
        for (int o = 0, cells = Math.Max(2, baseCells); o < octaves; o++, cells *= 2, amplitude *= persistence)
        {
            var grid = new float[(cells + 1) * (cells + 1)];
            for (int i = 0; i < grid.Length; i++) grid[i] = (float)rng.NextDouble();
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++)
                {
                    float gx = (x + 0.5f) / n * cells, gy = (y + 0.5f) / n * cells;
                    int x0 = Math.Min((int)gx, cells - 1), y0 = Math.Min((int)gy, cells - 1);
                    float fx = gx - x0, fy = gy - y0;
                    float top = grid[y0 * (cells + 1) + x0] * (1 - fx) + grid[y0 * (cells + 1) + x0 + 1] * fx;
                    float bottom = grid[(y0 + 1) * (cells + 1) + x0] * (1 - fx) + grid[(y0 + 1) * (cells + 1) + x0 + 1] * fx;
                    sum[y * n + x] += amplitude * (top * (1 - fy) + bottom * fy);
                }
        }
        float min = sum.Min(), max = sum.Max();
        for (int i = 0; i < sum.Length; i++) sum[i] = max > min ? (sum[i] - min) / (max - min) : 0.5f;
        return sum;
    }

    /// <summary>Separable Gaussian blur of CHW planes with edge clamping.</summary>
    private static float[] Blur(float[] rgb, int n, float sigma)
    {
        int radius = (int)Math.Ceiling(2 * sigma);
        var kernel = Enumerable.Range(-radius, 2 * radius + 1).Select(d => (float)Math.Exp(-d * d / (2 * sigma * sigma))).ToArray();
        float total = kernel.Sum();
        for (int i = 0; i < kernel.Length; i++) kernel[i] /= total;
        var tmp = new float[rgb.Length];
        var result = new float[rgb.Length];
        for (int c = 0; c < 3; c++)
        {
            int o = c * n * n;
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++)
                {
                    float s = 0;
                    for (int d = -radius; d <= radius; d++) s += kernel[d + radius] * rgb[o + y * n + Math.Clamp(x + d, 0, n - 1)];
                    tmp[o + y * n + x] = s;
                }
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++)
                {
                    float s = 0;
                    for (int d = -radius; d <= radius; d++) s += kernel[d + radius] * tmp[o + Math.Clamp(y + d, 0, n - 1) * n + x];
                    result[o + y * n + x] = s;
                }
        }
        return result;
    }
}
