#!/usr/bin/env python3
"""Sums the Orleans counters that dotnet-counters wrote (--format csv) for each silo during one stage and prints them
per unit of that stage (e.g. per connect): silo-to-silo messages received, forwarded calls, grain directory calls.

usage: orleans-counters.py UNITS FILE.csv [FILE.csv ...]
"""
import csv
import os
import re
import sys

# The counters that say how many messages a unit of work sends between silos and what the grain directory does.
WANTED = re.compile(r"messag.*(received|sent)|rerout|forward|directory.*(lookup|regist)|activation.*created", re.I)


def main():
    units = float(sys.argv[1])
    totals = {}
    for path in sys.argv[2:]:
        if not os.path.exists(path):
            print("missing:", path, "(dotnet-counters not installed or not attached?)")
            continue
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                name = row.get("Counter Name", "")
                kind = row.get("Counter Type", "")
                if not WANTED.search(name) or kind != "Rate":
                    continue
                try:
                    value = float(row.get("Mean/Increment", "0") or 0)
                except ValueError:
                    continue
                totals[name] = totals.get(name, 0.0) + value
    if not totals:
        print("no Orleans counters found in", " ".join(sys.argv[2:]))
        return
    print(f"Orleans counters, all silos, per unit ({units:g} units):")
    for name in sorted(totals):
        print(f"  {totals[name] / units:8.3f}  {name}")


if __name__ == "__main__":
    main()
