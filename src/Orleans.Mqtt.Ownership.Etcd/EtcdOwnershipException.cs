namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>An ownership commit or release that etcd did not answer or refused: its outcome is unknown or nothing was written.</summary>
public sealed class EtcdOwnershipException : Exception
{
    /// <summary>Creates the exception with a message.</summary>
    public EtcdOwnershipException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the failure of the etcd request.</summary>
    public EtcdOwnershipException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
