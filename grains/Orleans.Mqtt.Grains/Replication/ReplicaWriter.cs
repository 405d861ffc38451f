namespace Orleans.Mqtt.Grains;

/// <summary>Applies a change to the silo's route table and, when it was new, to the durable replica.</summary>
internal sealed class ReplicaWriter(RouteTable table, IReplicaStore store)
{
    /// <summary>Applies routes; true when they were newer than what the table held.</summary>
    public async Task<bool> ApplyAsync(ClientRoutes routes)
    {
        if (!table.Apply(routes, out var replacedPersistent, out var held))
        {
            return false;
        }

        // Parts of one version (routes sharded by topic) merge: what the table holds now is what must survive.
        routes = held;

        if (!routes.Persistent && !replacedPersistent)
        {
            // A session that ends with its connection, and was not persistent before either: the durable replica has
            // never held it, so there is nothing to write or delete (and no commit to wait for).
            return true;
        }

        // Only sessions that outlive their connection must survive a restart; presence never does (a disconnected
        // session's routes have none already, and are written as they are rather than copied).
        var durable = !routes.Persistent ? null : routes.Presence is null ? routes : routes with { Presence = null };
        await store.SaveRoutesAsync(routes.ClientId, durable).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Forgets a client's routes this silo no longer holds after the change at <paramref name="version"/> (routes
    /// sharded by topic, <see cref="RouteTable.Drop"/>), from the durable replica too; true when it held them.
    /// <paramref name="served"/>: what stays in memory for the shard grain activations here (see <see cref="RouteTable.Drop"/>).
    /// </summary>
    public async Task<bool> DropAsync(string clientId, long version, Func<ClientRoutes, ClientRoutes>? served = null)
    {
        if (!table.Drop(clientId, version, out var wasPersistent, served))
        {
            return false;
        }

        if (wasPersistent)
        {
            await store.SaveRoutesAsync(clientId, null);
        }

        return true;
    }

    /// <summary>Deletes the durable routes of clients the table no longer holds (<see cref="RouteTable.PruneEntries"/>).</summary>
    public async Task ForgetDurableAsync(IEnumerable<string> clientIds)
    {
        foreach (var chunk in clientIds.Chunk(256))
        {
            // One that came back meanwhile (a change made this silo hold it again) keeps its durable copy.
            await Task.WhenAll(chunk.Where(clientId => table.Get(clientId) is null).Select(clientId => store.SaveRoutesAsync(clientId, null)));
        }
    }

    /// <summary>Applies a retained change; true when it was newer than what the table held.</summary>
    public async Task<bool> ApplyRetainedAsync(RetainedUpdate update)
    {
        if (!table.ApplyRetained(update))
        {
            return false;
        }

        await store.SaveRetainedAsync(update);
        return true;
    }
}
