using System.Text;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Orleans.Mqtt.Ownership.Etcd;

namespace Orleans.Mqtt.Ownership.Tests;

public sealed class OwnershipBatchTests
{
    private static PendingOwnershipOp Op(string key, SessionOwner? owner = null, long expected = 0) =>
        new(ByteString.CopyFromUtf8(key), owner ?? new SessionOwner("gw", 1, 1), expected);

    [Fact]
    public void A_batch_holds_one_operation_per_key()
    {
        var batch = new OwnershipBatch(128, 1 << 20);

        Assert.True(batch.TryAdd(Op("a")));
        Assert.False(batch.TryAdd(Op("a")));
        Assert.True(batch.TryAdd(Op("b")));
        Assert.Equal(2, batch.Count);
        Assert.False(batch.IsFull);
    }

    [Fact]
    public void A_batch_stops_at_its_operation_cap()
    {
        var batch = new OwnershipBatch(3, 1 << 20);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(batch.TryAdd(Op("k" + i)));
        }

        Assert.True(batch.IsFull);
        Assert.False(batch.TryAdd(Op("k3")));
    }

    [Fact]
    public void A_batch_stops_at_its_byte_cap_but_always_takes_one_operation()
    {
        var big = Op("big", new SessionOwner(new string('g', 4000), 1, 1));
        var batch = new OwnershipBatch(128, 1024);

        Assert.True(batch.TryAdd(big));
        Assert.False(batch.TryAdd(Op("small")));
        Assert.True(batch.IsFull);
    }

    [Fact]
    public void The_transaction_compares_every_key_and_reads_every_key_on_failure()
    {
        var batch = new OwnershipBatch(128, 1 << 20);
        batch.TryAdd(Op("put", new SessionOwner("gw", 1, 1, LeaseId: 99), expected: 5));
        batch.TryAdd(new PendingOwnershipOp(ByteString.CopyFromUtf8("delete"), null, 7));

        var txn = batch.ToTxnRequest();

        Assert.Equal([5L, 7L], txn.Compare.Select(c => c.ModRevision));
        Assert.Equal(99, txn.Success[0].RequestPut.Lease);
        Assert.Equal("delete", txn.Success[1].RequestDeleteRange.Key.ToStringUtf8());
        Assert.Equal(["put", "delete"], txn.Failure.Select(r => r.RequestRange.Key.ToStringUtf8()));
    }

    [Fact]
    public void Owner_records_round_trip()
    {
        var owner = new SessionOwner("gateway-ü", -3, long.MaxValue, 0x1234);

        var value = OwnerRecordCodec.Encode(owner);

        Assert.Equal(OwnerRecordCodec.HeaderLength + Encoding.UTF8.GetByteCount(owner.GatewayId), value.Length);
        Assert.Equal(owner, OwnerRecordCodec.Decode(value));
        Assert.Throws<InvalidDataException>(() => OwnerRecordCodec.Decode(value.AsSpan(0, 10)));
    }

    [Fact]
    public void The_validator_names_the_bad_setting()
    {
        var options = new EtcdOwnershipOptions
        {
            ConnectionString = "http://127.0.0.1:2379",
            ClusterId = "c",
            MaxBatchOperations = 20_000,
            LeaseTtl = TimeSpan.FromMilliseconds(1500),
            CompactionInterval = TimeSpan.FromMilliseconds(500),
        };

        var result = new EtcdOwnershipOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(result.Failures!, f => f.StartsWith("Ownership:Etcd:MaxBatchOperations must be 1..128", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.StartsWith("Ownership:Etcd:LeaseTtl", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.StartsWith("Ownership:Etcd:CompactionInterval must be 0 (off) or at least 1 s", StringComparison.Ordinal));
        Assert.Equal(3, result.Failures!.Count());
        Assert.Equal(ValidateOptionsResult.Success, new EtcdOwnershipOptionsValidator().Validate(null, new EtcdOwnershipOptions { ConnectionString = "http://127.0.0.1:2379", ClusterId = "c" }));
        Assert.Equal(ValidateOptionsResult.Success, new EtcdOwnershipOptionsValidator().Validate(null, new EtcdOwnershipOptions { ConnectionString = "http://127.0.0.1:2379", ClusterId = "c", CompactionInterval = TimeSpan.Zero }));
    }
}
