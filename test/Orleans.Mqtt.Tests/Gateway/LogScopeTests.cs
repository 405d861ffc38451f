using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Mqtt.Gateway;
using Xunit;

namespace Orleans.Mqtt.Tests.Gateway;

/// <summary>
/// <c>Mqtt:LogScopes</c>: off by default, so the scope Kestrel opens around every connection is not made and not kept
/// alive with the connection; on, scopes reach a provider that takes them.
/// </summary>
public sealed class LogScopeTests
{
    // The category whose logger Kestrel opens its connection scope on.
    private const string KestrelCategory = "Microsoft.AspNetCore.Server.Kestrel";

    [Fact]
    public void A_gateway_keeps_no_log_scopes_by_default()
    {
        var scopes = ScopesSeen(logScopes: null);
        Assert.Empty(scopes);
    }

    [Fact]
    public void Mqtt_LogScopes_keeps_them()
    {
        var scopes = ScopesSeen(logScopes: "true");
        Assert.Equal(["connection 1"], scopes);
    }

    private static List<string> ScopesSeen(string? logScopes)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test" });
        if (logScopes is not null)
        {
            builder.Configuration.AddInMemoryCollection([new("Mqtt:LogScopes", logScopes)]);
        }

        var provider = new ScopeRecorder();
        builder.Logging.ClearProviders().AddProvider(provider);
        // A cluster client that is never started: the gateway's services need its grain factory.
        builder.UseOrleansClient(client => client.UseLocalhostClustering());
        builder.AddMqttGateway();
        using var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(KestrelCategory);
        using (logger.BeginScope("connection 1"))
        {
            return provider.Current();
        }
    }

    /// <summary>A provider that takes scopes from the factory, as the console provider does.</summary>
    private sealed class ScopeRecorder : ILoggerProvider, ISupportExternalScope
    {
        private IExternalScopeProvider? _scopes;

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public List<string> Current()
        {
            var seen = new List<string>();
            _scopes?.ForEachScope((scope, list) => list.Add(scope?.ToString() ?? string.Empty), seen);
            return seen;
        }

        public ILogger CreateLogger(string categoryName) => Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        public void Dispose()
        {
        }
    }
}
