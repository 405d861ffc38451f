namespace Orleans.Mqtt.Bench;

/// <summary>Loss, duplicates and order over the trackers of one or more subscribers.</summary>
/// <param name="Unique">Distinct messages delivered.</param>
/// <param name="Lost">Messages accepted from a publisher and never delivered (or, without publish counts, gaps in the sequence).</param>
/// <param name="Duplicates">Deliveries of a message delivered before.</param>
/// <param name="OutOfOrder">First deliveries below a higher sequence number already delivered.</param>
/// <param name="Late">Out-of-order deliveries too far behind to tell from duplicates.</param>
internal readonly record struct DeliveryTotals(long Unique, long Lost, long Duplicates, long OutOfOrder, long Late)
{
    /// <summary>Sums two totals.</summary>
    public static DeliveryTotals operator +(DeliveryTotals a, DeliveryTotals b) =>
        new(a.Unique + b.Unique, a.Lost + b.Lost, a.Duplicates + b.Duplicates, a.OutOfOrder + b.OutOfOrder, a.Late + b.Late);

    /// <summary>
    /// Totals of one subscriber's (or one shared group's) trackers. With <paramref name="published"/> (messages
    /// accepted per publisher index) loss is counted against it, for every publisher or only for
    /// <paramref name="onlyPublisher"/>; without it loss is the gaps between the lowest and highest sequence
    /// number delivered from each publisher.
    /// </summary>
    public static DeliveryTotals Of(TrackerSet trackers, IReadOnlyList<long>? published, int onlyPublisher = -1)
    {
        var totals = default(DeliveryTotals);
        foreach (var (publisher, tracker) in trackers.All)
        {
            if (onlyPublisher >= 0 && publisher != onlyPublisher)
            {
                continue;
            }

            totals += new DeliveryTotals(tracker.Unique, 0, tracker.Duplicates, tracker.OutOfOrder, tracker.Late);
            if (published is null)
            {
                totals += new DeliveryTotals(0, tracker.GapsSinceLowest, 0, 0, 0);
            }
        }

        if (published is not null)
        {
            for (var publisher = 0; publisher < published.Count; publisher++)
            {
                if (onlyPublisher < 0 || publisher == onlyPublisher)
                {
                    var lost = trackers[publisher]?.Lost(published[publisher]) ?? published[publisher];
                    totals += new DeliveryTotals(0, lost, 0, 0, 0);
                }
            }
        }

        return totals;
    }
}
