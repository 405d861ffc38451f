namespace Orleans.Mqtt.Gateway;

/// <summary>
/// Samples, on a timer, what says the gateway process cannot keep up (<c>Mqtt:Overload:*</c>): work items waiting in
/// the thread pool and the managed heap against its budget. Connections read <see cref="IsOverloaded"/>, a field, on
/// every CONNECT and QoS 0 PUBLISH; nothing is measured per packet.
/// </summary>
internal sealed partial class OverloadMonitor : IDisposable
{
    private readonly OverloadOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<long> _threadPoolQueue;
    private readonly Func<long> _heapBytes;
    private readonly long _memoryBudget;
    private ITimer? _timer;
    private volatile bool _overloaded;
    private string _cause = string.Empty;

    /// <param name="options">The thresholds.</param>
    /// <param name="time">The clock of the sampling timer.</param>
    /// <param name="logger">Where entering and leaving overload is logged.</param>
    /// <param name="threadPoolQueue">Work items waiting in the thread pool (the process's, unless a test gives its own).</param>
    /// <param name="heapBytes">Managed heap bytes in use.</param>
    /// <param name="availableMemory">Memory the GC may use, for the default budget.</param>
    public OverloadMonitor(OverloadOptions options, TimeProvider time, ILogger logger, Func<long>? threadPoolQueue = null, Func<long>? heapBytes = null, Func<long>? availableMemory = null)
    {
        _options = options;
        _time = time;
        _logger = logger;
        _threadPoolQueue = threadPoolQueue ?? (() => ThreadPool.PendingWorkItemCount);
        _heapBytes = heapBytes ?? (() => GC.GetTotalMemory(forceFullCollection: false));
        _memoryBudget = options.MemoryBudgetBytes > 0
            ? options.MemoryBudgetBytes
            : (long)((availableMemory ?? (() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes))() * DefaultMemoryFraction);
    }

    /// <summary>The share of the GC's available memory that is the budget when <c>Mqtt:Overload:MemoryBudgetBytes</c> is 0.</summary>
    public const double DefaultMemoryFraction = 0.9;

    /// <summary>Whether the last sample found the process overloaded.</summary>
    public bool IsOverloaded => _overloaded;

    /// <summary>What the last sample found over its threshold (empty when not overloaded).</summary>
    public string Cause => Volatile.Read(ref _cause);

    /// <summary>The managed heap budget in force.</summary>
    public long MemoryBudget => _memoryBudget;

    /// <summary>Samples now and then every <c>Mqtt:Overload:SampleInterval</c>.</summary>
    public void Start() => _timer ??= _time.CreateTimer(_ => Sample(), null, TimeSpan.Zero, _options.SampleInterval);

    /// <summary>Takes one sample and updates <see cref="IsOverloaded"/>; logs a change of state.</summary>
    public void Sample()
    {
        var queue = _threadPoolQueue();
        var heap = _heapBytes();
        string cause;
        if (_options.MaxThreadPoolQueue > 0 && queue > _options.MaxThreadPoolQueue)
        {
            cause = $"{queue} work items queued in the thread pool, over Mqtt:Overload:MaxThreadPoolQueue {_options.MaxThreadPoolQueue}";
        }
        else if (heap > _memoryBudget)
        {
            cause = $"managed heap {heap} bytes, over the memory budget {_memoryBudget} bytes (Mqtt:Overload:MemoryBudgetBytes)";
        }
        else
        {
            cause = string.Empty;
        }

        var overloaded = cause.Length > 0;
        Volatile.Write(ref _cause, cause);
        if (overloaded != _overloaded)
        {
            _overloaded = overloaded;
            if (overloaded)
            {
                LogOverloaded(_logger, cause);
            }
            else
            {
                LogRecovered(_logger, queue, heap);
            }
        }
    }

    public void Dispose() => _timer?.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Gateway overloaded: {Cause}. New connections get Server busy and inbound QoS 0 publishes are dropped until it recovers")]
    private static partial void LogOverloaded(ILogger logger, string cause);

    [LoggerMessage(Level = LogLevel.Information, Message = "Gateway no longer overloaded ({Queue} work items queued, managed heap {Heap} bytes)")]
    private static partial void LogRecovered(ILogger logger, long queue, long heap);
}
