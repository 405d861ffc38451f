using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;

namespace Orleans.Mqtt.Gateway;

/// <summary>Fails at startup on an <c>Http:Port</c> that cannot be a port.</summary>
public sealed class HttpEndpointOptionsValidator : IValidateOptions<HttpEndpointOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, HttpEndpointOptions options) =>
        ListenerSettings.PortError(ListenerSettings.HttpPort, options.Port) is { } error ? ValidateOptionsResult.Fail(error) : ValidateOptionsResult.Success;
}
