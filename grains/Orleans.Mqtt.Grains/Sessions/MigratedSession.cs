namespace Orleans.Mqtt.Grains;

/// <summary>What a session carries to another silo besides its stored state.</summary>
[GenerateSerializer, Immutable]
internal sealed record MigratedSession([property: Id(0)] bool HasSession);
