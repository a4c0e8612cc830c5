using System.Text;

namespace DiffusionCircuits.Data;

/// <summary>Writes NumPy .npy files (format 1.0), so images and features can be read with numpy.load.</summary>
public static class NpyFile
{
    /// <summary>Writes a C-ordered uint8 array of the given shape.</summary>
    public static void WriteUInt8(string path, ReadOnlySpan<byte> data, params int[] shape) =>
        Write(path, "|u1", data, shape);

    /// <summary>Writes a C-ordered little-endian float32 array of the given shape.</summary>
    public static void WriteFloat32(string path, ReadOnlySpan<float> data, params int[] shape) =>
        Write(path, "<f4", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data), shape);

    /// <summary>Writes a C-ordered little-endian int32 array of the given shape.</summary>
    public static void WriteInt32(string path, ReadOnlySpan<int> data, params int[] shape) =>
        Write(path, "<i4", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data), shape);

    private static void Write(string path, string descr, ReadOnlySpan<byte> payload, int[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        int itemSize = descr == "|u1" ? 1 : 4;
        if (count * itemSize != payload.Length)
            throw new ArgumentException($"Shape ({string.Join(",", shape)}) does not match {payload.Length} bytes of data.");
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shapeText}, }}";
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        var buffer = new byte[10 + header.Length + payload.Length];
        buffer[0] = 0x93;
        Encoding.ASCII.GetBytes("NUMPY").CopyTo(buffer, 1);
        buffer[6] = 1;
        buffer[7] = 0;
        BitConverter.TryWriteBytes(buffer.AsSpan(8, 2), (ushort)header.Length);
        Encoding.ASCII.GetBytes(header).CopyTo(buffer, 10);
        payload.CopyTo(buffer.AsSpan(10 + header.Length));
        AtomicFile.WriteAllBytes(path, buffer);
    }
}
