namespace Orleans.Mqtt.Grains;

/// <summary>
/// Answers the admin API's listings from one silo's replica (the grain is pinned to the silo named by its key, a silo
/// address as <c>SiloAddress.ToParsableString</c> writes it). A caller asks every active silo for a page and merges
/// them, so no process ever holds the whole fleet's list.
/// </summary>
public interface IAdminQueryGrain : IGrainWithStringKey
{
    /// <summary>
    /// Up to <see cref="ClientQuery.Limit"/> of the clients this silo owns, in ordinal client-id order after
    /// <see cref="ClientQuery.After"/>, that match the query's filters. A silo owns the sessions homed on it (stored on
    /// its disk) and the memory-only sessions whose activation it hosts: over all silos, each client once.
    /// </summary>
    Task<ClientSummary[]> ListClients(ClientQuery query);

    /// <summary>
    /// Up to <paramref name="limit"/> retained messages whose topic matches <paramref name="filter"/>, in ordinal topic
    /// order after <paramref name="after"/> (null: from the start). Every silo holds every retained message.
    /// </summary>
    Task<RetainedMessageInfo[]> ListRetained(string filter, string? after, int limit);
}
