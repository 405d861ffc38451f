using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Orleans.Mqtt.Clustering.Consul;

/// <summary>
/// Builds the HTTP requests of Consul's KV API that the membership table sends. Kept apart from sending them so the
/// exact requests (paths, query strings, transaction bodies, token header) are checked by unit tests.
/// </summary>
internal sealed class ConsulKvRequests(string? aclToken)
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    /// <summary>Every key under <paramref name="folder"/> (which ends in '/'), in one consistent read.</summary>
    public HttpRequestMessage ReadFolder(string folder) => Create(HttpMethod.Get, KvPath(folder) + "?recurse=true");

    /// <summary>Deletes every key under <paramref name="folder"/> (which ends in '/').</summary>
    public HttpRequestMessage DeleteFolder(string folder) => Create(HttpMethod.Delete, KvPath(folder) + "?recurse=true");

    /// <summary>Writes <paramref name="value"/> if the key's ModifyIndex is <paramref name="index"/> (0: if absent). Answers true or false.</summary>
    public HttpRequestMessage CasPut(string key, byte[] value, ulong index)
    {
        var request = Create(HttpMethod.Put, KvPath(key) + "?cas=" + index.ToString(CultureInfo.InvariantCulture));
        request.Content = new ByteArrayContent(value);
        return request;
    }

    /// <summary>Deletes the key if its ModifyIndex is still <paramref name="index"/>. Answers true or false.</summary>
    public HttpRequestMessage CasDelete(string key, ulong index) =>
        Create(HttpMethod.Delete, KvPath(key) + "?cas=" + index.ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// All of <paramref name="operations"/> or none: Consul answers 200 when every check-and-set held and 409 (and
    /// writes nothing) when one did not.
    /// </summary>
    public HttpRequestMessage Transaction(IReadOnlyList<CasPut> operations)
    {
        var body = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartArray();
            foreach (var op in operations)
            {
                json.WriteStartObject();
                json.WriteStartObject("KV");
                json.WriteString("Verb", "cas");
                json.WriteString("Key", op.Key);
                json.WriteBase64String("Value", op.Value);
                json.WriteNumber("Index", op.Index);
                json.WriteEndObject();
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        var request = Create(HttpMethod.Put, "v1/txn");
        request.Content = new ByteArrayContent(body.WrittenSpan.ToArray());
        request.Content.Headers.ContentType = Json;
        return request;
    }

    private HttpRequestMessage Create(HttpMethod method, string relativeUri)
    {
        var request = new HttpRequestMessage(method, new Uri(relativeUri, UriKind.Relative));
        if (aclToken is not null)
        {
            request.Headers.Add("X-Consul-Token", aclToken);
        }

        return request;
    }

    // Silo row names carry ':' and '@'; each segment is escaped, the separators stay.
    private static string KvPath(string key)
    {
        var path = new StringBuilder("v1/kv/");
        var segments = key.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            if (i > 0)
            {
                path.Append('/');
            }

            path.Append(Uri.EscapeDataString(segments[i]));
        }

        return path.ToString();
    }
}
