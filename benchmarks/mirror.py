#!/usr/bin/env python3
"""mirror: 1 MiB writes through a 2-leg and a 3-leg mirror (core log, nosync) next to
linear (targets: 2 legs >= 0.45x, 3 legs >= 0.3x), and resync throughput next to a
plain copy of a leg (target >= 0.5x)."""

import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import report  # noqa: E402

MB = 1 << 20


def main():
    size = int(os.environ.get("BENCH_MIRROR_MB", "256")) * MB
    with tempfile.TemporaryDirectory() as d:
        os.environ["DMCTL_SIM_DIR"] = os.path.join(d, "sim")
        from dmctl.backend.base import TargetLine
        from dmctl.backend.sim import SimMapper
        from dmctl.sim import bio as B
        from dmctl.sim.io import Session, resolve

        def f(name):
            p = os.path.join(d, name)
            with open(p, "wb") as fh:
                fh.truncate(size)
            return p
        m = SimMapper()
        sectors = size >> 9
        tables = {
            "lin": "0 %d linear %s 0" % (sectors, f("lin")),
            "m2": "0 %d mirror core 2 1024 nosync 2 %s 0 %s 0" % (sectors, f("a1"), f("a2")),
            "m3": "0 %d mirror core 2 1024 nosync 3 %s 0 %s 0 %s 0" % (sectors, f("b1"), f("b2"), f("b3")),
        }
        for name, t in tables.items():
            s, l, ty, params = t.split(None, 3)
            m.create(name)
            m.load(name, [TargetLine(int(s), int(l), ty, params)])
            m.resume(name)
        buf = os.urandom(MB)

        def writes(name):
            def fn(env):
                s = Session(env, resolve(env, name))
                t = time.perf_counter()
                for off in range(0, size, MB):
                    s.submit(B.WRITE, off >> 9, MB >> 9, buf)
                s.submit(B.WRITE, 0, 0, None, B.PREFLUSH)
                env.run_work(None)
                return time.perf_counter() - t
            return fn
        t_lin = m.run(writes("lin"))
        t_m2 = m.run(writes("m2"))
        t_m3 = m.run(writes("m3"))

        # resync: a fresh 2-leg mirror whose first leg holds data, core log (full resync)
        src = f("r1")
        with open(src, "r+b") as fh:
            for off in range(0, size, MB):
                fh.write(buf)
        dst = f("r2")
        m.create("rs")
        m.load("rs", [TargetLine(0, sectors, "mirror", "core 1 1024 2 %s 0 %s 0" % (src, dst))])
        m.resume("rs")
        t = time.perf_counter()
        m.run(lambda env: env.run_work(None))
        t_resync = time.perf_counter() - t
        st = m.status("rs")[1][0].params
        m.close()
        copy = os.path.join(d, "copy")
        t = time.perf_counter()
        shutil.copyfile(src, copy)
        t_copy = time.perf_counter() - t
    mbs = size / MB
    report([
        ("1 MiB writes, 2-leg mirror (MiB/s)", mbs / t_m2, mbs / t_lin, "MiB/s", "vs linear (target >= 0.45x)"),
        ("1 MiB writes, 3-leg mirror (MiB/s)", mbs / t_m3, mbs / t_lin, "MiB/s", "vs linear (target >= 0.3x)"),
        ("resync of a %d MiB leg (MiB/s)" % mbs, mbs / t_resync, mbs / t_copy, "MiB/s", "vs copying the leg (target >= 0.5x)"),
    ], "mirror (resynced status: %s)" % st)


if __name__ == "__main__":
    main()
