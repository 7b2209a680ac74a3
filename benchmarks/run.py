#!/usr/bin/env python3
"""Run every benchmark (each prints its results next to a baseline from the same run).
Sizes can be scaled down for a quick look: BENCH_MB, BENCH_LW_MB, BENCH_MIRROR_MB,
BENCH_ERA_ORIGIN_GIB, BENCH_RUNS."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ALL = ["startup.py", "io.py", "log_writes.py", "mirror.py", "era.py"]


def main():
    names = sys.argv[1:] or ALL
    rc = 0
    for n in names:
        p = subprocess.run([sys.executable, os.path.join(HERE, n if n.endswith(".py") else n + ".py")])
        rc |= p.returncode
        print()
    return rc


if __name__ == "__main__":
    sys.exit(main())
