using Xunit;

namespace Orleans.Mqtt.Testing;

/// <summary>The etcd server as an xunit fixture: started before the tests that share it, killed after them.</summary>
public sealed partial class EtcdServer : IAsyncLifetime;
