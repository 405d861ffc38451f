using System.Net;

namespace Orleans.Mqtt.Bench;

/// <summary>
/// Where connection number <c>i</c> of a run goes and comes from: brokers in turn, and, when every broker
/// is on loopback, source addresses 127.0.0.1 … 127.0.0.254 in turn so that many connections do not run
/// out of ephemeral ports on one source address.
/// </summary>
internal sealed class Endpoints
{
    /// <summary>Loopback source addresses used in turn.</summary>
    public const int LoopbackSources = 254;

    private readonly IPEndPoint[] _brokers;
    private readonly IPAddress[]? _sources;

    private Endpoints(IPEndPoint[] brokers, IPAddress[]? sources)
    {
        _brokers = brokers;
        _sources = sources;
    }

    /// <summary>The brokers, in order.</summary>
    public IReadOnlyList<IPEndPoint> Brokers => _brokers;

    /// <summary>True when connections bind spread loopback source addresses.</summary>
    public bool SpreadsSources => _sources is not null;

    /// <summary>Resolves the host names of <paramref name="options"/>.</summary>
    public static async Task<Endpoints> ResolveAsync(BenchOptions options, CancellationToken cancellationToken)
    {
        var brokers = new IPEndPoint[options.Hosts.Count];
        for (var i = 0; i < brokers.Length; i++)
        {
            var host = options.Hosts[i];
            var address = IPAddress.TryParse(host.Host, out var parsed)
                ? parsed
                : (await Dns.GetHostAddressesAsync(host.Host, cancellationToken).ConfigureAwait(false))[0];
            brokers[i] = new IPEndPoint(address, host.Port);
        }

        IPAddress[]? sources = null;
        if (options.SpreadSources && Array.TrueForAll(brokers, b => b.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && IPAddress.IsLoopback(b.Address)))
        {
            sources = new IPAddress[LoopbackSources];
            for (var i = 0; i < sources.Length; i++)
            {
                sources[i] = new IPAddress([127, 0, 0, (byte)(i + 1)]);
            }
        }

        return new Endpoints(brokers, sources);
    }

    /// <summary>The broker connection <paramref name="index"/> connects to.</summary>
    public IPEndPoint Broker(int index) => _brokers[index % _brokers.Length];

    /// <summary>The source address connection <paramref name="index"/> binds, or null to let the system choose.</summary>
    public IPAddress? Source(int index) => _sources?[index % _sources.Length];
}
