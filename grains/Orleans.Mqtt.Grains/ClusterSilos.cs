namespace Orleans.Mqtt.Grains;

/// <summary>Sends a change to the route replica of every active silo and waits for all of them.</summary>
internal sealed class ReplicaBroadcaster(IClusterMembershipService membership, IGrainFactory grainFactory)
{
    public Task Apply(ClientRoutes routes) => ForEachSilo(r => r.Apply(routes));

    public Task ApplyRetained(RetainedUpdate update) => ForEachSilo(r => r.ApplyRetained(update));

    private Task ForEachSilo(Func<IRouteReplicaGrain, Task> action)
    {
        var members = membership.CurrentSnapshot.Members;
        var tasks = new List<Task>(members.Count);
        foreach (var member in members.Values)
        {
            if (member.Status == SiloStatus.Active)
            {
                tasks.Add(action(grainFactory.GetGrain<IRouteReplicaGrain>(member.SiloAddress.ToParsableString())));
            }
        }

        return Task.WhenAll(tasks);
    }
}
