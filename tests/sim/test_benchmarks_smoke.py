"""The benchmarks run end to end at tiny sizes and print every ratio with its target
(smoke tests: no timing is checked, only that each case ran and was reported, with
the rounds and the machine load, and that the benchmark left no files behind).
benchmarks/mirror.py has its own: test_mirror_benchmark.py."""

import os
import subprocess
import sys

import pytest

from testlib import ROOT


def run_benchmark(tmp_path, name, *args, **env):
    e = dict(os.environ, BENCH_ROUNDS="1", BENCH_DIR=str(tmp_path))
    e.update(env)
    e.pop("DMCTL_SIM_DIR", None)
    e.pop("DMCTL_BACKEND", None)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", name)] + list(args),
                       env=e, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert os.listdir(tmp_path) == []          # its files are gone
    return p.stdout.splitlines()


def line(lines, label):
    [l] = [l for l in lines if l.startswith(label + " ")]
    return l


def ratio_line(lines, label, target):
    l = line(lines, label)
    assert "CPU time" in l and "rounds" in l, l
    assert l.endswith(target), l
    return l


def headers(lines, *titles):
    for title in titles:
        [i] = [i for i, l in enumerate(lines) if l.startswith("== " + title)]
        assert "interleaved rounds)" in lines[i]
        assert "load average" in lines[i + 1]


def test_io_benchmark(tmp_path):
    lines = run_benchmark(tmp_path, "io.py", BENCH_MB="2", BENCH_RANDOM="200", BENCH_ROUNDS="2")
    headers(lines, "I/O path vs the file directly, 2 MiB (median of 2 interleaved rounds)")
    ratio_line(lines, "1 MiB sequential writes, linear vs direct", "target >= 0.90x")
    ratio_line(lines, "1 MiB sequential reads, linear vs direct", "target >= 0.90x")
    ratio_line(lines, "4 KiB random writes, linear vs direct", "no target")
    assert "(target >= 10000/s)" in line(lines, "4 KiB random writes through linear:")


def test_log_writes_benchmark(tmp_path):
    lines = run_benchmark(tmp_path, "log_writes.py", BENCH_LW_MB="2")
    headers(lines, "log-writes, 2 MiB")
    ratio_line(lines, "1 MiB writes, log-writes vs linear", "target >= 0.45x")
    ratio_line(lines, "replay-log --replay vs dd of the same bytes", "target >= 0.50x")


def test_scale_benchmark(tmp_path):
    lines = run_benchmark(tmp_path, "scale.py", "--sizes", "100,200", "--bulk-rounds", "1")
    headers(lines, "the simulator with 100, 200 devices present", "bulk creation")
    for cmd in ("info", "create", "remove"):
        for n in (100, 200):
            assert " ms (" in line(lines, "  %s with %d present" % (cmd, n))
        ratio_line(lines, "%s, 200 present vs 100" % cmd, "target <= 1.20x")
    for n in (100, 200):
        l = line(lines, "bulk creation of %d devices" % n)
        assert "ms per device" in l and l.endswith("target <= 1.0 ms per device (10 s for 10000)")
    ratio_line(lines, "bulk creation per device, 200 vs 100", "target <= 1.20x")


def test_scale_benchmark_reports_what_ran_past_its_budget(tmp_path):
    lines = run_benchmark(tmp_path, "scale.py", "--sizes", "100,200", "--bulk-rounds", "1",
                          "--budget", "0.001")
    l = line(lines, "info, 200 present vs 100")
    assert "not measured: " in l and "populating 100 devices took > 0.001 s" in l
    assert l.endswith("target <= 1.20x")
    assert "not measured: bulk creation of 100 devices took > 0.001 s" in \
        line(lines, "bulk creation of 100 devices")
    assert "not measured: skipped (bulk creation of 100 devices took > 0.001 s)" in \
        line(lines, "bulk creation of 200 devices")


@pytest.mark.parametrize("compare", [False, True])
def test_startup_benchmark(tmp_path, compare):
    args = ["--compare", ROOT] if compare else []
    lines = run_benchmark(tmp_path, "startup.py", *args)
    headers(lines, "CLI start-up next to `python -c pass`")
    assert line(lines, "-- tree: source tree %s" % ROOT)
    if compare:
        assert line(lines, "-- before: source tree %s" % ROOT)
    for cmd, target in (("version", "1.30x"), ("ls", "1.30x"), ("status", "1.50x"),
                        ("info", "1.50x"), ("table", "1.50x")):
        l = [l for l in lines if l.startswith("dmctl %s vs python -c pass " % cmd)]
        assert len(l) == (2 if compare else 1)
        assert all(x.endswith("target <= " + target) and "CPU time" in x for x in l)
        if compare:
            ratio_line(lines, "dmctl %s, after/before" % cmd, "target <= 1.05x")
    assert any(l.startswith("dmctl's own share") for l in lines) == compare


def test_nbd_benchmark(tmp_path):
    from dmctl.testing.plugin import require
    require("nbdkit", "nbdcopy")               # fails in CI when missing
    lines = run_benchmark(tmp_path, "nbd.py", BENCH_NBD_MB="2", BENCH_ROUNDS="2")
    headers(lines, "NBD export vs dmctl io copy, 2 MiB (median of 2 interleaved rounds)")
    ratio_line(lines, "1 MiB sequential writes, nbdcopy through the export vs dmctl io copy",
               "target >= 0.50x")
    for label in ("nbdcopy through the export", "dmctl io copy",
                  "dmctl sim export start-up (not in the ratio)"):
        assert " ms (" in line(lines, "  " + label), label


def test_logd_benchmark(tmp_path):
    lines = run_benchmark(tmp_path, "logd.py", BENCH_LOGD_REQUESTS="50", BENCH_LOGD_WRITES="10",
                          BENCH_LOGD_CPG="10", BENCH_LOGD_MB="2")
    headers(lines, "logd: Unix socket", "logd: one-node corosync CPG",
            "logd: simulated 2-leg mirror")
    ratio_line(lines, "IN_SYNC requests/s, daemon vs a bare socket echo", "target >= 0.50x")
    ratio_line(lines, "MARK/CLEAR+FLUSH requests/s incl. the durable write, daemon vs echo",
               "no target")
    # measured as root with corosync, else it says why not
    l = line(lines, "CPG marks/clears/s incl. the durable write vs raw CPG messages/s")
    assert l.endswith("target >= 0.50x") and ("CPU time" in l or "not measured: " in l), l
    ratio_line(lines, "1 MiB writes, userspace-log mirror vs core log", "target >= 0.30x")
