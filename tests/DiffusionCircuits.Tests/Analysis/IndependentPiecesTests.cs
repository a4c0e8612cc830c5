namespace DiffusionCircuits.Tests.Analysis;

public class IndependentPiecesTests
{
    [Fact]
    public void Results_come_back_in_input_order_whatever_thread_finished_first()
    {
        // Early pieces take longest, so on more than one thread they finish last.
        var results = IndependentPieces.Map(16, i =>
        {
            Thread.Sleep(2 * (16 - i));
            return i;
        });
        Assert.Equal(Enumerable.Range(0, 16), results);
    }

    [Fact]
    public void A_failing_piece_comes_back_as_itself_not_wrapped()
    {
        var e = Assert.Throws<InvalidDataException>(() => IndependentPieces.Map(8, i => i == 5 ? throw new InvalidDataException("piece 5") : i));
        Assert.Equal("piece 5", e.Message);
    }
}
