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


def load():
    """The 1/5/15-minute load averages, to print with every throughput result."""
    return "load average %.2f %.2f %.2f on %d CPUs" % (os.getloadavg() + (os.cpu_count(),))


def fresh_file(path, size):
    """``path`` as a sparse file of ``size`` bytes with none of its old pages cached:
    truncating to 0 first drops them (without writing them back), so every run starts
    from the same state and leaves no dirty data behind to be written back during a
    later one."""
    with open(path, "wb") as fh:
        fh.truncate(size)


class Clock:
    """Wall and CPU time of a block: ``with Clock() as c: ...; c.times``.  The CPU
    time (user + system of this process) is what a run cost, whatever else the
    machine was doing; the wall time is what a user waits."""

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.times = (time.perf_counter() - self._w, time.process_time() - self._c)


def interleaved(cases, rounds):
    """Time ``cases`` (name -> fn returning (wall, cpu) seconds, see Clock)
    alternately, ``rounds`` times, rotating the order each round (ABC, BCA, CAB...)
    so that load, page-cache and writeback effects hit the baseline and the measured
    side alike.  ``os.sync()`` before each run settles whatever earlier runs (or
    other processes) left dirty.  Returns name -> list of (wall, cpu)."""
    names = list(cases)
    out = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            os.sync()
            out[n].append(cases[n]())
    return out


def ratio_rows(times, pairs, amount, unit):
    """Rows for ``report_ratios``: for each (label, name, baseline name, target), the
    median throughputs (``amount`` per wall second) and, for wall and CPU time, the
    ratio of the medians with the spread of the per-round ratios."""
    rows = []
    for label, name, base, target in pairs:
        row = [label, unit, target]
        for k in (0, 1):
            v = [amount / t[k] for t in times[name]]
            b = [amount / t[k] for t in times[base]]
            per_round = sorted(x / y for x, y in zip(v, b))
            row.append((statistics.median(v), statistics.median(b),
                        statistics.median(v) / statistics.median(b), per_round))
        rows.append(row)
    return rows


def report_ratios(rows, title, rounds, load_before):
    """Print medians, the ratio of the medians with its per-round spread (wall and
    CPU time), and the target next to each (no assertion: a benchmark reports)."""
    print("== %s (median of %d interleaved rounds)" % (title, rounds))
    print("   before: %s; after: %s" % (load_before, load()))
    w = max(len(r[0]) for r in rows)
    for label, unit, target, wall, cpu in rows:
        def verdict(r):
            return "meets" if r >= target else "BELOW"
        print("%-*s  %7.0f %s vs %7.0f: %.2fx (rounds %.2f-%.2f) %s; CPU time %.2fx "
              "(rounds %.2f-%.2f) %s; target >= %.2fx" % (
                  w, label, wall[0], unit, wall[1], wall[2], wall[3][0], wall[3][-1],
                  verdict(wall[2]), cpu[2], cpu[3][0], cpu[3][-1], verdict(cpu[2]), target))
