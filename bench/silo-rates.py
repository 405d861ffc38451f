#!/usr/bin/env python3
"""What each process of a scale-cost run did per second while the connect stage's connects were made: CPU by thread
(thread-pool workers, socket event threads, the timer thread, the rest), context switches (bench/proc-threads.py) and,
for the silos, the Orleans and runtime counters dotnet-counters wrote (messages received, directory calls made to and
answered for other silos, activations, thread-pool work items). The window starts when the load tool started (two
seconds after the sampling) and lasts as long as the tool says its connects took.

usage: silo-rates.py RUN_DIR        (a silosN directory of PROC_THREADS=1 ORLEANS_COUNTERS=1 bench/scale-cost.sh)
"""
import collections
import csv
import datetime
import glob
import json
import os
import re
import sys

COUNTERS = [
    ("Orleans messages received", "orleans-messaging-processing-ima-received (Count / 1 sec)"),
    ("… of which calls from gateways", "orleans-gateway-received (Count / 1 sec)"),
    ("messages delivered without leaving the silo", "orleans-messaging-sent-local (Count / 1 sec)"),
    ("session activations created", "orleans-catalog-activation-created (Count / 1 sec)[grain_type=clientsession]"),
    ("directory lookups sent to another silo", "orleans-directory-lookups-remote-sent (Count / 1 sec)"),
    ("directory lookups answered for another silo", "orleans-directory-lookups-remote-received (Count / 1 sec)"),
    ("directory registrations sent to another silo", "orleans-directory-registrations-single-act-remote-sent (Count / 1 sec)"),
    ("directory registrations answered for another silo", "orleans-directory-registrations-single-act-remote-received (Count / 1 sec)"),
    ("thread-pool work items", "dotnet.thread_pool.work_item.count ({work_item} / 1 sec)"),
    ("timers (count)", "dotnet.timer.count ({timer})"),
]
THREADS = [("thread-pool workers", ".NET TP Worker"), ("socket event threads", ".NET Sockets"), ("the timer thread", ".NET Timer")]


def main():
    run = sys.argv[1]
    rows = [json.loads(line) for line in open(f"{run}/connect.threads.jsonl")]
    log = open(f"{run}/connect.log").read()
    m = re.search(r"connected ([\d,]+), failed \d+ in ([\d.]+) s", log)
    connects, seconds = int(m.group(1).replace(",", "")), float(m.group(2))
    start = rows[0]["time"] + 2
    end = start + seconds
    first = min(rows, key=lambda r: abs(r["time"] - start))
    last = min(rows, key=lambda r: abs(r["time"] - end))
    span = last["time"] - first["time"]
    names = [n for n in last if n != "time"]
    table = collections.OrderedDict()
    for name in names:
        a, b = first[name], last[name]
        ticks = collections.Counter()
        for thread, value in b["threads"].items():
            ticks[thread.split(":", 1)[1]] += value - a["threads"].get(thread, 0)
        tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
        table.setdefault("CPU ms, all threads", {})[name] = sum(ticks.values()) * tick_ms / span
        for label, thread in THREADS:
            table.setdefault(f"… {label}", {})[name] = ticks[thread] * tick_ms / span
        table.setdefault("voluntary context switches", {})[name] = (b["voluntary"] - a["voluntary"]) / span
        table.setdefault("involuntary context switches", {})[name] = (b["involuntary"] - a["involuntary"]) / span
        path = f"{run}/{name}.connect.counters.csv"
        if not os.path.exists(path):
            continue
        sums, gauges = collections.defaultdict(float), collections.defaultdict(list)
        for row in csv.DictReader(open(path, newline="")):
            at = datetime.datetime.strptime(row["Timestamp"], "%m/%d/%Y %H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
            if not start < at <= end + 1:
                continue
            try:
                value = float(row["Mean/Increment"] or 0)
            except ValueError:
                continue
            if row["Counter Type"] == "Rate":
                sums[row["Counter Name"]] += value
            else:
                gauges[row["Counter Name"]].append(value)
        for label, counter in COUNTERS:
            if counter in gauges:
                table.setdefault(label, {})[name] = sum(gauges[counter]) / len(gauges[counter])
            else:
                table.setdefault(label, {})[name] = sums.get(counter, 0.0) / seconds
    print(f"{connects:,} connects in {seconds:.1f} s ({connects / seconds:.0f}/s); per second:")
    print("| per second | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, values in table.items():
        print(f"| {label} | " + " | ".join(f"{values[n]:,.1f}" if n in values else "" for n in names) + " |")


if __name__ == "__main__":
    main()
