namespace Orleans.Mqtt.Grains;

/// <summary>An MQTT 5 user property (name/value pair; order and duplicates are significant).</summary>
[GenerateSerializer, Immutable]
public sealed record UserProperty([property: Id(0)] string Name, [property: Id(1)] string Value);
