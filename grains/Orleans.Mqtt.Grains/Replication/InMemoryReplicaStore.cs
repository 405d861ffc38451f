namespace Orleans.Mqtt.Grains;

/// <summary>A replica store that keeps nothing: for silos whose replica is rebuilt from peers, and for tests.</summary>
public sealed class InMemoryReplicaStore : IReplicaStore
{
    /// <inheritdoc />
    public Task SaveRoutesAsync(string clientId, ClientRoutes? routes) => Task.CompletedTask;

    /// <inheritdoc />
    public Task SaveRetainedAsync(RetainedUpdate update) => Task.CompletedTask;

    /// <inheritdoc />
    public Task<(IReadOnlyList<ClientRoutes> Routes, IReadOnlyList<RetainedUpdate> Retained)> LoadAsync() =>
        Task.FromResult<(IReadOnlyList<ClientRoutes>, IReadOnlyList<RetainedUpdate>)>(([], []));
}
