using dotnet_etcd;
using Grpc.Core;

namespace Orleans.Mqtt.Ownership.Etcd;

internal static class EtcdConnection
{
    public static string[] Endpoints(string connectionString) =>
        connectionString.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static EtcdClient CreateClient(string connectionString)
    {
        var insecure = Array.TrueForAll(Endpoints(connectionString), e => e.StartsWith("http://", StringComparison.OrdinalIgnoreCase));
        return new EtcdClient(
            connectionString,
            configureChannelOptions: channel =>
            {
                if (insecure)
                {
                    channel.Credentials = ChannelCredentials.Insecure;
                }
            });
    }
}
