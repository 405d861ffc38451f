using Microsoft.Extensions.Options;
using Orleans.Mqtt.Topics;

namespace Orleans.Mqtt.Telemetry;

/// <summary>Rejects tracing options that cannot work, naming the setting.</summary>
public sealed class TracingOptionsValidator : IValidateOptions<TracingOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, TracingOptions options)
    {
        var errors = new List<string>();
        if (double.IsNaN(options.SamplingRatio) || options.SamplingRatio is < 0 or > 1)
        {
            errors.Add($"Tracing:SamplingRatio must be between 0 and 1 (was {options.SamplingRatio}).");
        }

        for (var i = 0; i < options.AlwaysSampleClientIds.Count; i++)
        {
            if (string.IsNullOrEmpty(options.AlwaysSampleClientIds[i]))
            {
                errors.Add($"Tracing:AlwaysSampleClientIds:{i} is empty.");
            }
        }

        for (var i = 0; i < options.AlwaysSampleTopicFilters.Count; i++)
        {
            var filter = options.AlwaysSampleTopicFilters[i];
            if (string.IsNullOrEmpty(filter) || !MqttTopic.IsValidTopicFilter(filter))
            {
                errors.Add($"Tracing:AlwaysSampleTopicFilters:{i} is not a valid topic filter (was '{filter}').");
            }
        }

        if (!Enum.IsDefined(options.Propagation))
        {
            errors.Add($"Tracing:Propagation must be Replace, PassThrough or Off (was {options.Propagation}).");
        }

        if (!string.IsNullOrEmpty(options.OtlpEndpoint)
            && (!Uri.TryCreate(options.OtlpEndpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)))
        {
            errors.Add($"Tracing:OtlpEndpoint must be an http or https URL (was '{options.OtlpEndpoint}').");
        }

        if (!string.IsNullOrEmpty(options.FilePath) && Path.GetDirectoryName(Path.GetFullPath(options.FilePath)) is { } directory && !Directory.Exists(directory))
        {
            errors.Add($"Tracing:FilePath names a directory that does not exist (was '{options.FilePath}').");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
