namespace Orleans.Mqtt.Tests.Grains;

/// <summary>
/// Lets a run of the in-process cluster tests choose where routes are kept, as the broker's processes take it from
/// the environment: <c>Mqtt__Routes__Sharding=Off</c> (or <c>Topic</c>, the default) and <c>Mqtt__Routes__Copies=N</c>. The real
/// processes the end-to-end tests start inherit the same variables. Unset, the broker's defaults hold.
/// </summary>
internal static class RouteShardingFromEnvironment
{
    public static void Apply(MqttBrokerOptions options)
    {
        if (Environment.GetEnvironmentVariable("Mqtt__Routes__Sharding") is { Length: > 0 } sharding)
        {
            options.Routes.Sharding = Enum.Parse<RouteSharding>(sharding, ignoreCase: true);
        }

        if (Environment.GetEnvironmentVariable("Mqtt__Routes__Copies") is { Length: > 0 } copies)
        {
            options.Routes.Copies = int.Parse(copies, System.Globalization.CultureInfo.InvariantCulture);
        }
    }
}
