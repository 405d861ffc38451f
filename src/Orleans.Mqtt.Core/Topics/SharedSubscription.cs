namespace Orleans.Mqtt.Topics;

/// <summary>MQTT 5 shared subscriptions: <c>$share/{ShareName}/{filter}</c> (also accepted from MQTT 3.1.1 clients).</summary>
public static class SharedSubscription
{
    /// <summary>The prefix that marks a shared subscription.</summary>
    public const string Prefix = "$share/";

    /// <summary>Whether <paramref name="filter"/> names a shared subscription (valid or not).</summary>
    public static bool IsShared(ReadOnlySpan<char> filter) => filter.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>
    /// Splits a shared subscription into its share name and topic filter. False when the share name is empty or
    /// holds '/', '+' or '#', or when the topic filter is not valid [MQTT-4.8.2-1, MQTT-4.8.2-2].
    /// </summary>
    public static bool TryParse(string filter, out string shareName, out string topicFilter)
    {
        shareName = string.Empty;
        topicFilter = string.Empty;
        if (!IsShared(filter))
        {
            return false;
        }

        var rest = filter.AsSpan(Prefix.Length);
        var slash = rest.IndexOf('/');
        if (slash <= 0)
        {
            return false;
        }

        var name = rest[..slash];
        var topic = rest[(slash + 1)..];
        if (name.IndexOfAny('+', '#') >= 0 || !MqttTopic.IsValidTopicFilter(topic))
        {
            return false;
        }

        shareName = name.ToString();
        topicFilter = topic.ToString();
        return true;
    }
}
