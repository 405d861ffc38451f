namespace Orleans.Mqtt.Gateway;

/// <summary>Authorization settings beside the ACL file itself (configuration section <c>Mqtt:Acl</c>).</summary>
public sealed class AclOptions
{
    /// <summary>
    /// What an MQTT 3.1.1 PUBLISH to a topic the client may not write gets (<c>Mqtt:Acl:DenyAction</c>): acknowledged
    /// and dropped, as mosquitto does, or the connection closed. MQTT 5 clients always get PUBACK/PUBREC 0x87.
    /// </summary>
    public AclDenyAction DenyAction { get; set; } = AclDenyAction.Drop;

    /// <summary>
    /// How often the ACL file's time and size are compared with the last read (<c>Mqtt:Acl:ReloadCheckInterval</c>), for
    /// the volumes where file system events do not arrive; a change seen by the watcher is read at once.
    /// </summary>
    public TimeSpan ReloadCheckInterval { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>The answer to an MQTT 3.1.1 PUBLISH the ACL refuses.</summary>
public enum AclDenyAction
{
    /// <summary>Acknowledged (PUBACK/PUBREC) and dropped.</summary>
    Drop,

    /// <summary>The connection is closed.</summary>
    Disconnect,
}
