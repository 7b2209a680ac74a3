#!/usr/bin/env python3
"""The simulator's I/O path: sequential 1 MiB writes and reads through a linear device
next to the same I/O on a file directly (target >= 0.9x, issue 13), and 4 KiB random
writes through linear next to direct ones (no ratio target; the per-bio overhead and
the rate are printed, target >= 10,000 writes/s).

Every case runs in every round (BENCH_ROUNDS, default 21), in a rotated order, on the
same file: each run starts from a fresh sparse file (no cached pages, nothing dirty,
``os.sync()`` before it); a read run first fills the file (untimed), so reads come
from the page cache on both sides.  The linear device is created on the file for each
run and removed after it.  Printed: the medians, the ratio of the medians with the
range of the per-round ratios, for wall and CPU time, and the load average.  Files
are BENCH_MB (default 64) MiB; BENCH_RANDOM (default 20000) random writes; BENCH_DIR
places the files (default: a temporary directory).  Exit status 0 whatever the
ratios: a benchmark reports, it does not fail."""

import os
import random
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import (Clock, fresh_file, interleaved, load,  # noqa: E402
                               median_range, num, on_device, ratio_rows, report_ratios,
                               sim_writes)

MB = 1 << 20


def main():
    size = int(os.environ.get("BENCH_MB", "64")) * MB
    nrand = int(os.environ.get("BENCH_RANDOM", "20000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "21"))
    load_before = load()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        os.environ["DMCTL_SIM_DIR"] = os.path.join(d, "sim")
        from dmctl.backend.sim import SimMapper
        from dmctl.sim import bio as B
        from dmctl.sim.io import Session, resolve

        path = os.path.join(d, "disk.img")
        m = SimMapper()
        buf = os.urandom(MB)
        small = os.urandom(4096)
        rng = random.Random(1)
        offsets = [rng.randrange(size // 4096) * 4096 for _ in range(nrand)]

        def fill():
            fd = os.open(path, os.O_WRONLY)
            try:
                for off in range(0, size, MB):
                    os.pwrite(fd, buf, off)
            finally:
                os.close(fd)

        def direct(op):
            def case():
                fresh_file(path, size)
                if op == "read":
                    fill()
                fd = os.open(path, os.O_RDWR)
                try:
                    rbuf = bytearray(MB)
                    with Clock() as c:
                        if op == "write":
                            for off in range(0, size, MB):
                                os.pwrite(fd, buf, off)
                        elif op == "read":
                            for off in range(0, size, MB):
                                os.preadv(fd, [rbuf], off)
                        else:
                            for off in offsets:
                                os.pwrite(fd, small, off)
                    return c.times
                finally:
                    os.close(fd)
            return case

        def linear(op):
            def fn(env):
                s = Session(env, resolve(env, "lin"))
                rbuf = bytearray(MB)
                with Clock() as c:
                    if op == "read":
                        for off in range(0, size, MB):
                            s.submit(B.READ, off >> 9, MB >> 9, rbuf)
                    else:
                        for off in offsets:
                            s.submit(B.WRITE, off >> 9, 8, small)
                return c.times
            if op == "write":
                fn = sim_writes("lin", size, buf, flush=False)

            def case():
                fresh_file(path, size)
                if op == "read":
                    fill()
                return on_device(m, "lin", "linear", "%s 0" % path, size >> 9, fn)
            return case

        cases = {}
        for op in ("write", "read", "random"):
            cases["direct " + op] = direct(op)
            cases["linear " + op] = linear(op)
        times = interleaved(cases, rounds)
        m.close()
    mbs = size / MB
    report_ratios(ratio_rows(times, [
        ("1 MiB sequential writes, linear vs direct", "linear write", "direct write", 0.9),
        ("1 MiB sequential reads, linear vs direct", "linear read", "direct read", 0.9),
    ], mbs, "MiB/s") + ratio_rows(times, [
        ("4 KiB random writes, linear vs direct", "linear random", "direct random", None),
    ], nrand, "op/s"), "I/O path vs the file directly, %d MiB" % mbs, rounds, load_before)
    lin = median_range(times["linear random"])[0]
    dr = median_range(times["direct random"])[0]
    print("4 KiB random writes through linear: %s writes/s (target >= 10000/s); per-bio "
          "overhead %s us (medians)" % (num(nrand / lin), num((lin - dr) / nrand * 1e6)))


if __name__ == "__main__":
    main()
