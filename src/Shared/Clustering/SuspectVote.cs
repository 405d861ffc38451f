namespace Orleans.Mqtt.Clustering;

/// <summary>One silo's suspicion of another, as stored in a <see cref="MembershipRow"/>.</summary>
internal sealed record SuspectVote(string Silo, DateTime Time);
