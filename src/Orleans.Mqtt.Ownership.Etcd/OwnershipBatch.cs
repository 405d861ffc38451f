using Etcdserverpb;
using Google.Protobuf;
using static Etcdserverpb.Compare.Types;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>
/// Picks the operations of one transaction: at most a number of operations and of bytes, and at most one operation
/// per key, because etcd refuses a transaction that touches a key twice.
/// </summary>
internal sealed class OwnershipBatch
{
    private readonly int _maxOperations;
    private readonly int _maxBytes;
    private readonly HashSet<ByteString> _keys;
    private int _bytes;

    public OwnershipBatch(int maxOperations, int maxBytes)
    {
        _maxOperations = maxOperations;
        _maxBytes = maxBytes;
        Operations = new List<PendingOwnershipOp>(maxOperations);
        _keys = new HashSet<ByteString>(maxOperations);
    }

    public List<PendingOwnershipOp> Operations { get; }

    public int Count => Operations.Count;

    /// <summary>True once no further operation fits.</summary>
    public bool IsFull { get; private set; }

    /// <summary>Adds <paramref name="op"/> unless the batch is full or already holds an operation on its key.</summary>
    public bool TryAdd(PendingOwnershipOp op)
    {
        if (IsFull)
        {
            return false;
        }

        // A single operation larger than the byte cap still goes, alone: it cannot be split.
        if (Operations.Count > 0 && _bytes + op.Size > _maxBytes)
        {
            IsFull = true;
            return false;
        }

        if (!_keys.Add(op.Key))
        {
            return false;
        }

        Operations.Add(op);
        _bytes += op.Size;
        IsFull = Operations.Count >= _maxOperations || _bytes >= _maxBytes;
        return true;
    }

    public void Clear()
    {
        Operations.Clear();
        _keys.Clear();
        _bytes = 0;
        IsFull = false;
    }

    /// <summary>
    /// The transaction: every key's mod revision compared with the expected one; if all match, the puts (on their
    /// lease) and deletes; if any differs, nothing is written and every key is read back to find which.
    /// </summary>
    public TxnRequest ToTxnRequest()
    {
        var txn = new TxnRequest();
        foreach (var op in Operations)
        {
            txn.Compare.Add(new Compare { Key = op.Key, Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = op.ExpectedRevision });
            txn.Success.Add(op.Value is { } value
                ? new RequestOp { RequestPut = new PutRequest { Key = op.Key, Value = value, Lease = op.Owner!.LeaseId } }
                : new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = op.Key } });
            txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = op.Key } });
        }

        return txn;
    }
}
