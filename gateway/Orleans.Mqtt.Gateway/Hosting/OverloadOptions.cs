namespace Orleans.Mqtt.Gateway;

/// <summary>
/// When a gateway process counts as overloaded (configuration section <c>Mqtt:Overload</c>). It is sampled on a timer,
/// not per packet. While overloaded, new CONNECTs get CONNACK 0x89 Server busy (MQTT 5) / 3 (3.1.1) and inbound QoS 0
/// publishes are dropped and counted; connections already open and QoS 1/2 traffic go on.
/// </summary>
public sealed class OverloadOptions
{
    /// <summary>
    /// Work items waiting in the .NET thread pool above which the process is overloaded
    /// (<c>Mqtt:Overload:MaxThreadPoolQueue</c>, 0 = not checked). The default, 50000, is seconds of backlog even for
    /// small items: far above what a busy gateway shows, and reached only when the process cannot keep up.
    /// </summary>
    public long MaxThreadPoolQueue { get; set; } = 50_000;

    /// <summary>
    /// Managed heap bytes above which the process is overloaded (<c>Mqtt:Overload:MemoryBudgetBytes</c>); 0 = 90 % of
    /// the memory the GC may use (the container's limit or the machine's memory, as <c>GC.GetGCMemoryInfo</c> reports).
    /// </summary>
    public long MemoryBudgetBytes { get; set; }

    /// <summary>How often the thread pool and the heap are sampled (<c>Mqtt:Overload:SampleInterval</c>).</summary>
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromSeconds(1);
}
