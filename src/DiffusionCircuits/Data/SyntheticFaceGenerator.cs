using SkiaSharp;

namespace DiffusionCircuits.Data;

/// <summary>
/// Procedural faces with exact part masks, deterministic from (seed, index). Each face is a list of shapes drawn
/// twice: antialiased and shaded into the image, and without antialiasing into the label mask, so the mask says
/// which part covers each pixel. Faces are rendered at <see cref="RenderSize"/> and area-downsampled to the
/// requested size, so small outputs are antialiased too.
/// </summary>
public sealed class SyntheticFaceGenerator
{
    private readonly int _seed;

    /// <summary>Faces of side <paramref name="size"/> drawn from <paramref name="seed"/>.</summary>
    public SyntheticFaceGenerator(int seed, int size = 64, int renderSize = 0)
    {
        if (size < 8 || size > 1024) throw new ArgumentOutOfRangeException(nameof(size), size, "Face size must be between 8 and 1024 pixels.");
        _seed = seed;
        Size = size;
        RenderSize = renderSize > 0 ? renderSize : Math.Max(size, 128);
    }

    /// <summary>Output side in pixels.</summary>
    public int Size { get; }

    /// <summary>Side in pixels at which faces are drawn before downsampling.</summary>
    public int RenderSize { get; }

    /// <summary>The face with this index; the same (seed, index) always gives the same face.</summary>
    public FaceImage Generate(int index)
    {
        // One independent stream per face: faces do not depend on how many were generated before.
        var rng = new Random(StableSeed.Of(_seed, index, 0x5EED));
        var face = FaceParameters.Sample(rng);
        var (planes, mask) = Render(face, RenderSize, rng);
        if (RenderSize == Size)
            return new FaceImage($"synthetic-{index:D6}", Size, Size, planes, mask);
        var small = ImageResampler.AreaResample(planes, 3, RenderSize, RenderSize, 0, 0, RenderSize, RenderSize, Size, Size);
        var smallMask = ImageResampler.NearestLabels(mask, RenderSize, RenderSize, 0, 0, RenderSize, RenderSize, Size, Size);
        return new FaceImage($"synthetic-{index:D6}", Size, Size, small, smallMask);
    }

    /// <summary>Faces 0..count-1, generated lazily.</summary>
    public IEnumerable<FaceImage> GenerateMany(int count, int start = 0)
    {
        for (int i = start; i < start + count; i++) yield return Generate(i);
    }

    /// <summary>
    /// Part mask of the aligned-face template: where the parts of an average aligned CelebA face lie after the
    /// standard crop (eyes at 42% of the height, 31% apart; nose tip at 60%; mouth at 74%).
    /// </summary>
    public static byte[] AlignedTemplateMask(int size)
    {
        var face = FaceParameters.AlignedTemplate();
        var (_, mask) = Render(face, 256, new Random(0), drawImage: false);
        return ImageResampler.NearestLabels(mask, 256, 256, 0, 0, 256, 256, size, size);
    }

    private static (float[] Planes, byte[] Mask) Render(FaceParameters f, int n, Random rng, bool drawImage = true)
    {
        var info = new SKImageInfo(n, n, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var image = new SKBitmap(info);
        using var maskBitmap = new SKBitmap(info);
        using var canvas = new SKCanvas(image);
        using var maskCanvas = new SKCanvas(maskBitmap);
        canvas.Scale(n);                        // draw in unit coordinates
        maskCanvas.Scale(n);
        maskCanvas.Clear(new SKColor(0, 0, 0, 255));

        if (drawImage) DrawBackground(canvas, f, rng);

        void Shape(SKPath path, FacePart part, SKPaint? paint)
        {
            if (drawImage && paint != null) canvas.DrawPath(path, paint);
            using var label = new SKPaint { Color = new SKColor((byte)part, 0, 0, 255), IsAntialias = false, Style = SKPaintStyle.Fill };
            maskCanvas.DrawPath(path, label);
        }

        // Clothes and shoulders belong to the background part.
        using (var shoulders = new SKPath())
        {
            shoulders.AddOval(new SKRect(f.Cx - 0.42f, 0.84f, f.Cx + 0.42f, 1.45f));
            using var p = Fill(f.ClothesColor);
            if (drawImage) canvas.DrawPath(shoulders, p);
        }

        var roll = SKMatrix.CreateRotationDegrees(f.RollDegrees, f.Cx, f.Cy);
        canvas.Save(); canvas.Concat(roll);
        maskCanvas.Save(); maskCanvas.Concat(roll);

        // Hair behind the head (long styles).
        if (f.HairStyle is HairStyle.Long or HairStyle.Bob)
        {
            using var back = new SKPath();
            float bottom = f.HairStyle == HairStyle.Long ? f.Cy + f.Ry * 1.35f : f.Cy + f.Ry * 0.55f;
            back.AddRoundRect(new SKRect(f.Cx - f.Rx * 1.28f, f.Cy - f.Ry * 1.18f, f.Cx + f.Rx * 1.28f, bottom), f.Rx * 0.7f, f.Rx * 0.7f);
            using var p = Shaded(f.HairColor, f, 0.25f);
            Shape(back, FacePart.Hair, p);
        }

        // Neck and ears (skin).
        using (var neck = new SKPath())
        {
            neck.AddRect(new SKRect(f.Cx - f.Rx * 0.45f, f.Cy + f.Ry * 0.5f, f.Cx + f.Rx * 0.45f, f.Cy + f.Ry * 1.6f));
            using var p = Fill(Darken(f.SkinColor, 0.78f));
            Shape(neck, FacePart.Skin, p);
        }
        foreach (int side in new[] { -1, 1 })
        {
            using var ear = new SKPath();
            float ex = f.Cx + side * (f.Rx * 0.97f) + f.YawShift * f.Rx * 0.2f;
            ear.AddOval(new SKRect(ex - f.Rx * 0.14f, f.EyeY - f.Ry * 0.02f, ex + f.Rx * 0.14f, f.EyeY + f.Ry * 0.32f));
            using var p = Fill(Darken(f.SkinColor, 0.9f));
            Shape(ear, FacePart.Skin, p);
        }

        // Face: an egg shape, wider at the cheekbones than at the chin.
        using (var head = FacePath(f))
        using (var p = Shaded(f.SkinColor, f, 0.22f))
            Shape(head, FacePart.Skin, p);

        // Hair on top of the head.
        if (f.HairStyle != HairStyle.Bald)
        {
            using var top = new SKPath();
            var capRect = new SKRect(f.Cx - f.Rx * 1.08f, f.Cy - f.Ry * 1.12f, f.Cx + f.Rx * 1.08f, f.Cy + f.Ry * (0.05f + f.HairCoverage));
            top.AddArc(capRect, 180, 180);
            top.Close();
            if (f.HairStyle == HairStyle.Curly)
            {
                var curl = new Random(f.DetailSeed);
                for (int k = 0; k < 14; k++)
                {
                    double a = Math.PI * (1.0 + k / 13.0);
                    float r = f.Rx * (0.2f + 0.08f * (float)curl.NextDouble());
                    float x = f.Cx + (float)Math.Cos(a) * f.Rx * 1.02f, y = f.Cy - f.Ry * 0.35f + (float)Math.Sin(a) * f.Ry * 0.78f;
                    top.AddCircle(x, y, r);
                }
            }
            if (f.Bangs)
            {
                top.AddRect(new SKRect(f.Cx - f.Rx * 0.8f, f.Cy - f.Ry * 0.75f, f.Cx + f.Rx * (0.2f + 0.6f * f.BangsSide), f.Cy - f.Ry * 0.42f));
            }
            if (f.HairStyle == HairStyle.Bun)
                top.AddCircle(f.Cx, f.Cy - f.Ry * 1.15f, f.Rx * 0.38f);
            using var p = Shaded(f.HairColor, f, 0.3f);
            Shape(top, FacePart.Hair, p);
        }

        // Features are shifted sideways by yaw; the far eye gets smaller.
        float fx = f.Cx + f.YawShift * f.Rx * 0.35f;
        foreach (int side in new[] { -1, 1 })
        {
            float ex = fx + side * f.EyeSpacing * f.Rx;
            float scale = 1f - 0.25f * Math.Max(0, side * -f.YawShift);
            float ew = f.EyeWidth * f.Rx * scale, eh = f.EyeHeight * f.Ry;

            using (var brow = new SKPath())
            {
                float by = f.EyeY - f.BrowGap * f.Ry;
                brow.MoveTo(ex - ew * 1.2f, by + eh * 0.4f);
                brow.QuadTo(ex - ew * 0.1f, by - eh * (0.9f + f.BrowArch) + side * f.BrowTilt * eh, ex + ew * 1.2f, by + eh * 0.3f);
                brow.QuadTo(ex - ew * 0.1f, by - eh * (0.9f + f.BrowArch) + f.BrowThickness * f.Ry + side * f.BrowTilt * eh, ex - ew * 1.2f, by + eh * 0.4f);
                brow.Close();
                using var p = Fill(Darken(f.HairColor, 0.8f));
                Shape(brow, FacePart.Brows, p);
            }

            using (var eye = new SKPath())
            {
                eye.AddOval(new SKRect(ex - ew, f.EyeY - eh, ex + ew, f.EyeY + eh));
                using var white = Fill(new SKColor(245, 242, 236));
                Shape(eye, FacePart.Eyes, white);
                if (drawImage)
                {
                    canvas.Save();
                    canvas.ClipPath(eye, SKClipOperation.Intersect, true);
                    float ir = eh * 1.05f;
                    float ix = ex + f.GazeX * ew * 0.35f;
                    using var iris = Fill(f.IrisColor);
                    canvas.DrawCircle(ix, f.EyeY, ir, iris);
                    using var pupil = Fill(new SKColor(15, 12, 12));
                    canvas.DrawCircle(ix, f.EyeY, ir * 0.45f, pupil);
                    using var glint = Fill(new SKColor(255, 255, 255, 220));
                    canvas.DrawCircle(ix + ir * 0.3f, f.EyeY - ir * 0.3f, ir * 0.18f, glint);
                    canvas.Restore();
                    using var lid = new SKPaint { Color = Darken(f.SkinColor, 0.35f), IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = eh * 0.28f };
                    using var upper = new SKPath();
                    upper.AddArc(new SKRect(ex - ew, f.EyeY - eh, ex + ew, f.EyeY + eh), 190, 160);
                    canvas.DrawPath(upper, lid);
                }
            }
        }

        using (var nose = new SKPath())
        {
            float top = f.EyeY + f.Ry * 0.05f, tip = f.EyeY + f.NoseLength * f.Ry, w = f.NoseWidth * f.Rx;
            nose.MoveTo(fx - w * 0.25f, top);
            nose.LineTo(fx + w * 0.25f, top);
            nose.LineTo(fx + w, tip);
            nose.QuadTo(fx, tip + w * 0.55f, fx - w, tip);
            nose.Close();
            using var p = Fill(Darken(f.SkinColor, 0.86f));
            Shape(nose, FacePart.Nose, p);
            if (drawImage)
            {
                using var nostril = Fill(Darken(f.SkinColor, 0.45f));
                canvas.DrawOval(fx - w * 0.45f, tip, w * 0.2f, w * 0.12f, nostril);
                canvas.DrawOval(fx + w * 0.45f, tip, w * 0.2f, w * 0.12f, nostril);
            }
        }

        using (var mouth = new SKPath())
        {
            float my = f.MouthY, mw = f.MouthWidth * f.Rx, mh = f.MouthHeight * f.Ry;
            mouth.MoveTo(fx - mw, my);
            mouth.QuadTo(fx, my - mh * (1.0f - f.Smile), fx + mw, my);
            mouth.QuadTo(fx, my + mh * (1.2f + f.Smile), fx - mw, my);
            mouth.Close();
            using var p = Fill(f.LipColor);
            Shape(mouth, FacePart.Mouth, p);
            if (drawImage)
            {
                using var line = new SKPaint { Color = Darken(f.LipColor, 0.45f), IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = mh * 0.25f };
                using var seam = new SKPath();
                seam.MoveTo(fx - mw, my);
                seam.QuadTo(fx, my + mh * f.Smile * 0.9f, fx + mw, my);
                canvas.DrawPath(seam, line);
            }
        }

        canvas.Restore();
        maskCanvas.Restore();

        if (drawImage)
        {
            // Global lighting: a soft directional gradient over the whole picture.
            using var light = new SKPaint
            {
                IsAntialias = true,
                Shader = SKShader.CreateLinearGradient(
                    new SKPoint(0.5f - 0.5f * f.LightX, 0.5f - 0.5f * f.LightY), new SKPoint(0.5f + 0.5f * f.LightX, 0.5f + 0.5f * f.LightY),
                    new[] { new SKColor(255, 255, 255, (byte)(40 * f.LightStrength)), new SKColor(0, 0, 0, (byte)(70 * f.LightStrength)) },
                    SKShaderTileMode.Clamp),
            };
            canvas.DrawRect(0, 0, 1, 1, light);
        }
        canvas.Flush();
        maskCanvas.Flush();

        var planes = drawImage ? SkiaPixels.ToPlanes(image) : Array.Empty<float>();
        var maskBytes = maskBitmap.GetPixelSpan();
        var mask = new byte[n * n];
        for (int i = 0; i < mask.Length; i++) mask[i] = maskBytes[i * 4];
        return (planes, mask);
    }

    private static SKPath FacePath(FaceParameters f)
    {
        var path = new SKPath();
        float cx = f.Cx, cy = f.Cy, rx = f.Rx, ry = f.Ry, chin = f.ChinWidth;
        path.MoveTo(cx, cy - ry);
        path.CubicTo(cx + rx * 0.75f, cy - ry, cx + rx, cy - ry * 0.55f, cx + rx, cy - ry * 0.05f);
        path.CubicTo(cx + rx, cy + ry * 0.45f, cx + rx * chin, cy + ry, cx, cy + ry);
        path.CubicTo(cx - rx * chin, cy + ry, cx - rx, cy + ry * 0.45f, cx - rx, cy - ry * 0.05f);
        path.CubicTo(cx - rx, cy - ry * 0.55f, cx - rx * 0.75f, cy - ry, cx, cy - ry);
        path.Close();
        return path;
    }

    private static void DrawBackground(SKCanvas canvas, FaceParameters f, Random rng)
    {
        switch (f.Background)
        {
            case BackgroundKind.Flat:
                canvas.Clear(f.BackgroundA);
                break;
            case BackgroundKind.Gradient:
            {
                using var p = new SKPaint
                {
                    Shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(f.LightX * 0.5f + 0.5f, 1),
                        new[] { f.BackgroundA, f.BackgroundB }, SKShaderTileMode.Clamp),
                };
                canvas.DrawRect(0, 0, 1, 1, p);
                break;
            }
            case BackgroundKind.Radial:
            {
                using var p = new SKPaint
                {
                    Shader = SKShader.CreateRadialGradient(new SKPoint(0.5f, 0.4f), 0.8f,
                        new[] { f.BackgroundA, f.BackgroundB }, SKShaderTileMode.Clamp),
                };
                canvas.DrawRect(0, 0, 1, 1, p);
                break;
            }
            default:
            {
                canvas.Clear(f.BackgroundA);
                for (int k = 0; k < 18; k++)
                {
                    var c = Mix(f.BackgroundA, f.BackgroundB, (float)rng.NextDouble());
                    using var p = Fill(c.WithAlpha((byte)rng.Next(120, 256)));
                    float x = (float)rng.NextDouble(), y = (float)rng.NextDouble(), s = 0.05f + 0.25f * (float)rng.NextDouble();
                    if (rng.Next(2) == 0) canvas.DrawRect(x - s / 2, y - s / 2, s, s * (0.3f + (float)rng.NextDouble()), p);
                    else canvas.DrawCircle(x, y, s / 2, p);
                }
                break;
            }
        }
    }

    private static SKPaint Fill(SKColor c) => new() { Color = c, IsAntialias = true, Style = SKPaintStyle.Fill };

    /// <summary>A fill lit from the face's light direction: lighter towards the light, darker away from it.</summary>
    private static SKPaint Shaded(SKColor c, FaceParameters f, float amount) => new()
    {
        IsAntialias = true,
        Style = SKPaintStyle.Fill,
        Shader = SKShader.CreateRadialGradient(
            new SKPoint(f.Cx - f.LightX * f.Rx * 0.6f, f.Cy - f.LightY * f.Ry * 0.6f), f.Ry * 1.9f,
            new[] { Lighten(c, amount * f.LightStrength), Darken(c, 1f - amount * f.LightStrength * 1.6f) },
            SKShaderTileMode.Clamp),
    };

    internal static SKColor Darken(SKColor c, float factor) =>
        new((byte)Math.Clamp(c.Red * factor, 0, 255), (byte)Math.Clamp(c.Green * factor, 0, 255), (byte)Math.Clamp(c.Blue * factor, 0, 255), c.Alpha);

    internal static SKColor Lighten(SKColor c, float amount) =>
        new((byte)(c.Red + (255 - c.Red) * amount), (byte)(c.Green + (255 - c.Green) * amount), (byte)(c.Blue + (255 - c.Blue) * amount), c.Alpha);

    internal static SKColor Mix(SKColor a, SKColor b, float t) =>
        new((byte)(a.Red + (b.Red - a.Red) * t), (byte)(a.Green + (b.Green - a.Green) * t), (byte)(a.Blue + (b.Blue - a.Blue) * t), 255);
}

internal enum HairStyle { Bald, Short, Long, Bob, Curly, Bun }

internal enum BackgroundKind { Flat, Gradient, Radial, Clutter }

/// <summary>Everything that varies between synthetic faces, in unit image coordinates.</summary>
internal sealed class FaceParameters
{
    public float Cx, Cy, Rx, Ry, ChinWidth, RollDegrees, YawShift;
    public float EyeY, EyeSpacing, EyeWidth, EyeHeight, GazeX;
    public float BrowGap, BrowArch, BrowTilt, BrowThickness;
    public float NoseLength, NoseWidth;
    public float MouthY, MouthWidth, MouthHeight, Smile;
    public float HairCoverage, BangsSide, LightX, LightY, LightStrength;
    public bool Bangs;
    public HairStyle HairStyle;
    public BackgroundKind Background;
    public SKColor SkinColor, HairColor, IrisColor, LipColor, ClothesColor, BackgroundA, BackgroundB;
    public int DetailSeed;

    private static readonly SKColor[] SkinTones =
    {
        new(255, 226, 204), new(241, 194, 160), new(224, 172, 130), new(198, 140, 100),
        new(160, 105, 70), new(120, 78, 52), new(88, 56, 38),
    };

    private static readonly SKColor[] HairColors =
    {
        new(20, 16, 14), new(50, 32, 22), new(90, 58, 34), new(140, 95, 55), new(200, 160, 90),
        new(230, 200, 140), new(150, 60, 30), new(160, 160, 165), new(225, 225, 225),
    };

    private static readonly SKColor[] IrisColors =
    {
        new(70, 45, 25), new(100, 70, 40), new(60, 110, 170), new(80, 130, 90), new(40, 30, 25), new(110, 120, 130),
    };

    public static FaceParameters Sample(Random r)
    {
        float U(float a, float b) => a + (b - a) * (float)r.NextDouble();
        T Pick<T>(T[] xs) => xs[r.Next(xs.Length)];

        var f = new FaceParameters
        {
            Rx = U(0.24f, 0.32f),
            RollDegrees = U(-12f, 12f),
            YawShift = U(-0.6f, 0.6f),
            ChinWidth = U(0.15f, 0.55f),
            DetailSeed = r.Next(),
        };
        f.Ry = f.Rx * U(1.18f, 1.45f);
        f.Cx = 0.5f + U(-0.06f, 0.06f);
        f.Cy = 0.5f + U(-0.04f, 0.06f);
        f.EyeY = f.Cy - f.Ry * U(0.02f, 0.18f);
        f.EyeSpacing = U(0.34f, 0.48f);
        f.EyeWidth = U(0.17f, 0.25f);
        f.EyeHeight = U(0.06f, 0.1f);
        f.GazeX = U(-1f, 1f);
        f.BrowGap = U(0.15f, 0.25f);
        f.BrowArch = U(0f, 0.8f);
        f.BrowTilt = U(-0.5f, 0.5f);
        f.BrowThickness = U(0.05f, 0.09f);
        f.NoseLength = U(0.3f, 0.45f);
        f.NoseWidth = U(0.13f, 0.22f);
        f.MouthY = f.EyeY + f.Ry * U(0.62f, 0.78f);
        f.MouthWidth = U(0.25f, 0.42f);
        f.MouthHeight = U(0.05f, 0.1f);
        f.Smile = U(-0.2f, 0.7f);
        f.HairStyle = (HairStyle)r.Next(6);
        f.HairCoverage = U(-0.55f, -0.35f);
        f.Bangs = r.Next(3) == 0;
        f.BangsSide = U(0f, 1f);
        f.LightX = U(-1f, 1f);
        f.LightY = U(-1f, 0.4f);
        f.LightStrength = U(0.3f, 1f);
        f.Background = (BackgroundKind)r.Next(4);

        var tone = r.Next(SkinTones.Length - 1);
        f.SkinColor = SyntheticFaceGenerator.Mix(SkinTones[tone], SkinTones[tone + 1], U(0, 1));
        f.HairColor = r.Next(20) == 0 ? new SKColor((byte)r.Next(256), (byte)r.Next(256), (byte)r.Next(256)) : Pick(HairColors);
        f.IrisColor = Pick(IrisColors);
        var lipBase = new SKColor(200, 90, 95);
        f.LipColor = SyntheticFaceGenerator.Mix(lipBase, SyntheticFaceGenerator.Darken(f.SkinColor, 0.8f), U(0.2f, 0.6f));
        f.ClothesColor = new SKColor((byte)r.Next(20, 230), (byte)r.Next(20, 230), (byte)r.Next(20, 230));
        f.BackgroundA = new SKColor((byte)r.Next(30, 240), (byte)r.Next(30, 240), (byte)r.Next(30, 240));
        f.BackgroundB = new SKColor((byte)r.Next(30, 240), (byte)r.Next(30, 240), (byte)r.Next(30, 240));
        return f;
    }

    /// <summary>An average aligned CelebA face after the standard 128-pixel crop (landmarks from the CelebA alignment).</summary>
    public static FaceParameters AlignedTemplate() => new()
    {
        Cx = 0.5f, Cy = 0.52f, Rx = 0.34f, Ry = 0.46f, ChinWidth = 0.35f,
        EyeY = 0.42f, EyeSpacing = 0.45f, EyeWidth = 0.24f, EyeHeight = 0.045f,
        BrowGap = 0.15f, BrowArch = 0.4f, BrowThickness = 0.04f,
        NoseLength = 0.4f, NoseWidth = 0.2f,
        MouthY = 0.745f, MouthWidth = 0.42f, MouthHeight = 0.07f, Smile = 0.3f,
        HairStyle = HairStyle.Short, HairCoverage = -0.55f,
        SkinColor = new SKColor(200, 160, 130), HairColor = new SKColor(60, 40, 30), LipColor = new SKColor(180, 90, 90),
    };
}
