using Xunit;

namespace Orleans.Mqtt.Bench.Tests;

public sealed class DeliveryTotalsTests
{
    [Fact]
    public void FanoutCountsLossAndDuplicatesPerSubscriber()
    {
        // One publisher, 100 messages accepted, three subscribers: the first gets everything, the second
        // misses five, the third gets everything and two of them twice.
        var subscribers = new[] { new TrackerSet(shared: false), new TrackerSet(shared: false), new TrackerSet(shared: false) };
        for (var sequence = 0L; sequence < 100; sequence++)
        {
            subscribers[0].Record(0, sequence);
            if (sequence is < 10 or >= 15)
            {
                subscribers[1].Record(0, sequence);
            }

            subscribers[2].Record(0, sequence);
        }

        subscribers[2].Record(0, 7);
        subscribers[2].Record(0, 99);

        var totals = MessageScenario.Count("fanout", subscribers, [100]);

        Assert.Equal(5, totals.Lost);
        Assert.Equal(2, totals.Duplicates);
        Assert.Equal(295, totals.Unique);
        Assert.Equal(0, totals.OutOfOrder);
        Assert.Equal((2, 5L), MessageScenario.Worst("fanout", subscribers, [100]));
    }

    [Fact]
    public void FanoutCountsASubscriberThatGotNothingAsLosingEverything()
    {
        var subscribers = new[] { new TrackerSet(shared: false), new TrackerSet(shared: false) };
        subscribers[0].Record(0, 0);
        subscribers[0].Record(1, 0);

        var totals = MessageScenario.Count("fanout", subscribers, [1, 1]);

        Assert.Equal(2, totals.Lost);
    }

    [Fact]
    public void FaninCountsLossAndDuplicatesOverTheGroup()
    {
        // Two publishers, 50 messages each, spread over three members of one shared subscription.
        // Publisher 1's messages 10..12 never arrive; publisher 0's message 20 reaches two members.
        var group = new TrackerSet(shared: true);
        var members = new[] { group, group, group };
        var member = 0;
        for (var sequence = 0L; sequence < 50; sequence++)
        {
            members[member++ % 3].Record(0, sequence);
            if (sequence is < 10 or > 12)
            {
                members[member++ % 3].Record(1, sequence);
            }
        }

        members[1].Record(0, 20);

        var totals = MessageScenario.Count("fanin", members, [50, 50]);

        Assert.Equal(3, totals.Lost);
        Assert.Equal(1, totals.Duplicates);
        Assert.Equal(97, totals.Unique);
    }

    [Fact]
    public void FaninRecordsFromSeveralThreadsWithoutLosingCounts()
    {
        var group = new TrackerSet(shared: true);
        Parallel.For(0, 4, member =>
        {
            for (var sequence = member; sequence < 40_000; sequence += 4)
            {
                group.Record(sequence % 3, sequence);
            }
        });

        var totals = MessageScenario.Count("fanin", [group], [13_334, 13_333, 13_333]);

        Assert.Equal(0, totals.Lost);
        Assert.Equal(0, totals.Duplicates);
        Assert.Equal(40_000, totals.Unique);
    }

    [Fact]
    public void PairsCountOnlyTheirOwnPublisher()
    {
        var subscribers = new[] { new TrackerSet(shared: false), new TrackerSet(shared: false) };
        subscribers[0].Record(0, 0);
        subscribers[0].Record(0, 1);
        subscribers[1].Record(1, 0);

        var totals = MessageScenario.Count("p2p", subscribers, [2, 3]);

        Assert.Equal(2, totals.Lost);
        Assert.Equal(3, totals.Unique);
        Assert.Equal((1, 2L), MessageScenario.Worst("p2p", subscribers, [2, 3]));
    }

    [Fact]
    public void SubCountsGapsFromWhereItJoined()
    {
        // A subscriber that joined at sequence 1000 of a publisher that runs elsewhere: only the holes count.
        var subscriber = new TrackerSet(shared: false);
        for (var sequence = 1000L; sequence < 1100; sequence++)
        {
            if (sequence != 1050)
            {
                subscriber.Record(3, sequence);
            }
        }

        var totals = MessageScenario.Count("sub", [subscriber], []);

        Assert.Equal(1, totals.Lost);
        Assert.Equal(99, totals.Unique);
    }
}
