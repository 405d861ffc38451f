using System.Text.Json;

namespace Orleans.Mqtt.Clustering;

/// <summary>
/// Turns a <see cref="MembershipEntry"/> into the JSON document stored as one membership row and back. The document
/// is a shape of our own (not Orleans' binary serializer), so a row can be read with etcdctl or the Consul UI and
/// survives an Orleans upgrade that changes its serializer.
/// </summary>
internal static class MembershipEntryCodec
{
    public static byte[] Serialize(MembershipEntry entry)
    {
        List<SuspectVote>? votes = null;
        if (entry.SuspectTimes is { } suspectTimes)
        {
            votes = new List<SuspectVote>(suspectTimes.Count);
            foreach (var (silo, time) in suspectTimes)
            {
                votes.Add(new SuspectVote(silo.ToParsableString(), ToUtc(time)));
            }
        }

        var row = new MembershipRow(
            entry.SiloAddress.ToParsableString(),
            entry.Status.ToString(),
            votes,
            entry.ProxyPort,
            entry.HostName,
            entry.SiloName,
            entry.RoleName,
            entry.UpdateZone,
            entry.FaultZone,
            ToUtc(entry.StartTime),
            ToUtc(entry.IAmAliveTime));
        return JsonSerializer.SerializeToUtf8Bytes(row, MembershipJsonContext.Default.MembershipRow);
    }

    public static MembershipEntry Deserialize(ReadOnlySpan<byte> json)
    {
        var row = JsonSerializer.Deserialize(json, MembershipJsonContext.Default.MembershipRow)
            ?? throw new InvalidDataException("A membership row holds JSON null.");
        List<Tuple<SiloAddress, DateTime>>? suspectTimes = null;
        if (row.SuspectTimes is { } votes)
        {
            suspectTimes = new List<Tuple<SiloAddress, DateTime>>(votes.Count);
            foreach (var vote in votes)
            {
                suspectTimes.Add(Tuple.Create(SiloAddress.FromParsableString(vote.Silo), vote.Time));
            }
        }

        return new MembershipEntry
        {
            SiloAddress = SiloAddress.FromParsableString(row.SiloAddress),
            Status = Enum.Parse<SiloStatus>(row.Status),
            SuspectTimes = suspectTimes,
            ProxyPort = row.ProxyPort,
            HostName = row.HostName,
            SiloName = row.SiloName,
            RoleName = row.RoleName,
            UpdateZone = row.UpdateZone,
            FaultZone = row.FaultZone,
            StartTime = row.StartTime,
            IAmAliveTime = row.IAmAliveTime,
        };
    }

    /// <summary>The key segment that names a silo's row: unique per silo incarnation (address and generation).</summary>
    public static string RowName(SiloAddress silo) => silo.ToParsableString();

    // Orleans fills these fields from DateTime.UtcNow; an unspecified kind is taken as UTC rather than shifted.
    private static DateTime ToUtc(DateTime time) => time.Kind switch
    {
        DateTimeKind.Local => time.ToUniversalTime(),
        DateTimeKind.Unspecified => DateTime.SpecifyKind(time, DateTimeKind.Utc),
        _ => time,
    };
}
