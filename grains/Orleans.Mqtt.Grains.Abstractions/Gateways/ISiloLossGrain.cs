namespace Orleans.Mqtt.Grains;

/// <summary>
/// Tells a gateway when the cluster has declared a silo dead. A gateway that loses its connection to a silo asks
/// (through any other silo: the grain is a stateless worker, activated on the silo the call reaches), and cuts the
/// grain calls it had under way as soon as the answer comes: by then every silo that waited on the lost one has
/// been released, and the calls still unanswered were lost with it.
/// </summary>
public interface ISiloLossGrain : IGrainWithIntegerKey
{
    /// <summary>
    /// True once a silo has left this silo's view of the active silos (declared dead, or shutting down), counting one
    /// that left up to <paramref name="lostAgo"/> (plus a little, for the time the call took) before the call came;
    /// false if none left within <paramref name="timeout"/>.
    /// </summary>
    [ResponseTimeout("00:05:00")]
    Task<bool> WaitForSiloLoss(TimeSpan lostAgo, TimeSpan timeout);
}
