namespace DiffusionCircuits;

/// <summary>
/// Seeds derived from several integers that are the same in every process and on every platform
/// (unlike <see cref="HashCode"/>, which is randomised per process). One run seed drives everything through this.
/// </summary>
internal static class StableSeed
{
    public static int Of(params long[] parts)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        foreach (var p in parts) h = SplitMix64(h ^ (ulong)p);
        return (int)(h & 0x7FFFFFFF);
    }

    public static ulong SplitMix64(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }
}
