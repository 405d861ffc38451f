namespace Orleans.Mqtt.Grains;

/// <summary>
/// What a silo-local grain storage holds, listed for the checks a silo makes over its own records. A storage provider
/// that implements it lets a restarted silo drop the stale session copies on its disk (<see cref="StaleSessionCopies"/>).
/// </summary>
public interface ILocalGrainRecords
{
    /// <summary>
    /// The keys of the grains of <paramref name="grainType"/> whose state <paramref name="stateName"/> is stored here
    /// and that pass <paramref name="filter"/>.
    /// </summary>
    IReadOnlyList<string> FindKeys(string stateName, GrainType grainType, Func<string, bool> filter);
}
