namespace Orleans.Mqtt.Grains;

/// <summary>
/// Work a silo runs in the background from the Active stage of its lifecycle until it stops: <see cref="Run"/> starts
/// the loops with a token cancelled at the stop, or at disposal if that comes first. Registered under its own type and
/// as a lifecycle participant, it is disposed twice; the second time does nothing.
/// </summary>
internal abstract class SiloBackgroundWork : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(GetType().Name, ServiceLifecycleStage.Active, Start, Stop);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _stopping.Cancel();
            _stopping.Dispose();
        }
    }

    /// <summary>Starts the background loops (without waiting for them); they end when <paramref name="stopping"/> is cancelled.</summary>
    protected abstract void Run(CancellationToken stopping);

    private Task Start(CancellationToken cancellationToken)
    {
        Run(_stopping.Token);
        return Task.CompletedTask;
    }

    private Task Stop(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            _stopping.Cancel();
        }

        return Task.CompletedTask;
    }
}
