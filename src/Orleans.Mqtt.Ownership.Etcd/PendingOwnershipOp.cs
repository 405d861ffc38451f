using Google.Protobuf;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>
/// One commit or release waiting for its transaction; completes with its outcome. The key and value are encoded once,
/// when the operation is created, and reused if the operation has to be sent again.
/// </summary>
internal sealed class PendingOwnershipOp : TaskCompletionSource<OwnershipCommit>
{
    // Compare, put or delete, and the failure-branch read each carry the key; the rest is framing.
    private const int Overhead = 48;

    public PendingOwnershipOp(ByteString key, SessionOwner? owner, long expectedRevision)
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        Key = key;
        Owner = owner;
        ExpectedRevision = expectedRevision;
        Value = owner is null ? null : UnsafeByteOperations.UnsafeWrap(OwnerRecordCodec.Encode(owner));
        Size = (3 * key.Length) + (Value?.Length ?? 0) + Overhead;
    }

    public ByteString Key { get; }

    /// <summary>The owner to write; null for a release (a delete).</summary>
    public SessionOwner? Owner { get; }

    public ByteString? Value { get; }

    public long ExpectedRevision { get; }

    /// <summary>The bytes this operation adds to a transaction request, approximately.</summary>
    public int Size { get; }
}
