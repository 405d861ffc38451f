namespace Orleans.Mqtt.Gateway;

/// <summary>The HTTP endpoint for health, metrics and administration (configuration section <c>Http</c>).</summary>
public sealed class HttpEndpointOptions
{
    /// <summary>The configuration section the options bind to.</summary>
    public const string SectionName = "Http";

    /// <summary>Port of <c>/health/live</c>, <c>/health/ready</c> and <c>/metrics</c> (<c>Http:Port</c>, 0 disables).</summary>
    public int Port { get; set; } = 8080;

    /// <summary>
    /// The admin API's key file (<c>Http:ApiKeysFile</c>): lines <c>name:sha256-hex</c>, written by
    /// <c>./run.sh api-key add</c>, read again when it changes. Empty: no keys, and only loopback callers may use the
    /// admin API under <c>/api/v1</c>.
    /// </summary>
    public string? ApiKeysFile { get; set; }
}
