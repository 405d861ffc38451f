using System.Collections;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Orleans.Mqtt.Gateway;

/// <summary>
/// One accepted TCP connection of the gateway's own transport (<c>Mqtt:Tcp:Transport</c> = <c>Sockets</c>): the
/// connection context an <see cref="MqttConnection"/> runs on, its own duplex pipe, over the socket directly.
/// </summary>
/// <remarks>
/// <para>
/// An idle connection is what bounds a gateway's memory (docs/benchmarks.md), so this holds the least it can: the
/// socket, a reader that waits for data with a zero-byte receive (no buffer while nothing is unread) and a writer that
/// sends from a pooled buffer only while a flush is under way. There are no pipes, no send or receive loop and no
/// entry in a connection table: a connection is reachable from the gateway's table of MQTT connections alone.
/// </para>
/// <para>
/// Closing follows Kestrel's socket transport, which the other listeners keep: when the output completes (the
/// connection wrote its last packet) or the connection is aborted, the socket is shut down both ways and closed; a
/// read still waiting then ends as the end of the stream.
/// </para>
/// </remarks>
internal sealed class SocketConnection : ConnectionContext, IDuplexPipe, IThreadPoolWorkItem
{
    private static long s_lastId;

    private readonly Socket _socket;
    private readonly SocketInput _input;
    private readonly SocketOutput _output;
    private readonly MqttSocketListener? _listener;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;
    private int _closed;

    /// <summary>A connection over <paramref name="socket"/>, accepted by <paramref name="listener"/> (none: a connection on its own).</summary>
    public SocketConnection(Socket socket, MqttSocketListener? listener)
    {
        _socket = socket;
        _listener = listener;
        _input = new SocketInput(this);
        _output = new SocketOutput(this);

        // The accepted socket already holds its remote endpoint: taken once here, so it stays readable after the close.
        RemoteEndPoint = socket.RemoteEndPoint;
    }

    /// <summary>The connection's socket; non-blocking, so a send or receive that would wait says so instead.</summary>
    public Socket Socket => _socket;

    /// <summary>Whether the socket was shut down and closed (the output completed, or the connection was aborted).</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <inheritdoc />
    public override string ConnectionId
    {
        // Made when first asked for (nothing of the broker's own does): a string per connection costs memory per connection.
        get => _connectionId ??= "tcp-" + Interlocked.Increment(ref s_lastId).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        set => _connectionId = value;
    }

    /// <inheritdoc />
    public override IFeatureCollection Features => NoFeatures.Instance;

    /// <inheritdoc />
    public override IDictionary<object, object?> Items
    {
        get => _items ??= new Dictionary<object, object?>();
        set => _items = value;
    }

    /// <inheritdoc />
    public override IDuplexPipe Transport
    {
        get => this;
        set => throw new NotSupportedException("The socket transport's duplex pipe is the connection itself.");
    }

    PipeReader IDuplexPipe.Input => _input;

    PipeWriter IDuplexPipe.Output => _output;

    /// <summary>Runs the MQTT connection on the thread pool, so the accept loop goes on at once.</summary>
    public void Start() => ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);

    void IThreadPoolWorkItem.Execute() => _listener?.Run(this);

    /// <inheritdoc />
    public override void Abort(ConnectionAbortedException abortReason) => Close();

    /// <summary>Shuts the socket down both ways and closes it; once, whoever comes first.</summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
        {
            return;
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The peer reset the connection first: closing is all that is left.
        }

        _socket.Dispose();
    }

    /// <summary>Called once the MQTT connection on this socket ended: closes it and tells the listener.</summary>
    public void OnRunEnded()
    {
        _ = DisposeAsync();
        _listener?.Ended();
    }

    /// <summary>
    /// Closes the socket and gives the buffers back to the pool. Called once the <see cref="MqttConnection"/> on it has
    /// ended: its read loop and its output drain are done, so nothing uses the buffers any more.
    /// </summary>
    public override ValueTask DisposeAsync()
    {
        Close();
        _input.Release();
        _output.Release();
        return ValueTask.CompletedTask;
    }

    /// <summary>No features: the TLS features an MQTT connection asks for are not there on plain TCP; shared by all connections.</summary>
    private sealed class NoFeatures : IFeatureCollection
    {
        public static readonly NoFeatures Instance = new();

        public bool IsReadOnly => true;

        public int Revision => 0;

        public object? this[Type key]
        {
            get => null;
            set => throw new NotSupportedException("A plain TCP connection of the socket transport has no features to set.");
        }

        public TFeature? Get<TFeature>() => default;

        public void Set<TFeature>(TFeature? instance) => throw new NotSupportedException("A plain TCP connection of the socket transport has no features to set.");

        public IEnumerator<KeyValuePair<Type, object>> GetEnumerator() => Enumerable.Empty<KeyValuePair<Type, object>>().GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
