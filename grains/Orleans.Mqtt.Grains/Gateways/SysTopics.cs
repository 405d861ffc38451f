using System.Globalization;
using System.Reflection;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Grains;

/// <summary>
/// The <c>$SYS/broker/…</c> topics (mosquitto's names) and their values for the cluster's figures: version, uptime,
/// connected clients, sessions, subscriptions, retained messages, messages and bytes for the whole cluster, and per
/// node <c>$SYS/broker/gateways/&lt;gateway id&gt;/…</c> and <c>$SYS/broker/silos/&lt;silo name&gt;/…</c> (for ids
/// that are one valid topic level).
/// </summary>
internal static class SysTopics
{
    /// <summary>The broker's version as the <c>$SYS/broker/version</c> topic gives it.</summary>
    public static string Version { get; } =
        "Orleans.Mqtt " + (typeof(SysTopics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown");

    /// <summary>Every topic with its value, cluster-wide topics first.</summary>
    public static List<(string Topic, string Value)> For(ClusterStats stats)
    {
        var t = stats.Totals;
        var uptime = stats.UpSinceUtc is { } since ? Math.Max(0, (long)(stats.AtUtc - since).TotalSeconds) : 0;
        var values = new List<(string Topic, string Value)>
        {
            ("$SYS/broker/version", Version),
            ("$SYS/broker/uptime", $"{Number(uptime)} seconds"),
            ("$SYS/broker/clients/connected", Number(t.ConnectedClients)),
            ("$SYS/broker/sessions", Number(t.Sessions)),
            ("$SYS/broker/subscriptions/count", Number(t.Subscriptions)),
            ("$SYS/broker/retained messages/count", Number(t.Retained)),
            ("$SYS/broker/messages/received", Number(t.Traffic.MessagesReceived)),
            ("$SYS/broker/messages/sent", Number(t.Traffic.MessagesSent)),
            ("$SYS/broker/messages/dropped", Number(t.Traffic.MessagesDropped)),
            ("$SYS/broker/bytes/received", Number(t.Traffic.BytesReceived)),
            ("$SYS/broker/bytes/sent", Number(t.Traffic.BytesSent)),
            ("$SYS/broker/gateways/count", Number(t.Gateways)),
            ("$SYS/broker/silos/count", Number(t.Silos)),
        };

        foreach (var g in stats.Gateways)
        {
            if (IsOneLevel(g.GatewayId))
            {
                var prefix = "$SYS/broker/gateways/" + g.GatewayId;
                values.Add((prefix + "/clients/connected", Number(g.ConnectedClients)));
                values.Add((prefix + "/messages/received", Number(g.Traffic.MessagesReceived)));
                values.Add((prefix + "/messages/sent", Number(g.Traffic.MessagesSent)));
            }
        }

        foreach (var s in stats.Silos)
        {
            if (IsOneLevel(s.Silo))
            {
                var prefix = "$SYS/broker/silos/" + s.Silo;
                values.Add((prefix + "/sessions", Number(s.Sessions)));
                values.Add((prefix + "/subscriptions/count", Number(s.Subscriptions)));
            }
        }

        return values;
    }

    // A gateway id or silo name is used as a topic level only when it is one: no separator, no wildcard, and not "count".
    private static bool IsOneLevel(string name) =>
        name.Length > 0 && name != "count" && name.AsSpan().IndexOfAny("/+#\0") < 0 && MqttTopic.IsValidTopicName("$SYS/" + name);

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
