using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Gc.Tests;

/// <summary>The broker's instruments on a meter of their own, with the heap trims they count (mqtt.heap.trims).</summary>
internal sealed class HeapTrimsCounter : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MeterListener _listener = new();
    private readonly TaskCompletionSource _firstTrim = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _trims;

    public HeapTrimsCounter()
    {
        Metrics = new MqttMetrics(_services.GetRequiredService<IMeterFactory>());
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument, Metrics.HeapTrims))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) =>
        {
            Interlocked.Add(ref _trims, value);
            _firstTrim.TrySetResult();
        });
        _listener.Start();
    }

    /// <summary>The instruments to give the heap trimmer.</summary>
    public MqttMetrics Metrics { get; }

    /// <summary>The trims counted so far.</summary>
    public long Trims => Interlocked.Read(ref _trims);

    /// <summary>Completes at the first trim counted.</summary>
    public Task FirstTrim => _firstTrim.Task;

    public void Dispose()
    {
        _listener.Dispose();
        _services.Dispose();
    }
}
