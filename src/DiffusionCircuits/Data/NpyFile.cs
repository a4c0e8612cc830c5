using System.Text;

namespace DiffusionCircuits.Data;

/// <summary>Writes NumPy .npy files (format 1.0), so images and features can be read with numpy.load, and reads float arrays back.</summary>
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

    /// <summary>
    /// Reads a C-ordered float array (little-endian float32, float64 or float16; .npy format 1.0 to 3.0) as float32 with
    /// its shape. A file of another kind is refused with a message naming the file and what it holds.
    /// </summary>
    public static (float[] Data, int[] Shape) ReadFloat32(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Array file '{path}' does not exist.", path);
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"'{path}' is not a NumPy .npy file (no \\x93NUMPY header).");
        int major = bytes[6];
        int headerLength = major == 1 ? BitConverter.ToUInt16(bytes, 8) : BitConverter.ToInt32(bytes, 8);
        int start = major == 1 ? 10 : 12;
        if (major is < 1 or > 3 || start + headerLength > bytes.Length) throw new InvalidDataException($"'{path}' has an unreadable .npy header (format version {major}).");
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(bytes, start, headerLength);
        string Field(string key) =>
            System.Text.RegularExpressions.Regex.Match(header, $@"'{key}'\s*:\s*('[^']*'|\([^)]*\)|True|False)") is { Success: true } m
                ? m.Groups[1].Value : throw new InvalidDataException($"'{path}': the .npy header has no '{key}' ({header.Trim()}).");
        string descr = Field("descr").Trim('\'');
        if (Field("fortran_order") == "True") throw new InvalidDataException($"'{path}' is stored in Fortran order; save it C-ordered (numpy.ascontiguousarray).");
        var shape = Field("shape").Trim('(', ')').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        int itemSize = descr switch { "<f4" => 4, "<f8" => 8, "<f2" => 2, _ => 0 };
        if (itemSize == 0) throw new InvalidDataException($"'{path}' holds '{descr}' values; expected float32, float64 or float16 (little-endian).");
        var payload = bytes.AsSpan(start + headerLength);
        if (payload.Length != count * itemSize)
            throw new InvalidDataException($"'{path}' is truncated: shape ({string.Join(", ", shape)}) needs {count * itemSize} bytes of data, the file has {payload.Length}.");
        var data = new float[count];
        for (int i = 0; i < data.Length; i++)
            data[i] = itemSize switch
            {
                4 => BitConverter.ToSingle(payload.Slice(4 * i, 4)),
                8 => (float)BitConverter.ToDouble(payload.Slice(8 * i, 8)),
                _ => (float)BitConverter.ToHalf(payload.Slice(2 * i, 2)),
            };
        return (data, shape);
    }
}
