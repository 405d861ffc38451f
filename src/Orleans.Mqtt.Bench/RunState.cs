namespace Orleans.Mqtt.Bench;

/// <summary>State shared by all pairs of one run: the measurement start, error counts and samples.</summary>
internal sealed class RunState(TextWriter log)
{
    private const int MaxErrorSamples = 10;

    private readonly Lock _errorsLock = new();
    private readonly List<string> _errorSamples = [];
    private long _measureStartTicks = long.MaxValue;
    private int _connectErrors;
    private int _disconnects;
    private volatile bool _closing;

    /// <summary>
    /// Stopwatch timestamp at which the measured interval began; messages stamped earlier are
    /// left out of the latency histogram. <see cref="long.MaxValue"/> during warm-up.
    /// </summary>
    public long MeasureStartTicks
    {
        get => Volatile.Read(ref _measureStartTicks);
        set => Volatile.Write(ref _measureStartTicks, value);
    }

    /// <summary>True once the tool itself disconnects, so that its own disconnects are not counted as drops.</summary>
    public bool Closing
    {
        get => _closing;
        set => _closing = value;
    }

    /// <summary>Clients that failed to connect or subscribe.</summary>
    public int ConnectErrors => Volatile.Read(ref _connectErrors);

    /// <summary>Clients the broker dropped while the run was going on.</summary>
    public int Disconnects => Volatile.Read(ref _disconnects);

    /// <summary>Distinct error messages seen so far (at most ten).</summary>
    public IReadOnlyList<string> ErrorSamples
    {
        get
        {
            lock (_errorsLock)
            {
                return [.. _errorSamples];
            }
        }
    }

    /// <summary>Counts a client that could not connect or subscribe.</summary>
    public void OnConnectError(string message)
    {
        Interlocked.Increment(ref _connectErrors);
        Report("connect: " + message);
    }

    /// <summary>Counts a client that the broker dropped.</summary>
    public void OnDropped(string message)
    {
        Interlocked.Increment(ref _disconnects);
        Report("dropped: " + message);
    }

    /// <summary>Keeps and prints the first occurrences of distinct error messages.</summary>
    public void Report(string message)
    {
        lock (_errorsLock)
        {
            if (_errorSamples.Count >= MaxErrorSamples || _errorSamples.Contains(message))
            {
                return;
            }

            _errorSamples.Add(message);
        }

        log.WriteLine("error: " + message);
    }
}
