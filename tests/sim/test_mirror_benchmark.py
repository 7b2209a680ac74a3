"""benchmarks/mirror.py runs end to end on tiny files (a smoke test: no timings are
checked, only that every case ran and each ratio is printed with its target)."""

import os
import subprocess
import sys

from test_mirror_helpers import ROOT


def test_mirror_benchmark_runs_and_reports_every_ratio(tmp_path):
    env = dict(os.environ, BENCH_MIRROR_MB="2", BENCH_ROUNDS="2", BENCH_DIR=str(tmp_path))
    env.pop("DMCTL_SIM_DIR", None)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "mirror.py")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("== mirror, 2 MiB legs (median of 2 interleaved rounds)")
    assert "load average" in lines[1]
    for label, target in (("2-leg mirror vs linear", "0.45x"), ("3-leg mirror vs linear", "0.30x"),
                          ("resync of a leg vs copying it", "0.50x")):
        [line] = [l for l in lines if label in l]
        assert "CPU time" in line and line.endswith("target >= " + target)
    assert os.listdir(tmp_path) == []          # its files are gone
