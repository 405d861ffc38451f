namespace Orleans.Mqtt.Gateway;

/// <summary>
/// What the process's open-file limit leaves for MQTT connections. Every accepted socket is a file descriptor, and so
/// is every file, assembly, pipe and cluster socket the process opens for itself; a process out of descriptors fails
/// wherever it needs the next one (an accept, a storage segment, an assembly the runtime loads late, which ends the
/// process with "Out of memory"). So connections stop short of the limit by <c>Mqtt:FileDescriptorReserve</c> beyond
/// the descriptors open at start.
/// </summary>
/// <param name="MaxConnections">
/// The session slots: CONNECTs past it get CONNACK 0x97 Quota exceeded (MQTT 3.1.1: 3 Server unavailable). The smaller
/// of <c>Mqtt:MaxConnections</c> and what the file limit leaves.
/// </param>
/// <param name="MaxSockets">
/// The accepted sockets of the MQTT listeners, CONNECT or not: a socket past it is closed as soon as it is accepted.
/// Half the reserve above what the file limit leaves for sessions, so a storm past <paramref name="MaxConnections"/>
/// still reads CONNECT and gets its CONNACK refusal while the process keeps the other half for itself.
/// </param>
/// <param name="FileLimit">The open-file limit the budget was computed from (0: none known, nothing capped).</param>
/// <param name="OpenAtStart">The descriptors the process had open when the budget was computed.</param>
internal readonly record struct ConnectionBudget(int MaxConnections, int MaxSockets, long FileLimit, long OpenAtStart)
{
    /// <summary>The budget of a process whose file limit is unknown or unlimited: only <c>Mqtt:MaxConnections</c>.</summary>
    public static ConnectionBudget Unlimited(int maxConnections) => new(maxConnections, int.MaxValue, 0, 0);

    /// <summary>Whether the file limit lowered <c>Mqtt:MaxConnections</c> (<paramref name="configured"/>).</summary>
    public bool Lowers(int configured) => MaxConnections < configured;

    /// <summary>
    /// The budget of <paramref name="maxConnections"/> (<c>Mqtt:MaxConnections</c>) under an open-file limit of
    /// <paramref name="fileLimit"/> (the soft limit; 0 or less: unknown, and <see cref="Unlimited"/>), with
    /// <paramref name="openFiles"/> descriptors open now and <paramref name="reserve"/> kept for the process's later
    /// own use (<c>Mqtt:FileDescriptorReserve</c>). Null when the limit leaves no connection at all.
    /// </summary>
    public static ConnectionBudget? Compute(int maxConnections, long fileLimit, long openFiles, int reserve)
    {
        if (fileLimit <= 0)
        {
            return Unlimited(maxConnections);
        }

        var forSessions = fileLimit - openFiles - reserve;
        if (forSessions < 1)
        {
            return null;
        }

        var forSockets = fileLimit - openFiles - (reserve / 2);
        return new ConnectionBudget(
            (int)Math.Min(maxConnections, forSessions),
            (int)Math.Min(int.MaxValue, forSockets),
            fileLimit,
            openFiles);
    }
}
