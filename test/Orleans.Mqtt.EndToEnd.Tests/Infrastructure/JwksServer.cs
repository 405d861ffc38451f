using System.Net;
using System.Text;
using Orleans.Mqtt.Testing;

namespace Orleans.Mqtt.EndToEnd.Tests.Infrastructure;

/// <summary>A JWKS URL for tests: an HttpListener on a loopback port that serves whatever key set the test sets.</summary>
public sealed class JwksServer : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _serving;
    private volatile string _keySet = """{"keys":[]}""";
    private int _requests;

    public JwksServer()
    {
        var port = LoopbackPorts.Next();
        Url = $"http://127.0.0.1:{port}/jwks.json";
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _serving = ServeAsync();
    }

    public string Url { get; }

    /// <summary>How many times the key set was fetched.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Serves <paramref name="json"/> from the next request on.</summary>
    public void Serve(string json) => _keySet = json;

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            await _serving;
        }
        catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
        {
        }
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            var context = await _listener.GetContextAsync();
            Interlocked.Increment(ref _requests);
            var body = Encoding.UTF8.GetBytes(_keySet);
            context.Response.ContentType = "application/json";
            context.Response.ContentLength64 = body.Length;
            await context.Response.OutputStream.WriteAsync(body);
            context.Response.Close();
        }
    }
}
