namespace DiffusionCircuits.Data;

/// <summary>Facial part labels used by part masks (METHOD.md section 3). Values are stored in mask bytes.</summary>
public enum FacePart : byte
{
    Background = 0,
    Hair = 1,
    Skin = 2,
    Brows = 3,
    Eyes = 4,
    Nose = 5,
    Mouth = 6,
}

/// <summary>
/// One clean image x0: RGB planes (CHW) with values in [0, 1], and an optional per-pixel part mask (row-major, HW).
/// </summary>
public sealed record FaceImage(string Id, int Width, int Height, float[] RgbPlanes, byte[]? PartMask)
{
    public const int PartCount = 7;

    public static string PartName(FacePart part) => part.ToString().ToLowerInvariant();
}
