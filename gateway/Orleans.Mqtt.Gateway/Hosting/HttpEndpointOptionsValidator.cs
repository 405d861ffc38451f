using Microsoft.Extensions.Options;
using Orleans.Mqtt.Hosting;

namespace Orleans.Mqtt.Gateway;

/// <summary>Fails at startup on an <c>Http:Port</c> that cannot be a port, or an <c>Http:ApiKeysFile</c> that cannot be read or parsed.</summary>
public sealed class HttpEndpointOptionsValidator : IValidateOptions<HttpEndpointOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, HttpEndpointOptions options)
    {
        if (ListenerSettings.PortError(ListenerSettings.HttpPort, options.Port) is { } error)
        {
            return ValidateOptionsResult.Fail(error);
        }

        return ApiKeysFileError(options.ApiKeysFile) is { } keysError ? ValidateOptionsResult.Fail(keysError) : ValidateOptionsResult.Success;
    }

    private static string? ApiKeysFileError(string? path)
    {
        if (string.IsNullOrWhiteSpace(path))
        {
            return null;
        }

        try
        {
            ApiKeySet.Parse(File.ReadAllText(path));
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return $"Http:ApiKeysFile '{path}' cannot be read: {ex.Message}";
        }
        catch (FormatException ex)
        {
            return $"Http:ApiKeysFile '{path}' is not a key file: {ex.Message}";
        }
    }
}
