"""Helpers for dmctl's benchmarks: every result is printed next to a baseline measured
in the same run, as a ratio (timed assertions in tests are flaky; ratios are not)."""

import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = ("import sys; sys.argv[0] = 'dmctl'; "
         "from dmctl.cli.main import entry; entry()")


_PYCACHE = None


def env(extra=None):
    """The environment commands are timed in: bytecode caching on (as for an installed
    package, whose .pyc files pip compiles), cached outside the checkout."""
    global _PYCACHE
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    if _PYCACHE is None:
        import tempfile
        _PYCACHE = tempfile.mkdtemp(prefix="dmctl-bench-pycache-")
    e["PYTHONPYCACHEPREFIX"] = _PYCACHE
    if extra:
        e.update(extra)
    return e


def time_cmd(argv, runs=15, env_=None):
    """Median wall time of a command over ``runs`` runs (one warm-up)."""
    subprocess.run(argv, env=env_, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, env=env_, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def dmctl_argv(*args):
    return [sys.executable, "-c", ENTRY] + list(args)


def report(rows, title):
    print("== %s" % title)
    w = max(len(r[0]) for r in rows)
    for name, value, base, unit, ratio_note in rows:
        ratio = value / base if base else float("nan")
        print("%-*s  %10.4g %-5s baseline %10.4g %-5s ratio %.2fx %s" % (
            w, name, value, unit, base, unit, ratio, ratio_note))
