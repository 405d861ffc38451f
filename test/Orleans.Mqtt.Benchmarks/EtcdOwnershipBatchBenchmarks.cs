using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Orleans.Mqtt.Ownership;
using Orleans.Mqtt.Ownership.Etcd;

namespace Orleans.Mqtt.Benchmarks;

/// <summary>
/// The CPU side of one etcd ownership transaction at etcd's default cap of 128 operations: picking the operations
/// (one per key), building the compare/put/read request, and encoding it as it goes on the wire.
/// </summary>
[MemoryDiagnoser]
public class EtcdOwnershipBatchBenchmarks
{
    private const int Operations = 128;
    private readonly byte[] _wire = new byte[64 * 1024];
    private PendingOwnershipOp[] _ops = null!;
    private OwnershipBatch _batch = null!;

    [GlobalSetup]
    public void Setup()
    {
        _ops = new PendingOwnershipOp[Operations];
        for (var i = 0; i < Operations; i++)
        {
            var key = ByteString.CopyFromUtf8($"/orleans-mqtt/cluster/owners/device-{i:D6}");
            _ops[i] = new PendingOwnershipOp(key, new SessionOwner("gateway-0", i, 1, 0x1234), i);
        }

        _batch = new OwnershipBatch(Operations, 1024 * 1024);
    }

    /// <summary>One commit's share of the work before it is queued: its key and value encoded.</summary>
    [Benchmark]
    public int CreateOperation() =>
        new PendingOwnershipOp(ByteString.CopyFromUtf8("/orleans-mqtt/cluster/owners/device-000042"), new SessionOwner("gateway-0", 42, 1, 0x1234), 7).Size;

    /// <summary>128 operations picked into a batch and built into one TxnRequest.</summary>
    [Benchmark]
    public int BuildTxn128()
    {
        _batch.Clear();
        foreach (var op in _ops)
        {
            _batch.TryAdd(op);
        }

        return _batch.ToTxnRequest().Compare.Count;
    }

    /// <summary>The same, then encoded to protobuf bytes.</summary>
    [Benchmark]
    public int BuildAndEncodeTxn128()
    {
        _batch.Clear();
        foreach (var op in _ops)
        {
            _batch.TryAdd(op);
        }

        var txn = _batch.ToTxnRequest();
        var size = txn.CalculateSize();
        txn.WriteTo(_wire.AsSpan(0, size));
        return size;
    }
}
