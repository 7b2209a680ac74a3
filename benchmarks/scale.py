#!/usr/bin/env python3
"""The simulator at scale (issue 13): the time of one `dmctl info`, `create` and
`remove` (CLI processes through the simulator) with 100, 1,000 and 10,000 devices
present, and of one `dmctl create --concise` creating 100, 1,000 and 10,000 devices.
Targets: info, create and remove with 10,000 present <= 1.2x the same with 100 present;
bulk creation per device at 10,000 <= 1.2x at 100, and of 10,000 devices <= 10 s (1 ms
per device).  Ratios are against the smallest size (every size is held to the 1.2x).

    python3 benchmarks/scale.py [--sizes 100,1000,10000] [--rounds 5]
                                [--bulk-rounds 3] [--budget 300] [--tree DIR]

Each size has its own state dir, filled through the library in one transaction
(``common.populate``) with linear devices of 8 sectors on one sparse file.  A round
runs, for every size in a rotated order, `info dev00000`, `create bench --table ...`
and `remove bench`, each a CLI process timed from the outside (wall, and the CPU time
of the child); the bulk rounds (BENCH_SCALE_BULK_ROUNDS) run one `create --concise`
(the devices on stdin) per size into a fresh, empty state dir.  No measurement waits
longer than the budget (seconds, BENCH_SCALE_BUDGET): populating, a command or a bulk
creation that runs past it is killed and that size (and every larger one) is printed
as "not measured: ... took > N s".  Printed: the medians with their ranges, the ratio
of the medians with the range of the per-round ratios, for wall and CPU time, and the
load average.  Exit status 0 whatever the numbers: a benchmark reports."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import (ENTRY, NotMeasured, Skip, env, fresh_file,  # noqa: E402
                               header, interleaved, load, median_range, num, per_unit,
                               populate, ratio_rows, report_ratios, report_times, run_timed)

CMDS = ("info", "create", "remove")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=os.environ.get("BENCH_SCALE_SIZES", "100,1000,10000"),
                   help="numbers of devices, comma-separated (default %(default)s)")
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")),
                   help="rounds of info/create/remove (default %(default)s)")
    p.add_argument("--bulk-rounds", type=int,
                   default=int(os.environ.get("BENCH_SCALE_BULK_ROUNDS", "3")),
                   help="rounds of create --concise (default %(default)s)")
    p.add_argument("--budget", type=float,
                   default=float(os.environ.get("BENCH_SCALE_BUDGET", "300")),
                   help="seconds one measurement may take (default %(default)s)")
    p.add_argument("--tree", default=ROOT,
                   help="the source tree to measure (PYTHONPATH; default this checkout)")
    a = p.parse_args(argv)
    a.sizes = sorted({int(s) for s in a.sizes.split(",") if s.strip()})
    if not a.sizes or a.sizes[0] < 1:
        p.error("--sizes needs positive numbers")
    return a


def main(argv=None):
    a = parse_args(argv)
    sizes, budget = a.sizes, a.budget
    load_before = load()
    e = env({"DMCTL_BACKEND": "sim"}, path=os.path.abspath(a.tree))
    cli = [sys.executable, "-c", ENTRY]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        disk = os.path.join(d, "disk.img")
        fresh_file(disk, (sizes[-1] + 1) * 4096)        # room for 8 sectors per device
        too_slow = {}           # what -> the first size that ran past the budget

        def over(what, n):
            first = too_slow.get(what)
            if first is not None and n >= first[0]:
                raise Skip(first[1] if n == first[0] else "skipped (%s)" % first[1])

        def run(what, n, why, argv, sim, **kw):
            try:
                return run_timed(cli + argv, dict(e, DMCTL_SIM_DIR=sim), cwd=d,
                                 timeout=budget, **kw)
            except subprocess.TimeoutExpired:
                too_slow[what] = (n, "%s took > %g s" % (why, budget))
                raise Skip(too_slow[what][1])

        # ---- per-command times with N devices present
        sims, populated, fill_times = {}, {}, {}
        for n in sizes:
            sims[n] = os.path.join(d, "sim%d" % n)
            try:
                over("populate", n)
                t = time.perf_counter()
                populate(sims[n], disk, n, env_=e, timeout=budget)
                fill_times[n] = time.perf_counter() - t
                populated[n] = True
            except subprocess.TimeoutExpired:
                too_slow["populate"] = (n, "populating %d devices took > %g s" % (n, budget))
                populated[n] = too_slow["populate"][1]
            except Skip as s:
                populated[n] = str(s)
        table = "0 8 linear %s 0" % disk

        def commands(n):
            def case():
                if populated[n] is not True:
                    raise Skip(populated[n])
                over("cmd", n)
                sim = sims[n]
                return {
                    "info %d" % n: run("cmd", n, "info with %d devices" % n,
                                       ["info", "dev00000"], sim),
                    "create %d" % n: run("cmd", n, "create with %d devices" % n,
                                         ["create", "bench", "--table", table], sim),
                    "remove %d" % n: run("cmd", n, "remove with %d devices" % n,
                                         ["remove", "bench"], sim),
                }
            return case

        for n in sizes:         # warm-up: byte-compilation, the page cache of each state
            if populated[n] is True:
                try:
                    subprocess.run(cli + ["info", "dev00000"], cwd=d, timeout=budget,
                                   env=dict(e, DMCTL_SIM_DIR=sims[n]),
                                   stdout=subprocess.DEVNULL)
                except subprocess.TimeoutExpired:
                    pass            # the first round says so
        times = interleaved({"cmds %d" % n: commands(n) for n in sizes}, a.rounds)
        for n in sizes:
            skipped = times.get("cmds %d" % n)      # NotMeasured, or absent
            for c in CMDS:
                if skipped is not None:
                    times["%s %d" % (c, n)] = skipped
            shutil.rmtree(sims[n], ignore_errors=True)
        load_mid = load()

        # ---- bulk creation
        def bulk(n):
            spec = ";".join("b%05d,,,,0 8 linear %s %d" % (i, disk, i * 8)
                            for i in range(n)).encode()

            def case():
                over("bulk", n)
                sim = os.path.join(d, "bulk%d" % n)
                shutil.rmtree(sim, ignore_errors=True)
                try:
                    return run("bulk", n, "bulk creation of %d devices" % n,
                               ["create", "--concise"], sim, input=spec)
                finally:
                    shutil.rmtree(sim, ignore_errors=True)
            return case

        bulk_times = interleaved({"bulk %d" % n: bulk(n) for n in sizes}, a.bulk_rounds)

    # ---- report
    base = sizes[0]
    header("the simulator with %s devices present, per CLI command"
           % ", ".join(str(n) for n in sizes), a.rounds, load_before, load_mid)
    print("   (states filled through the library in one transaction: %s)" % ", ".join(
        "%d devices in %s s" % (n, num(t)) for n, t in fill_times.items()))
    report_times(times, [("%s with %d present" % (c, n), "%s %d" % (c, n))
                         for c in CMDS for n in sizes])
    rows = ratio_rows(times, [("%s, %d present vs %d" % (c, n, base), "%s %d" % (c, n),
                               "%s %d" % (c, base), 1.2)
                              for c in CMDS for n in sizes[1:]])
    if rows:
        report_ratios(rows)
    print()
    header("bulk creation: one `dmctl create --concise` of N devices", a.bulk_rounds, load_mid)
    per_dev = {"bulk %d" % n: per_unit(bulk_times.get("bulk %d" % n, NotMeasured("no times")), n)
               for n in sizes}
    w = len("bulk creation of %d devices" % sizes[-1])
    for n in sizes:
        t = bulk_times.get("bulk %d" % n)
        label = "%-*s" % (w, "bulk creation of %d devices" % n)
        if not isinstance(t, list):
            print("%s  not measured: %s; target <= 1.0 ms per device (10 s for 10000)"
                  % (label, t))
            continue
        m, lo, hi = median_range(t)
        pm = median_range(per_dev["bulk %d" % n], 0, 1e3)[0]
        print("%s  %s s (%s-%s), %s ms per device %s; target <= 1.0 ms per device "
              "(10 s for 10000)" % (label, num(m), num(lo), num(hi), num(pm),
                                    "meets" if pm <= 1.0 else "misses"))
    rows = ratio_rows(per_dev, [("bulk creation per device, %d vs %d" % (n, base),
                                 "bulk %d" % n, "bulk %d" % base, 1.2) for n in sizes[1:]])
    if rows:
        report_ratios(rows)


if __name__ == "__main__":
    main()
