#!/usr/bin/env python3
"""The tables of bench/scale-cost.sh from its snapshots and the load tool's JSON results.

    scale-report.py OUT CONNECTIONS SUBSCRIPTIONS RETAINED SILO_COUNT...

Every CPU figure is summed over the processes (etcd, silos, gateways; or mosquitto) with each process's idle CPU rate
(from the 5 idle seconds before the stages) times the stage's length taken out.
"""
import json
import os
import sys

out, subscriptions, retained = sys.argv[1], int(sys.argv[3]), int(sys.argv[4])
runs = (["mosquitto"] if os.path.isdir(os.path.join(out, "mosquitto")) else []) + [f"silos{n}" for n in sys.argv[5:]]


def load(run, name):
    path = os.path.join(out, run, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def members(snap, prefix=""):
    return [k for k, v in snap.items() if isinstance(v, dict) and "cpu" in v and k.startswith(prefix)]


def cpu(run, a, b, prefix=""):
    """CPU seconds from snapshot a to b over the processes named prefix*, idle use taken out."""
    idle, base, sa, sb = load(run, "idle"), load(run, "base"), load(run, a), load(run, b)
    if not (sa and sb):
        return None
    total = 0.0
    for name in members(sb, prefix):
        if name not in sa:
            continue
        rate = (base[name]["cpu"] - idle[name]["cpu"]) / (base["time"] - idle["time"]) if idle and name in idle else 0
        total += sb[name]["cpu"] - sa[name]["cpu"] - rate * (sb["time"] - sa["time"])
    return total


def delta(run, a, b, name, key):
    sa, sb = load(run, a), load(run, b)
    if not (sa and sb) or name not in sa or name not in sb or key not in sa[name] or key not in sb[name]:
        return None
    return sb[name][key] - sa[name][key]


def total_delta(run, a, b, prefix, key):
    sb = load(run, b)
    if not sb:
        return None
    values = [delta(run, a, b, n, key) for n in members(sb, prefix)]
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def loopback(run, a, b):
    sa, sb = load(run, a), load(run, b)
    if not (sa and sb) or "loopback_bytes" not in sa or "loopback_bytes" not in sb:
        return None
    return sb["loopback_bytes"] - sa["loopback_bytes"]


def get(r, *keys):
    for k in keys:
        if r is None:
            return None
        r = r.get(k)
    return r


def f(v, fmt="{:,.0f}"):
    return "n/a" if v is None else fmt.format(v)


def per(v, n, scale=1.0):
    return None if v is None or not n else v * scale / n


summary = []
for run in runs:
    connect, subscribe = load(run, "connect.tool"), load(run, "subscribe.tool")
    messages, subroute = load(run, "messages.tool"), load(run, "subroute.tool")
    c = get(connect, "connect", "connected") or 0
    c2 = get(subscribe, "connect", "connected") or 0
    routes = c2 * subscriptions
    delivered = get(messages, "deliveredTotal")
    snap = load(run, "subscribed") or load(run, "connected") or {}
    silos = sorted(members(snap, "silo"))
    cpu_connect = per(cpu(run, "base", "connected"), c, 1000)
    cpu_subscribe_stage = cpu(run, "after-connect", "subscribed")
    cpu_subscribe = None
    if cpu_subscribe_stage is not None and cpu_connect is not None and routes:
        cpu_subscribe = (cpu_subscribe_stage - cpu_connect / 1000 * c2) / routes * 1000
    cpu_message = per(cpu(run, "before-messages", "after-messages"), delivered, 1e6)
    rows = [
        ("connects/s (persistent, no subscription)", f(get(connect, "connect", "achievedRate"))),
        ("CONNACK p99 ms", f(get(connect, "connect", "connAckMs", "p99"), "{:.1f}")),
        ("connects/s with subscriptions (stage 2)", f(get(subscribe, "connect", "achievedRate"))),
        ("CPU ms per connect, all processes", f(cpu_connect, "{:.2f}")),
        ("CPU ms per subscribe, all processes", f(cpu_subscribe, "{:.2f}")),
        ("CPU µs per delivered message, all processes", f(cpu_message, "{:.0f}")),
        (f"messages delivered (QoS 1 at {get(messages, 'rate') or 0:,.0f}/s)", f(delivered)),
        ("delivery latency p99 ms", f(get(messages, "latencyMs", "p99"), "{:.1f}")),
        ("RSS bytes per connection, all processes", f(per(total_delta(run, "base", "connected", "", "rss"), c))),
        ("gateway RSS bytes per connection (sum of gateways)", f(per(total_delta(run, "base", "connected", "gateway", "rss"), c))),
        ("loopback bytes per delivered message (every hop)", f(per(loopback(run, "before-messages", "after-messages"), delivered))),
        ("loopback bytes per connect (every hop)", f(per(loopback(run, "base", "connected"), c))),
        ("loopback bytes per subscribe (stage 2 minus its connects)", f(None if routes == 0 or loopback(run, "after-connect", "subscribed") is None or loopback(run, "base", "connected") is None
                                                                       else (loopback(run, "after-connect", "subscribed") - loopback(run, "base", "connected") / c * c2) / routes)),
        ("bytes the silos wrote to files per connect", f(per(total_delta(run, "base", "connected", "silo", "written"), c))),
        ("bytes the silos wrote to files per subscribe (stage 2, its connects included)", f(per(total_delta(run, "after-connect", "subscribed", "silo", "written"), routes))),
        ("etcd DB bytes per session", f(per(total_delta(run, "base", "connected", "etcd", "db_bytes"), c))),
        ("etcd puts per session", f(per(total_delta(run, "base", "connected", "etcd", "puts"), c), "{:.2f}")),
        ("etcd txns per session", f(per(total_delta(run, "base", "connected", "etcd", "txns"), c), "{:.2f}")),
    ]
    for silo in silos:
        session_rss = per(delta(run, "base", "connected", silo, "rss"), c)
        stage_rss = delta(run, "after-connect", "subscribed", silo, "rss")
        route_rss = None
        if stage_rss is not None and session_rss is not None and routes:
            route_rss = (stage_rss - session_rss * c2) / routes
        rows += [
            (f"{silo}: RSS bytes per session", f(session_rss)),
            (f"{silo}: managed heap bytes per session (after last GC)", f(per(delta(run, "base", "connected", silo, "gc_heap_bytes"), c))),
            (f"{silo}: RSS bytes per route", f(route_rss)),
            (f"{silo}: routes held (mqtt_subscriptions) / sessions", f"{f(get(snap, silo, 'subscriptions'))} / {f(get(snap, silo, 'sessions'))}"),
            (f"{silo}: RSS bytes per retained message", f(per(delta(run, "before-retained", "after-retained", silo, "rss"), retained))),
            (f"{silo}: CPU ms per connect", f(per(cpu(run, "base", "connected", silo), c, 1000), "{:.2f}")),
            (f"{silo}: RSS MiB at the end", f(per(get(load(run, "after-retained"), silo, "rss"), 1048576))),
        ]
    reconnect = load(run, "reconnect.tool")
    if reconnect:
        r = get(reconnect, "connect", "connected") or 0
        rows += [
            ("reconnects/s (persistent sessions that exist)", f(get(reconnect, "connect", "achievedRate"))),
            ("CPU ms per reconnect, all processes", f(per(cpu(run, "before-reconnect", "reconnected"), r, 1000), "{:.2f}")),
            ("loopback bytes per reconnect (every hop)", f(per(loopback(run, "before-reconnect", "reconnected"), r))),
        ]
        rows += [(f"{silo}: CPU ms per reconnect", f(per(cpu(run, "before-reconnect", "reconnected", silo), r, 1000), "{:.2f}")) for silo in silos]
    if subroute:
        rows += [
            ("SUBSCRIBE→SUBACK p50 / p99 ms", f"{f(get(subroute, 'route', 'subAckMs', 'p50'), '{:.1f}')} / {f(get(subroute, 'route', 'subAckMs', 'p99'), '{:.1f}')}"),
            ("SUBACK→delivered p50 / p99 ms", f"{f(get(subroute, 'route', 'routeMs', 'p50'), '{:.1f}')} / {f(get(subroute, 'route', 'routeMs', 'p99'), '{:.1f}')}"),
            ("subroute misses", f(get(subroute, "route", "misses"))),
        ]
    print(f"\n### {run}: {c:,} persistent connects; {c2:,} connects with {subscriptions} subscriptions each ({routes:,} routes)\n")
    print("| measure | value |\n|---|---:|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    summary.append((run, cpu_connect, cpu_subscribe, cpu_message, len(silos),
                    [get(snap, s, "subscriptions") for s in silos]))

print("\n### Across runs\n")
print("| run | CPU ms/connect | CPU ms/subscribe | CPU µs/message | routes per silo |\n|---|---:|---:|---:|---|")
for run, a, b, m, n, routes in summary:
    print(f"| {run} | {f(a, '{:.2f}')} | {f(b, '{:.2f}')} | {f(m, '{:.0f}')} | {' / '.join(f(r) for r in routes) if routes else ''} |")
