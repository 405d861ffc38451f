using System.Diagnostics;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Telemetry;

/// <summary>
/// Decides whether an operation that starts at the broker is traced: always when the publisher's
/// <c>traceparent</c> says its trace is sampled, when the client id or (for a publish or subscribe) a topic is on
/// the always lists, otherwise with probability <see cref="TracingOptions.SamplingRatio"/>.
/// </summary>
public sealed class TraceSampler
{
    private readonly HashSet<string> _clientIds;
    private readonly string[] _topicFilters;
    private readonly double _ratio;
    private readonly Func<double> _random;

    /// <summary>Creates the sampler of <paramref name="options"/>; <paramref name="random"/> draws from [0, 1).</summary>
    public TraceSampler(TracingOptions options, Func<double>? random = null)
    {
        _clientIds = new HashSet<string>(options.AlwaysSampleClientIds, StringComparer.Ordinal);
        _topicFilters = [.. options.AlwaysSampleTopicFilters];
        _ratio = options.SamplingRatio;
        _random = random ?? Random.Shared.NextDouble;
    }

    /// <summary>Whether an operation of <paramref name="clientId"/> on <paramref name="topic"/> (a topic name or filter, or null) is traced.</summary>
    public bool ShouldSample(string? clientId, string? topic, ActivityContext incoming = default)
    {
        if ((incoming.TraceFlags & ActivityTraceFlags.Recorded) != 0)
        {
            return true;
        }

        if (clientId is not null && _clientIds.Contains(clientId))
        {
            return true;
        }

        if (topic is not null && MatchesAlwaysFilter(topic))
        {
            return true;
        }

        return _ratio >= 1 || (_ratio > 0 && _random() < _ratio);
    }

    /// <summary>Whether <paramref name="topic"/> is one of the always-sampled filters or a topic they match.</summary>
    public bool MatchesAlwaysFilter(string topic)
    {
        foreach (var filter in _topicFilters)
        {
            if (string.Equals(filter, topic, StringComparison.Ordinal) || MqttTopic.Matches(filter, topic))
            {
                return true;
            }
        }

        return false;
    }
}
