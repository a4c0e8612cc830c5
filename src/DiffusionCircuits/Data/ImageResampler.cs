namespace DiffusionCircuits.Data;

/// <summary>
/// Exact area-average resampling: each output pixel is the mean of the input area it covers. This is a box
/// prefilter, so downscaling by any ratio does not alias (unlike point or bilinear sampling).
/// </summary>
public static class ImageResampler
{
    /// <summary>Resamples planar channels (CHW) from a source rectangle [x0, x0+w) x [y0, y0+h) to outW x outH.</summary>
    public static float[] AreaResample(ReadOnlySpan<float> planes, int channels, int width, int height,
        double x0, double y0, double w, double h, int outW, int outH)
    {
        var xWeights = Weights(x0, w, outW, width);
        var yWeights = Weights(y0, h, outH, height);
        var output = new float[channels * outW * outH];
        var row = new double[outW];
        for (int c = 0; c < channels; c++)
        {
            var plane = planes.Slice(c * width * height, width * height);
            for (int oy = 0; oy < outH; oy++)
            {
                Array.Clear(row);
                foreach (var (sy, wy) in yWeights[oy])
                {
                    var src = plane.Slice(sy * width, width);
                    for (int ox = 0; ox < outW; ox++)
                    {
                        double acc = 0;
                        foreach (var (sx, wx) in xWeights[ox]) acc += wx * src[sx];
                        row[ox] += wy * acc;
                    }
                }
                int o = c * outW * outH + oy * outW;
                for (int ox = 0; ox < outW; ox++) output[o + ox] = (float)row[ox];
            }
        }
        return output;
    }

    /// <summary>For each output index, the source indices it covers with normalised coverage weights.</summary>
    private static (int Index, double Weight)[][] Weights(double start, double length, int outCount, int srcCount)
    {
        var result = new (int, double)[outCount][];
        double scale = length / outCount;
        for (int o = 0; o < outCount; o++)
        {
            double a = start + o * scale, b = a + scale;
            var list = new List<(int, double)>();
            for (int s = (int)Math.Floor(a); s < (int)Math.Ceiling(b); s++)
            {
                double cover = Math.Min(b, s + 1) - Math.Max(a, s);
                if (cover <= 0) continue;
                list.Add((Math.Clamp(s, 0, srcCount - 1), cover / scale));
            }
            result[o] = list.ToArray();
        }
        return result;
    }

    /// <summary>Resamples a label mask by taking the label at each output pixel's centre.</summary>
    public static byte[] NearestLabels(ReadOnlySpan<byte> labels, int width, int height,
        double x0, double y0, double w, double h, int outW, int outH)
    {
        var output = new byte[outW * outH];
        for (int oy = 0; oy < outH; oy++)
        {
            int sy = Math.Clamp((int)(y0 + (oy + 0.5) * h / outH), 0, height - 1);
            for (int ox = 0; ox < outW; ox++)
            {
                int sx = Math.Clamp((int)(x0 + (ox + 0.5) * w / outW), 0, width - 1);
                output[oy * outW + ox] = labels[sy * width + sx];
            }
        }
        return output;
    }
}
