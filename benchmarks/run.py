#!/usr/bin/env python3
"""Run every benchmark, or those named (each prints its results next to a baseline
measured in the same run, with its targets and the machine load):

    python3 benchmarks/run.py [--quick] [--compare DIR] [--installed VENV] [NAME...]

NAME is one of startup, io, log_writes, mirror, scale, era, nbd, logd.  ``--quick`` scales
everything down for a look in a few minutes (3 rounds, 8 MiB files, 100 and 1,000
devices, a 16 GiB era origin): the ratios are then rougher.  ``--compare`` and
``--installed`` go to startup.py (see its docstring).  Each benchmark's own settings
are environment variables, which win over ``--quick``: BENCH_ROUNDS, BENCH_MB,
BENCH_RANDOM, BENCH_LW_MB, BENCH_MIRROR_MB, BENCH_SCALE_SIZES, BENCH_SCALE_BULK_ROUNDS,
BENCH_SCALE_BUDGET, BENCH_ERA_ORIGIN_GIB, BENCH_ERA_WRITES, BENCH_NBD_MB, BENCH_LOGD_REQUESTS,
BENCH_LOGD_WRITES, BENCH_LOGD_CPG, BENCH_LOGD_MB, BENCH_DIR.
Exit status: non-zero if a benchmark failed to run (never because of a number)."""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ALL = ["startup", "io", "log_writes", "mirror", "scale", "era", "nbd", "logd"]
QUICK = {"BENCH_ROUNDS": "3", "BENCH_MB": "8", "BENCH_RANDOM": "2000", "BENCH_LW_MB": "8",
         "BENCH_MIRROR_MB": "8", "BENCH_SCALE_SIZES": "100,1000",
         "BENCH_SCALE_BULK_ROUNDS": "1", "BENCH_SCALE_BUDGET": "60",
         "BENCH_ERA_ORIGIN_GIB": "16", "BENCH_ERA_WRITES": "1000",
         "BENCH_NBD_MB": "8", "BENCH_LOGD_REQUESTS": "1000", "BENCH_LOGD_WRITES": "100",
         "BENCH_LOGD_CPG": "200", "BENCH_LOGD_MB": "8"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--compare", metavar="DIR")
    p.add_argument("--installed", metavar="VENV")
    p.add_argument("names", nargs="*", metavar="NAME")
    a = p.parse_args(argv)
    unknown = [n for n in a.names if n not in ALL]
    if unknown:
        p.error("unknown benchmark %s (one of %s)" % (", ".join(unknown), ", ".join(ALL)))
    env = dict(os.environ)
    if a.quick:
        env = dict(QUICK, **env)
    rc = 0
    for n in a.names or ALL:
        argv_ = [sys.executable, os.path.join(HERE, n + ".py")]
        if n == "startup":
            argv_ += ["--compare", a.compare] if a.compare else []
            argv_ += ["--installed", a.installed] if a.installed else []
        sys.stdout.flush()
        r = subprocess.run(argv_, env=env).returncode
        if r:
            print("%s.py: exit status %d" % (n, r))
        rc |= r
        print()
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
