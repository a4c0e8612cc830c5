using DiffusionCircuits.Data;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace DiffusionCircuits.Transforms;

/// <summary>
/// Clean images x0 as an IDataView, streamed from a re-enumerable source: columns <c>Id</c> (text), <c>Image</c>
/// (float [3, H, W] in [0, 1]), <c>PartMask</c> (byte [H, W], part index per pixel; zeros when unknown) and
/// <c>HasPartMask</c> (bool). Each cursor enumerates the source afresh, so nothing is held in memory.
/// </summary>
public sealed class FaceImageDataView : IDataView
{
    /// <summary>The image id (text).</summary>
    public const string IdColumn = "Id";
    /// <summary>The clean image x0 in [0, 1], float [3, H, W].</summary>
    public const string ImageColumn = "Image";
    /// <summary>Facial part index per pixel, byte [H, W].</summary>
    public const string PartMaskColumn = "PartMask";
    /// <summary>Whether the part mask is known (bool).</summary>
    public const string HasPartMaskColumn = "HasPartMask";

    private readonly Func<IEnumerable<FaceImage>> _source;
    private readonly long? _count;

    /// <summary>A view over the faces <paramref name="source"/> yields (called again for each cursor), all of side <paramref name="size"/>; <paramref name="count"/> when known.</summary>
    public FaceImageDataView(Func<IEnumerable<FaceImage>> source, int size, long? count = null)
    {
        _source = source;
        _count = count;
        Size = size;
        var b = new DataViewSchema.Builder();
        b.AddColumn(IdColumn, TextDataViewType.Instance);
        b.AddColumn(ImageColumn, new VectorDataViewType(NumberDataViewType.Single, 3, size, size));
        b.AddColumn(PartMaskColumn, new VectorDataViewType(NumberDataViewType.Byte, size, size));
        b.AddColumn(HasPartMaskColumn, BooleanDataViewType.Instance);
        Schema = b.ToSchema();
    }

    /// <summary>Image side in pixels.</summary>
    public int Size { get; }
    /// <inheritdoc/>
    public bool CanShuffle => false;
    /// <inheritdoc/>
    public DataViewSchema Schema { get; }
    /// <inheritdoc/>
    public long? GetRowCount() => _count;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, _source().GetEnumerator(), columnsNeeded.Select(c => c.Index).ToHashSet());

    /// <inheritdoc/>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly FaceImageDataView _view;
        private readonly IEnumerator<FaceImage> _images;
        private readonly HashSet<int> _active;
        private long _position = -1;

        public Cursor(FaceImageDataView view, IEnumerator<FaceImage> images, HashSet<int> active) => (_view, _images, _active) = (view, images, active);

        public override DataViewSchema Schema => _view.Schema;
        public override long Position => _position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override bool MoveNext()
        {
            if (!_images.MoveNext()) return false;
            var image = _images.Current;
            if (image.Width != _view.Size || image.Height != _view.Size || image.RgbPlanes.Length != 3 * _view.Size * _view.Size)
                throw new InvalidDataException($"Image '{image.Id}' is {image.Width}x{image.Height}; this data view holds {_view.Size}x{_view.Size} RGB images.");
            _position++;
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            Delegate getter = column.Name switch
            {
                IdColumn => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = _images.Current.Id.AsMemory()),
                ImageColumn => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => Buffers.CopyTo<float>(_images.Current.RgbPlanes, ref v)),
                PartMaskColumn => (ValueGetter<VBuffer<byte>>)((ref VBuffer<byte> v) =>
                    Buffers.CopyTo<byte>(_images.Current.PartMask ?? new byte[_view.Size * _view.Size], ref v)),
                HasPartMaskColumn => (ValueGetter<bool>)((ref bool v) => v = _images.Current.PartMask != null),
                _ => throw new ArgumentOutOfRangeException(nameof(column), column.Name, "Unknown column."),
            };
            return (ValueGetter<TValue>)getter;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _images.Dispose();
            base.Dispose(disposing);
        }
    }
}
