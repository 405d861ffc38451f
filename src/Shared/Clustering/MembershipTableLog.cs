using Microsoft.Extensions.Logging;

namespace Orleans.Mqtt.Clustering;

/// <summary>The log messages of the membership tables, shared by the etcd and Consul ones (<c>provider</c> names which).</summary>
internal static partial class MembershipTableLog
{
    [LoggerMessage(1, LogLevel.Debug, "{Provider} membership table at {Folder} initialized (version key created: {Created})")]
    public static partial void Initialized(ILogger logger, string provider, string folder, bool created);

    [LoggerMessage(2, LogLevel.Debug, "{Provider} membership {Operation} of silo {Silo} at table version {Version} lost a race: the version or the row changed")]
    public static partial void WriteConflict(ILogger logger, string provider, string operation, SiloAddress silo, int version);

    [LoggerMessage(3, LogLevel.Debug, "I-am-alive update of silo {Silo} raced another write (attempt {Attempt})")]
    public static partial void IAmAliveConflict(ILogger logger, SiloAddress silo, int attempt);

    [LoggerMessage(4, LogLevel.Warning, "{Provider} membership write refused: the {Kind} etag '{Etag}' is not one this table handed out")]
    public static partial void BadEtag(ILogger logger, string provider, string kind, string? etag);

    [LoggerMessage(5, LogLevel.Information, "Removed {Count} defunct silo rows from {Folder} (not active, untouched since {BeforeDate})")]
    public static partial void CleanedUp(ILogger logger, int count, string folder, DateTimeOffset beforeDate);
}
