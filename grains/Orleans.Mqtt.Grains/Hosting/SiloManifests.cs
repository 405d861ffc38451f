namespace Orleans.Mqtt.Grains;

/// <summary>
/// Which grain interfaces another silo's build serves, as the cluster manifest says (each silo publishes the interfaces
/// of its grain classes). During a rolling upgrade silos of two releases call each other: a call added in this release
/// goes only to a silo whose manifest lists its interface, and a silo not in the manifest yet is taken for the
/// previous release (docs/architecture.md, "Rolling upgrades").
/// </summary>
internal sealed class SiloManifests(IClusterManifestProvider manifests)
{
    /// <summary>Whether <paramref name="silo"/>'s manifest lists <paramref name="interfaceType"/>.</summary>
    public bool Serves(SiloAddress silo, GrainInterfaceType interfaceType) =>
        manifests.Current.Silos.TryGetValue(silo, out var manifest) && manifest.Interfaces.ContainsKey(interfaceType);
}
