using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// The admin HTTP API on <c>Http:Port</c>: the one place where the <see cref="Prefix"/> group is created and each
/// resource's endpoints (one file each) are mapped into it, with the OpenAPI document and the key check in front.
/// </summary>
internal static class AdminApi
{
    /// <summary>The path every admin endpoint is under.</summary>
    public const string Prefix = "/api/v1";

    /// <summary>The OpenAPI document's path.</summary>
    public const string OpenApiPath = Prefix + "/openapi/v1.json";

    /// <summary>Entries in a page when the call does not say.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>The most entries a page may hold.</summary>
    public const int MaxPageSize = 1000;

    /// <summary>Registers the services the admin API uses.</summary>
    public static void AddServices(IServiceCollection services)
    {
        services.AddProblemDetails();
        services.TryAddSingleton<ApiKeyStore>();
        services.TryAddSingleton<AdminAudit>();
        services.TryAddSingleton<AdminCluster>();
        services.AddOpenApi("v1", o =>
        {
            o.ShouldInclude = d => d.RelativePath?.StartsWith(Prefix[1..], StringComparison.Ordinal) == true;
            o.AddDocumentTransformer((document, _, _) =>
            {
                document.Info.Title = "Orleans.Mqtt admin API";
                document.Info.Description =
                    "Administration of the MQTT cluster through any gateway. Calls carry an API key ('Authorization: Bearer KEY' "
                    + "or 'X-Api-Key: KEY') when Http:ApiKeysFile is set; without a key file only loopback callers are let in. "
                    + "Errors are RFC 7807 problem details.";
                return Task.CompletedTask;
            });
        });
    }

    /// <summary>Maps the key check, the OpenAPI document and every resource's endpoints under <see cref="Prefix"/>.</summary>
    public static void Map(WebApplication app)
    {
        app.UseWhen(
            context => context.Request.Path.StartsWithSegments(Prefix, StringComparison.Ordinal),
            admin => admin.UseMiddleware<AdminAuthorizationMiddleware>());
        app.MapOpenApi(Prefix + "/openapi/{documentName}.json");

        var api = app.MapGroup(Prefix);
        ClientsEndpoints.Map(api.MapGroup("/clients").WithTags("Clients"));
        RetainedEndpoints.Map(api.MapGroup("/retained").WithTags("Retained messages"));
        PublishEndpoints.Map(api.MapGroup("/publish").WithTags("Publish"));
        NodesEndpoints.Map(api.MapGroup(string.Empty).WithTags("Nodes"));
        StatsEndpoints.Map(api.MapGroup(string.Empty).WithTags("Statistics"));
    }
}
