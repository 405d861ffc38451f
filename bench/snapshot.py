#!/usr/bin/env python3
"""One sample of the broker processes for the scale scripts (bench/scale-cost.sh, bench/fleet-100k.sh).

    snapshot.py OUT.json NAME:PID[:METRICS_URL] ...

For each process: CPU seconds so far (utime + stime from /proc/PID/stat), VmRSS (/proc/PID/status), bytes read and
passed to read(2)/write(2) (rchar, wchar from /proc/PID/io: files and pipes; socket sends and receives through
send(2)/recv(2) are not in them), once per sample the bytes sent over the loopback interface (/proc/net/dev: every hop
between the processes on one machine, machine-wide) and, when a metrics URL is given, the figures the scripts compare
from its Prometheus text: for a silo its route replica's sessions, subscriptions (and of them the exact ones),
retained messages, the replica writes it has sent and the managed heap after the last collection; for etcd its
database size, puts, transactions and keys. The raw metrics text goes next to OUT.json (OUT.NAME.metrics) for later
reading.
"""
import json
import os
import sys
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")
UNIT_SUFFIXES = {"bytes", "total", "ratio", "1", "By"}

# Prometheus names summed over their labels; the OpenTelemetry exporter may add a unit suffix, so a name matches its
# base and the base followed by "_<unit>".
WANTED = {
    "mqtt_sessions": "sessions",
    "mqtt_subscriptions": "subscriptions",
    "mqtt_subscriptions_exact": "exact_subscriptions",
    "mqtt_replica_writes": "replica_writes",
    "mqtt_retained": "retained",
    "dotnet_gc_last_collection_heap_size": "gc_heap_bytes",
    "mqtt_connections": "connections",
    "etcd_mvcc_db_total_size_in_bytes": "db_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes": "db_in_use_bytes",
    "etcd_mvcc_put_total": "puts",
    "etcd_mvcc_txn_total": "txns",
    "etcd_mvcc_delete_total": "deletes",
    "etcd_debugging_mvcc_keys_total": "keys",
    "etcd_disk_wal_fsync_duration_seconds_count": "wal_fsyncs",
}


def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of stat(5)
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    io = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                key, value = line.split(":")
                io[key] = int(value)
    except OSError:
        pass
    return cpu, rss, io.get("rchar", 0), io.get("wchar", 0)


def loopback_bytes():
    """Bytes sent over the loopback interface so far (every hop between the processes and the load tool)."""
    try:
        with open("/proc/net/dev") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name.strip() == "lo":
                    return int(rest.split()[8])  # transmit bytes (on lo, equal to receive bytes)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def metrics(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError as error:
        return {}, f"# {url}: {error}\n"
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{") if "{" in line.split(" ", 1)[0] else line.partition(" ")
        rest = rest.rsplit("}", 1)[1] if "}" in rest else rest
        for base, key in WANTED.items():
            if name == base or (name.startswith(base + "_") and name[len(base) + 1:] in UNIT_SUFFIXES):
                try:
                    values[key] = values.get(key, 0) + float(rest.split()[0])
                except (ValueError, IndexError):
                    pass
    return values, text


def main():
    out = sys.argv[1]
    sample = {"time": time.time(), "loopback_bytes": loopback_bytes()}
    for spec in sys.argv[2:]:
        name, pid, *url = spec.split(":", 2)
        try:
            cpu, rss, read, written = proc(int(pid))
        except OSError:
            sample[name] = {"pid": int(pid), "gone": True}
            continue
        entry = {"pid": int(pid), "cpu": cpu, "rss": rss, "read": read, "written": written}
        if url:
            values, text = metrics(url[0])
            entry.update(values)
            with open(f"{out[:-5] if out.endswith('.json') else out}.{name}.metrics", "w") as f:
                f.write(text)
        sample[name] = entry
    with open(out, "w") as f:
        json.dump(sample, f)


if __name__ == "__main__":
    main()
