#!/usr/bin/env python3
"""Difference of two heap dumps by type: what the second dump holds more (or less) of than the first.

    bench/gcdump-diff.py BEFORE.gcdump AFTER.gcdump [--per N] [--top K]

Each dump is read with `dotnet-gcdump report`, which gives per type the count of live objects and one object's size
(arrays: per size bucket, "Bytes > 1K"); a type's bytes here are that size times the count, exact for types of one
size and an estimate for arrays. With --per N the differences are also given per N (connections, sessions). Types
are sorted by the size of their difference.
"""
import argparse
import re
import subprocess
import sys

ROW = re.compile(r"^\s*([\d,]+)\s+([\d,]+)\s+(.+?)\s*$")


def report(path):
    text = subprocess.run(["dotnet-gcdump", "report", path], check=True, capture_output=True, text=True).stdout
    types, total = {}, 0
    heap = re.search(r"([\d,]+)\s+GC Heap bytes", text)
    for line in text.splitlines():
        m = ROW.match(line)
        if not m:
            continue
        size, count, name = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")), m.group(3)
        size *= count
        # The report names the module after the type ("Foo  [Assembly.dll]"); a type's bytes may be split over
        # size buckets ("System.Byte[] (Bytes > 1K)"): keep the buckets apart, they say where the bytes are.
        name = re.sub(r"\s+\[[^\]]*\]$", "", name)
        old = types.get(name, (0, 0))
        types[name] = (old[0] + size, old[1] + count)
        total += size
    return types, int(heap.group(1).replace(",", "")) if heap else total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--per", type=int, default=0, help="divide the differences by this count")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    before, before_total = report(args.before)
    after, after_total = report(args.after)
    rows = []
    for name in set(before) | set(after):
        b, a = before.get(name, (0, 0)), after.get(name, (0, 0))
        if a[0] != b[0] or a[1] != b[1]:
            rows.append((a[0] - b[0], a[1] - b[1], name))
    rows.sort(key=lambda r: -abs(r[0]))
    per = args.per
    print(f"live heap {before_total / 2**20:.1f} MiB -> {after_total / 2**20:.1f} MiB, "
          f"difference {(after_total - before_total) / 2**20:+.1f} MiB"
          + (f" = {(after_total - before_total) / per:+,.0f} bytes per {per:,}" if per else ""))
    print(f"{'bytes':>14} {'count':>10}" + (f" {'B/each':>8} {'n/each':>7}" if per else "") + "  type")
    for size, count, name in rows[: args.top]:
        extra = f" {size / per:>8,.1f} {count / per:>7.2f}" if per else ""
        print(f"{size:>+14,} {count:>+10,}{extra}  {name}")


if __name__ == "__main__":
    sys.exit(main())
