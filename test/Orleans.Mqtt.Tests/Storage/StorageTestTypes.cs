using Orleans.Runtime.Placement;

namespace Orleans.Mqtt.Tests.Storage;

/// <summary>Grain state used by the storage tests.</summary>
[GenerateSerializer]
public sealed class TestState
{
    [Id(0)]
    public int Value { get; set; }

    [Id(1)]
    public string Text { get; set; } = "";
}

/// <summary>What <see cref="IStorageTestGrain"/> reports about its state.</summary>
[GenerateSerializer, Immutable]
public sealed record StateSnapshot(
    [property: Id(0)] int Value,
    [property: Id(1)] string? ETag,
    [property: Id(2)] bool RecordExists,
    [property: Id(3)] SiloAddress Silo);

/// <summary>A grain whose state lives in the FASTER provider named <c>faster</c>.</summary>
public interface IStorageTestGrain : IGrainWithStringKey
{
    Task<StateSnapshot> Write(int value);

    Task<StateSnapshot> Read();
}

/// <summary>Implementation of <see cref="IStorageTestGrain"/>.</summary>
public sealed class StorageTestGrain(
    [PersistentState("state", StorageTestGrain.ProviderName)] IPersistentState<TestState> state,
    ILocalSiloDetails silo) : Grain, IStorageTestGrain
{
    public const string ProviderName = "faster";

    public async Task<StateSnapshot> Write(int value)
    {
        state.State.Value = value;
        state.State.Text = $"value {value}";
        await state.WriteStateAsync();
        return Snapshot();
    }

    public Task<StateSnapshot> Read() => Task.FromResult(Snapshot());

    private StateSnapshot Snapshot() => new(state.State.Value, state.Etag, state.RecordExists, silo.SiloAddress);
}

/// <summary>Sets a placement hint for the calls made in its scope.</summary>
internal sealed class PlacementHintScope : IDisposable
{
    public PlacementHintScope(SiloAddress silo) => RequestContext.Set(IPlacementDirector.PlacementHintKey, silo);

    public void Dispose() => RequestContext.Remove(IPlacementDirector.PlacementHintKey);
}
