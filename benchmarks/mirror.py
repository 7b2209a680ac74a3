#!/usr/bin/env python3
"""mirror: 1 MiB writes through a 2-leg and a 3-leg mirror (core log, nosync) next to
linear through the simulator (targets: 2 legs >= 0.45x, 3 legs >= 0.3x), and resync
throughput next to a plain copy of a leg (target >= 0.5x).

Every case runs in every round (BENCH_ROUNDS, default 21), in a rotated order, on the
same files in the same directory: leg 0 is also the linear device and the copy's
source, leg 1 the copy's destination.  Each run starts from fresh sparse files (no
cached pages, nothing dirty, ``os.sync()`` before it), so load, page-cache and
writeback effects fall on the baseline and the mirror alike; the medians and the
spread of the per-round ratios are printed with the load average, for wall time and
for CPU time (the simulator is synchronous: on an idle machine the two agree; on a
loaded one the CPU-time ratio is the steadier).  Files are
BENCH_MIRROR_MB (default 64) MiB: a 3-leg run dirties 3x that, which stays well
under the kernel's dirty limits.  BENCH_DIR places the files (default: a temporary
directory).  Exit status 0 whatever the ratios: a benchmark reports, it does not fail.
"""

import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import (Clock, fresh_file, interleaved, load,  # noqa: E402
                               on_device, ratio_rows, report_ratios, sim_writes)

MB = 1 << 20
REGION = 1024   # sectors


def main():
    size = int(os.environ.get("BENCH_MIRROR_MB", "64")) * MB
    rounds = int(os.environ.get("BENCH_ROUNDS", "21"))
    load_before = load()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        os.environ["DMCTL_SIM_DIR"] = os.path.join(d, "sim")
        from dmctl.backend.base import TargetLine
        from dmctl.backend.sim import SimMapper

        legs = [os.path.join(d, "leg%d" % i) for i in range(3)]
        sectors = size >> 9
        m = SimMapper()
        buf = os.urandom(MB)

        def device(name, target, params):
            m.create(name)
            m.load(name, [TargetLine(0, sectors, target, params)])

        def pairs(n):
            return " ".join("%s 0" % p for p in legs[:n])

        def writes(name, target, params, nlegs):
            return lambda: on_device(m, name, target, params, sectors,
                                     sim_writes(name, size, buf),
                                     [(p, size) for p in legs[:nlegs]])

        def filled_source():
            fresh_file(legs[0], size)
            fd = os.open(legs[0], os.O_WRONLY)
            try:
                for off in range(0, size, MB):
                    os.pwrite(fd, buf, off)
            finally:
                os.close(fd)
            fresh_file(legs[1], size)

        def resync():
            # a fresh 2-leg mirror whose first leg holds data, core log: a full resync,
            # timed from its activation (a command already does some background work)
            filled_source()
            device("rs", "mirror", "core 1 %d 2 %s" % (REGION, pairs(2)))
            try:
                with Clock() as c:
                    m.resume("rs")
                    m.run(lambda env: env.run_work(None))
                done, total = m.status("rs")[1][0].params.split()[3].split("/")
                assert done == total, "resync did not finish"
                return c.times
            finally:
                m.remove("rs")

        def copy():
            filled_source()
            with Clock() as c:
                shutil.copyfile(legs[0], legs[1])
            return c.times

        core = "core 2 %d nosync" % REGION
        times = interleaved({
            "linear": writes("lin", "linear", "%s 0" % legs[0], 1),
            "m2": writes("m2", "mirror", "%s 2 %s" % (core, pairs(2)), 2),
            "m3": writes("m3", "mirror", "%s 3 %s" % (core, pairs(3)), 3),
            "resync": resync,
            "copy": copy,
        }, rounds)
        m.close()
    mbs = size / MB
    report_ratios(ratio_rows(times, [
        ("1 MiB writes, 2-leg mirror vs linear", "m2", "linear", 0.45),
        ("1 MiB writes, 3-leg mirror vs linear", "m3", "linear", 0.3),
        ("resync of a leg vs copying it", "resync", "copy", 0.5),
    ], mbs, "MiB/s"), "mirror, %d MiB legs" % mbs, rounds, load_before)


if __name__ == "__main__":
    main()
