namespace DiffusionCircuits.Data;

/// <summary>Facial part labels used by part masks (METHOD.md section 3). Values are stored in mask bytes.</summary>
public enum FacePart : byte
{
    /// <summary>Outside the face and hair.</summary>
    Background = 0,
    /// <summary>Hair.</summary>
    Hair = 1,
    /// <summary>Skin of face and neck.</summary>
    Skin = 2,
    /// <summary>Eyebrows.</summary>
    Brows = 3,
    /// <summary>Eyes.</summary>
    Eyes = 4,
    /// <summary>Nose.</summary>
    Nose = 5,
    /// <summary>Mouth and lips.</summary>
    Mouth = 6,
}

/// <summary>
/// One clean image x0: RGB planes (CHW) with values in [0, 1], and an optional per-pixel part mask (row-major, HW).
/// For a latent diffusion model, <see cref="Latent"/> holds the image as the model sees it.
/// </summary>
public sealed record FaceImage(string Id, int Width, int Height, float[] RgbPlanes, byte[]? PartMask)
{
    /// <summary>
    /// x0 in a latent model's space, [C, h, w] (the VAE encoder's mean times the pipeline's scaling factor), or null for
    /// a pixel-space model, whose x0 is the pixels mapped to [-1, 1]. The pixels stay for what is measured on the image
    /// (edges, texture, parts, overlays).
    /// </summary>
    public float[]? Latent { get; init; }

    /// <summary>Number of part labels.</summary>
    public const int PartCount = 7;

    /// <summary>A part's name in lower case, as tables and manifests write it.</summary>
    public static string PartName(FacePart part) => part.ToString().ToLowerInvariant();
}
