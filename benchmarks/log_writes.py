#!/usr/bin/env python3
"""log-writes: replay throughput of a 1 GiB log next to `dd` copying the same bytes
(target >= 0.5x), and 1 MiB writes through log-writes next to linear (every byte is
written twice; target >= 0.45x)."""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import env, report  # noqa: E402

MB = 1 << 20


def main():
    size = int(os.environ.get("BENCH_LW_MB", "1024")) * MB
    with tempfile.TemporaryDirectory() as d:
        os.environ["DMCTL_SIM_DIR"] = os.path.join(d, "sim")
        from dmctl.backend.base import TargetLine
        from dmctl.backend.sim import SimMapper
        from dmctl.sim import bio as B
        from dmctl.sim.io import Session, resolve, settle
        files = {}
        for n, s in (("lin", size), ("data", size), ("log", size + 64 * MB)):
            files[n] = os.path.join(d, n)
            with open(files[n], "wb") as f:
                f.truncate(s)
        m = SimMapper()
        m.create("lin")
        m.load("lin", [TargetLine(0, size >> 9, "linear", "%s 0" % files["lin"])])
        m.resume("lin")
        m.create("lw")
        m.load("lw", [TargetLine(0, size >> 9, "log-writes", "%s %s" % (files["data"], files["log"]))])
        m.resume("lw")
        buf = os.urandom(MB)

        def writes(name):
            def fn(env_):
                s = Session(env_, resolve(env_, name))
                t = time.perf_counter()
                for off in range(0, size, MB):
                    s.submit(B.WRITE, off >> 9, MB >> 9, buf)
                s.submit(B.WRITE, 0, 0, None, B.PREFLUSH)
                env_.run_work(None)          # the logging thread, to completion
                return time.perf_counter() - t
            return fn
        t_lin = m.run(writes("lin"))
        t_lw = m.run(writes("lw"))
        m.remove("lw")
        m.close()

        replay = os.path.join(d, "replay")
        with open(replay, "wb") as f:
            f.truncate(size)
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "dmctl", "replay-log", "--log", files["log"],
                            "--replay", replay], env=env(), cwd=ROOT, capture_output=True)
        t_replay = time.perf_counter() - t
        assert p.returncode == 0, p.stderr
        dd_out = os.path.join(d, "dd.out")
        with open(dd_out, "wb") as f:
            f.truncate(size)
        t = time.perf_counter()
        subprocess.run(["dd", "if=" + files["log"], "of=" + dd_out, "bs=1M",
                        "count=%d" % (size // MB), "conv=notrunc", "status=none"], check=True)
        t_dd = time.perf_counter() - t
    mbs = size / MB
    report([
        ("replay-log of a %d MiB log (MiB/s)" % mbs, mbs / t_replay, mbs / t_dd, "MiB/s", "vs dd (target >= 0.5x)"),
        ("1 MiB writes through log-writes (MiB/s)", mbs / t_lw, mbs / t_lin, "MiB/s", "vs linear (target >= 0.45x)"),
    ], "log-writes")


if __name__ == "__main__":
    main()
