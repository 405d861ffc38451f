namespace Orleans.Mqtt.Clustering;

/// <summary>The JSON document of one membership row, as <see cref="MembershipEntryCodec"/> writes it.</summary>
internal sealed record MembershipRow(
    string SiloAddress,
    string Status,
    List<SuspectVote>? SuspectTimes,
    int ProxyPort,
    string HostName,
    string SiloName,
    string? RoleName,
    int UpdateZone,
    int FaultZone,
    DateTime StartTime,
    DateTime IAmAliveTime);
