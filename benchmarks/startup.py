#!/usr/bin/env python3
"""CLI start-up: `dmctl version`, `dmctl ls` and `dmctl status` with 100 simulated devices,
next to `python3 -c pass` in the same environment (target: each <= 1.3x)."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, dmctl_argv, env, report, time_cmd  # noqa: E402


def main():
    runs = int(os.environ.get("BENCH_RUNS", "15"))
    with tempfile.TemporaryDirectory() as d:
        e = env({"DMCTL_SIM_DIR": os.path.join(d, "sim"), "DMCTL_BACKEND": "sim"})
        disk = os.path.join(d, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(100 * 8 * 512)
        sys.path.insert(0, ROOT)
        os.environ["DMCTL_SIM_DIR"] = e["DMCTL_SIM_DIR"]
        from dmctl.backend.sim import SimMapper
        from dmctl.backend.base import TargetLine
        m = SimMapper()
        with m.batch():
            for i in range(100):
                n = "dev%03d" % i
                m.create(n)
                m.load(n, [TargetLine(0, 8, "linear", "%s %d" % (disk, i * 8))])
                m.resume(n)
        m.close()
        base = time_cmd([sys.executable, "-c", "pass"], runs, e)
        rows = []
        for args in (["version"], ["ls"], ["status"]):
            out = subprocess.run(dmctl_argv(*args), env=e, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            if args != ["version"]:
                assert len(out.stdout.splitlines()) == 100, out.stdout[:200]
            t = time_cmd(dmctl_argv(*args), runs, e)
            rows.append(("dmctl " + " ".join(args) + (" (100 devices)" if args != ["version"] else ""),
                         t * 1000, base * 1000, "ms", "(target <= 1.3x)"))
        report(rows, "CLI start-up vs `python3 -c pass`")


if __name__ == "__main__":
    main()
