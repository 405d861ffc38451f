using System.Diagnostics;
using System.Diagnostics.Metrics;
using Orleans.Mqtt.Telemetry;

namespace Orleans.Mqtt.Ownership.Etcd;

/// <summary>The instruments of the etcd ownership store, on the broker's meter.</summary>
internal sealed class EtcdOwnershipMetrics
{
    public const string CommitsName = "mqtt.ownership.commits";
    public const string BatchSizeName = "mqtt.ownership.batch.size";
    public const string TxnDurationName = "mqtt.ownership.txn.duration";
    public const string CompactionsName = "mqtt.ownership.compactions";

    private static readonly KeyValuePair<string, object?> Committed = new("outcome", "committed");
    private static readonly KeyValuePair<string, object?> Conflict = new("outcome", "conflict");
    private static readonly KeyValuePair<string, object?> Failed = new("outcome", "failed");
    private static readonly KeyValuePair<string, object?> Compacted = new("outcome", "compacted");

    private readonly Counter<long> _commits;
    private readonly Histogram<int> _batchSize;
    private readonly Histogram<double> _txnDuration;
    private readonly Counter<long> _compactions;

    public EtcdOwnershipMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MqttMetrics.MeterName);
        _commits = meter.CreateCounter<long>(CommitsName, description: "Ownership commits and releases sent to etcd, by outcome (committed, conflict, failed).");
        _batchSize = meter.CreateHistogram<int>(BatchSizeName, unit: "{operation}", description: "Operations per etcd ownership transaction.");
        _txnDuration = meter.CreateHistogram<double>(TxnDurationName, unit: "ms", description: "Round trip of one etcd ownership transaction.");
        _compactions = meter.CreateCounter<long>(CompactionsName, description: "Compactions of etcd's revision history made by this process, by outcome (compacted, failed).");
    }

    public void RecordCommitted(int count) => _commits.Add(count, Committed);

    public void RecordConflict() => _commits.Add(1, Conflict);

    public void RecordFailed(int count) => _commits.Add(count, Failed);

    public void RecordCompaction() => _compactions.Add(1, Compacted);

    public void RecordCompactionFailed() => _compactions.Add(1, Failed);

    public void RecordTxn(int operations, long startTimestamp)
    {
        _batchSize.Record(operations);
        _txnDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds);
    }
}
