namespace Orleans.Mqtt.Gateway;

/// <summary>The HTTP endpoint for health, metrics and administration (configuration section <c>Http</c>).</summary>
public sealed class HttpEndpointOptions
{
    /// <summary>The configuration section the options bind to.</summary>
    public const string SectionName = "Http";

    /// <summary>Port of <c>/health/live</c>, <c>/health/ready</c> and <c>/metrics</c> (<c>Http:Port</c>, 0 disables).</summary>
    public int Port { get; set; } = 8080;
}
