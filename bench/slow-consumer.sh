#!/usr/bin/env bash
# A subscriber that never reads: starts the standalone broker on free loopback ports, connects a raw MQTT 3.1.1
# subscriber (QoS 0, never reads after its SUBACK), publishes COUNT messages of SIZE bytes to it at QoS 0, and prints
# the broker's RSS before, at the peak (sampled every 100 ms), and after the subscriber left, with the queued-bytes
# gauge and the slow-consumer drops from /metrics.
#
#   bench/slow-consumer.sh            # COUNT=200 SIZE=1048000 SETTLE=15
#
# SETTLE is how long to wait after the subscriber left before the last RSS sample (the heap trimmer,
# Mqtt:HeapTrimInterval, runs a full collection once the heap stopped growing). Extra broker settings pass through the
# environment (e.g. Mqtt__MaxPendingWriteBytes=4194304). Needs python3, curl and the .NET SDK.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/bench/lib.sh"
count=${COUNT:-200}
size=${SIZE:-1048000}
settle=${SETTLE:-15}

start_standalone orleans-mqtt-slow
trap stop_standalone EXIT

python3 - "$broker" "$mqtt" "$http" "$count" "$size" "$settle" <<'PY'
import socket, struct, sys, time, urllib.request

pid, port, http, count, size, settle = (int(a) for a in sys.argv[1:])

def rss_mib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

def metric(name, label=None):
    text = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics").read().decode()
    total = 0.0
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and (label is None or label in line):
            total += float(line.rsplit(" ", 1)[1])
    return total

def varint(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def packet(header, body):
    return bytes([header]) + varint(len(body)) + body

def utf8(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b

def connect(client_id):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(packet(0x10, utf8("MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + utf8(client_id)))
    assert s.recv(4)[:1] == b"\x20", "no CONNACK"
    return s

topic = "bench/slow-consumer"
drops_before = metric("mqtt_messages_dropped_total", 'reason="slow_consumer"')
sent_before = metric("mqtt_messages_sent_total")
before = rss_mib()
sub = connect("never-reads")
sub.sendall(packet(0x82, struct.pack(">H", 1) + utf8(topic) + b"\x00"))
assert sub.recv(5)[:1] == b"\x90", "no SUBACK"

pub = connect("publisher")
message = packet(0x30, utf8(topic) + bytes(size))
peak, peak_pending = before, 0.0
start = time.monotonic()
for i in range(count):
    pub.sendall(message)
    if i % 10 == 0:
        peak = max(peak, rss_mib())
while True:
    peak = max(peak, rss_mib())
    pending = metric("mqtt_connections_pending_write_bytes")
    peak_pending = max(peak_pending, pending)
    dropped = metric("mqtt_messages_dropped_total", 'reason="slow_consumer"') - drops_before
    sent = metric("mqtt_messages_sent_total") - sent_before
    queued = round(pending / (size + len(topic)))
    if sent + dropped + queued >= count or time.monotonic() - start > 120:
        break
    time.sleep(0.1)
published = time.monotonic() - start

sub.close()   # unread data in its receive buffer: the close resets the connection
left = time.monotonic()
while metric("mqtt_connections_pending_write_bytes") > 0 and time.monotonic() - left < 30:
    time.sleep(0.1)
released = time.monotonic() - left
pub.close()
time.sleep(settle)
after = rss_mib()

print(f"published {count} x {size} B QoS 0 to a subscriber that never reads in {published:.1f} s")
print(f"written {sent:.0f}, dropped (slow_consumer) {dropped:.0f}, queued at the end {queued}")
print(f"queued bytes (mqtt_connections_pending_write_bytes): peak {peak_pending / 1048576:.2f} MiB, 0 again {released:.1f} s after the subscriber left")
print(f"broker RSS: before {before:.0f} MiB, peak {peak:.0f} MiB (+{peak - before:.0f}), {settle} s after the subscriber left {after:.0f} MiB (+{after - before:.0f})")
PY
