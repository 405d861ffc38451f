namespace Orleans.Mqtt.Grains;

/// <summary>Names shared by the grains and the silo that hosts them.</summary>
public static class MqttGrainStorage
{
    /// <summary>The grain storage provider name the session grains persist through.</summary>
    public const string Name = "mqtt";
}
