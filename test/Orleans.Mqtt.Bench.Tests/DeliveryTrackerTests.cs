using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class DeliveryTrackerTests
{
    [Fact]
    public void InOrderDeliveryHasNoLossDuplicatesOrReorder()
    {
        var tracker = new DeliveryTracker();
        for (var sequence = 0L; sequence < 1000; sequence++)
        {
            Assert.Equal(DeliveryOutcome.InOrder, tracker.Record(sequence));
        }

        Assert.Equal(1000, tracker.Unique);
        Assert.Equal(1000, tracker.Delivered);
        Assert.Equal(0, tracker.Duplicates);
        Assert.Equal(0, tracker.OutOfOrder);
        Assert.Equal(0, tracker.Lost(published: 1000));
        Assert.Equal(0, tracker.Gaps);
    }

    [Fact]
    public void DeliberateLossIsCountedAgainstPublished()
    {
        var tracker = new DeliveryTracker();
        for (var sequence = 0L; sequence < 100; sequence++)
        {
            // Drop every tenth message and the last two.
            if (sequence % 10 != 3 && sequence < 98)
            {
                tracker.Record(sequence);
            }
        }

        Assert.Equal(100 - 10 - 2, tracker.Unique);
        Assert.Equal(12, tracker.Lost(published: 100));
        Assert.Equal(10, tracker.Gaps);
        Assert.Equal(0, tracker.Duplicates);
        Assert.Equal(0, tracker.OutOfOrder);
    }

    [Fact]
    public void DeliberateDuplicateIsCountedOnceAndNotAsDelivered()
    {
        var tracker = new DeliveryTracker();
        tracker.Record(0);
        tracker.Record(1);
        Assert.Equal(DeliveryOutcome.Duplicate, tracker.Record(1));
        Assert.Equal(DeliveryOutcome.Duplicate, tracker.Record(0));
        tracker.Record(2);

        Assert.Equal(3, tracker.Unique);
        Assert.Equal(2, tracker.Duplicates);
        Assert.Equal(5, tracker.Delivered);
        Assert.Equal(0, tracker.OutOfOrder);
        Assert.Equal(0, tracker.Lost(published: 3));
    }

    [Fact]
    public void DeliberateReorderIsOutOfOrderButNotLost()
    {
        var tracker = new DeliveryTracker();
        tracker.Record(0);
        tracker.Record(2);
        Assert.Equal(DeliveryOutcome.OutOfOrder, tracker.Record(1));
        tracker.Record(5);
        tracker.Record(3);
        tracker.Record(4);

        Assert.Equal(6, tracker.Unique);
        Assert.Equal(3, tracker.OutOfOrder);
        Assert.Equal(0, tracker.Duplicates);
        Assert.Equal(0, tracker.Lost(published: 6));
        Assert.Equal(5, tracker.Highest);
    }

    [Fact]
    public void LossDuplicateAndReorderTogether()
    {
        // Published 0..9; 4 and 8 lost, 6 delivered twice, 3 overtaken by 5.
        var tracker = new DeliveryTracker();
        long[] arrivals = [0, 1, 2, 5, 3, 6, 6, 7, 9];
        foreach (var sequence in arrivals)
        {
            tracker.Record(sequence);
        }

        Assert.Equal(8, tracker.Unique);
        Assert.Equal(1, tracker.Duplicates);
        Assert.Equal(1, tracker.OutOfOrder);
        Assert.Equal(2, tracker.Lost(published: 10));
    }

    [Fact]
    public void LostIsNeverNegative()
    {
        // A publish whose acknowledgement failed may still have been delivered.
        var tracker = new DeliveryTracker();
        tracker.Record(0);
        tracker.Record(1);
        Assert.Equal(0, tracker.Lost(published: 1));
    }

    [Fact]
    public void SequencesFarBeyondTheInitialBitmapAreTracked()
    {
        var tracker = new DeliveryTracker();
        tracker.Record(1_000_000);
        Assert.Equal(DeliveryOutcome.Duplicate, tracker.Record(1_000_000));
        Assert.Equal(DeliveryOutcome.OutOfOrder, tracker.Record(999_999));
        Assert.Equal(2, tracker.Unique);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(DeliveryTracker.MaxSequence + 1)]
    [InlineData(long.MaxValue)]
    public void UntrackableSequencesAreInvalid(long sequence)
    {
        var tracker = new DeliveryTracker();
        Assert.Equal(DeliveryOutcome.Invalid, tracker.Record(sequence));
        Assert.Equal(1, tracker.Invalid);
        Assert.Equal(0, tracker.Unique);
    }

    [Fact]
    public void DuplicatesAreRecognisedWithinTheWindowAndLateArrivalsBeyondIt()
    {
        var tracker = new DeliveryTracker();
        for (var sequence = 0L; sequence < 3 * DeliveryTracker.Window; sequence++)
        {
            if (sequence != 5)
            {
                tracker.Record(sequence);
            }
        }

        var highest = tracker.Highest;
        Assert.Equal(DeliveryOutcome.Duplicate, tracker.Record(highest - DeliveryTracker.Window + 100));
        Assert.Equal(DeliveryOutcome.OutOfOrder, tracker.Record(5));
        Assert.Equal(1, tracker.Late);
        Assert.Equal(0, tracker.Lost(published: 3 * DeliveryTracker.Window));
        Assert.Equal(1, tracker.Duplicates);
    }

    [Fact]
    public void GapsSinceLowestIgnoresWhatCameBeforeTheFirstDelivery()
    {
        var tracker = new DeliveryTracker();
        tracker.Record(500);
        tracker.Record(502);

        Assert.Equal(500, tracker.Lowest);
        Assert.Equal(1, tracker.GapsSinceLowest);
    }
}
