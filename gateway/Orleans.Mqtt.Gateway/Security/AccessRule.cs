namespace Orleans.Mqtt.Gateway;

/// <summary>What an access rule grants or takes away.</summary>
internal enum AccessKind
{
    /// <summary>Subscribe to, and receive from, the topics the filter matches.</summary>
    Read,

    /// <summary>Publish (and will) to the topics the filter matches.</summary>
    Write,

    /// <summary>Both <see cref="Read"/> and <see cref="Write"/>.</summary>
    ReadWrite,

    /// <summary>Neither, whatever else allows it: deny wins.</summary>
    Deny,
}

/// <summary>
/// One authorization rule: a topic filter (MQTT wildcards allowed) and what it grants. The filter may hold
/// <c>%c</c> (the client id) and <c>%u</c> (the user name), expanded for each connection. Rules come from the
/// ACL file (<c>Mqtt:AclFile</c>) and from a connection's own credentials (for example a token's claims).
/// </summary>
internal sealed record AccessRule(AccessKind Kind, string Filter);
