namespace Orleans.Mqtt.Gateway;

/// <summary>Result of looking for one MQTT packet at the start of a buffer.</summary>
internal enum FrameStatus
{
    Incomplete,
    Complete,
    Malformed,
    TooLarge,
}
