#!/usr/bin/env python3
"""Samples, once a second until stopped, each process's CPU per thread (by thread name) and its context switches, for
bench/silo-rates.py: a JSON line per sample with the time and, per NAME, each thread's user + system clock ticks and the
voluntary and involuntary context switches summed over its threads.

usage: proc-threads.py OUT.jsonl NAME:PID[:URL] ...
"""
import json
import os
import sys
import time


def sample(pid):
    threads = {}
    voluntary = involuntary = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between the listing and the read
        # The name is in parentheses and may hold spaces; utime and stime are the 12th and 13th fields after it.
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        threads[f"{tid}:{name}"] = int(fields[11]) + int(fields[12])
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                voluntary += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                involuntary += int(line.split()[1])
    return {"threads": threads, "voluntary": voluntary, "involuntary": involuntary}


def main():
    members = [arg.split(":")[:2] for arg in sys.argv[2:]]
    with open(sys.argv[1], "a") as out:
        while True:
            row = {"time": time.time()}
            for name, pid in members:
                try:
                    row[name] = sample(pid)
                except FileNotFoundError:
                    pass  # the process has ended
            out.write(json.dumps(row) + "\n")
            out.flush()
            time.sleep(1)


if __name__ == "__main__":
    main()
