namespace Orleans.Mqtt.Ownership;

/// <summary>A gateway's lease in the ownership store: the records of its connections hang on it and expire with it.</summary>
public interface IGatewayLease
{
    /// <summary>The current lease id (0 while none is granted).</summary>
    long LeaseId { get; }
}
