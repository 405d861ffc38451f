namespace Orleans.Mqtt.Grains;

/// <summary>Silo-local durable copy of the route replica, loaded into the <see cref="RouteTable"/> when the silo starts.</summary>
public interface IReplicaStore
{
    /// <summary>Stores (or with null, deletes) the routes of a persistent session; durable when the task completes.</summary>
    Task SaveRoutesAsync(string clientId, ClientRoutes? routes);

    /// <summary>Stores a retained change (a deletion when its message is null); durable when the task completes.</summary>
    Task SaveRetainedAsync(RetainedUpdate update);

    /// <summary>Reads everything stored, for the start of the silo.</summary>
    Task<(IReadOnlyList<ClientRoutes> Routes, IReadOnlyList<RetainedUpdate> Retained)> LoadAsync();
}
