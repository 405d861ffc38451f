namespace Orleans.Mqtt.Grains;

/// <summary>Places a grain on the silo whose address (<see cref="SiloAddress.ToParsableString"/>) is the grain's key.</summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SiloPinnedPlacement : PlacementStrategy
{
    /// <summary>The single instance.</summary>
    public static readonly SiloPinnedPlacement Instance = new();
}
