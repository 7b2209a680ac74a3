"""Helpers shared by dmctl's benchmarks.  Every result is printed next to a baseline
measured in the same run, as a ratio (timed assertions in tests are flaky; ratios
are not): the cases of a benchmark run in every round, in a rotated order
(``interleaved``), so that load, page-cache and writeback effects fall on the
baseline and the measured side alike; ``ratio_rows`` and ``report_ratios`` print the
ratio of the medians, the range of the per-round ratios, the machine load and the
target next to it (a benchmark reports; it never fails on a number)."""

import atexit
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what the installed ``dmctl`` console script runs
ENTRY = ("import sys; sys.argv[0] = 'dmctl'; "
         "from dmctl.cli.main import entry; entry()")

_PYCACHE = []


def env(extra=None, path=ROOT):
    """The environment commands are timed in: ``PYTHONPATH`` is ``path`` alone (a
    source tree; None: no PYTHONPATH, for an installed package) and bytecode caching
    is on, as for an installed package (whose .pyc files pip compiles); a source
    tree's .pyc files go to a directory of this run (removed at exit), not into it."""
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e.pop("PYTHONPATH", None)
    e.pop("PYTHONPYCACHEPREFIX", None)
    if path is not None:
        e["PYTHONPATH"] = path
        if not _PYCACHE:
            _PYCACHE.append(tempfile.mkdtemp(prefix="dmctl-bench-pycache-"))
            atexit.register(shutil.rmtree, _PYCACHE[0], True)
        e["PYTHONPYCACHEPREFIX"] = _PYCACHE[0]
    if extra:
        e.update(extra)
    return e


def load():
    """The 1/5/15-minute load averages, to print with every result."""
    return "load average %.2f %.2f %.2f on %d CPUs" % (os.getloadavg() + (os.cpu_count(),))


def fresh_file(path, size):
    """``path`` as a sparse file of ``size`` bytes with none of its old pages cached:
    truncating to 0 first drops them (without writing them back), so every run starts
    from the same state and leaves no dirty data behind to be written back during a
    later one."""
    with open(path, "wb") as fh:
        fh.truncate(size)


def _cpu():
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


class Clock:
    """Wall and CPU time of a block: ``with Clock() as c: ...; c.times``.  The CPU
    time (user + system of this process and of the child processes it waited for in
    the block) is what a run cost, whatever else the machine was doing; the wall time
    is what a user waits."""

    def __enter__(self):
        self._w, self._c = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.times = (time.perf_counter() - self._w, _cpu() - self._c)


def run_timed(argv, env_=None, cwd=None, timeout=None, input=None):
    """(wall, cpu) seconds of a command, which must exit 0 (its stderr is in the
    error otherwise); ``subprocess.TimeoutExpired`` past ``timeout`` (the command
    is killed)."""
    with Clock() as c:
        p = subprocess.run(argv, env=env_, cwd=cwd, input=input, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode:
        cmd = argv[3:] if argv[1:3] == ["-c", ENTRY] else argv
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                                p.stderr.decode(errors="replace")[-500:]))
    return c.times


class NotMeasured(str):
    """Why a case has no times (e.g. it ran past its time budget)."""


class Skip(Exception):
    """Raised by a case that cannot be measured (the message says why): the case is
    not run again, and its ratios are printed as not measured."""


def interleaved(cases, rounds, sync=True):
    """Run ``cases`` (name -> fn returning (wall, cpu) seconds, see Clock, or a dict
    of such results by name) alternately, ``rounds`` times, rotating the order each
    round (ABC, BCA, CAB...) so that load, page-cache and writeback effects hit the
    baseline and the measured side alike.  ``os.sync()`` before each run (``sync``)
    settles whatever earlier runs (or other processes) left dirty.  Returns name ->
    list of (wall, cpu), one per round; a case that raised Skip maps to NotMeasured."""
    names = list(cases)
    out = {}
    skipped = {}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            if n in skipped:
                continue
            if sync:
                os.sync()
            try:
                res = cases[n]()
            except Skip as e:
                skipped[n] = NotMeasured(str(e))
                continue
            for key, t in (res.items() if isinstance(res, dict) else [(n, res)]):
                out.setdefault(key, []).append(t)
    for n, why in skipped.items():
        out[n] = why
    return out


def per_unit(times, count):
    """Times divided by ``count`` (e.g. per device); NotMeasured passes through."""
    if isinstance(times, NotMeasured):
        return times
    return [(w / count, c / count) for w, c in times]


def median_range(times, k=0, scale=1.0):
    """(median, min, max) of the wall (k=0) or CPU (k=1) times, times ``scale``."""
    v = [t[k] * scale for t in times]
    return statistics.median(v), min(v), max(v)


def ratio_rows(times, pairs, amount=None, unit="ms"):
    """Rows for ``report_ratios``.  ``pairs``: (label, name, baseline name, target)
    with names in ``times`` (see ``interleaved``) and target a ratio or None.  With
    ``amount`` the values are throughputs (``amount`` per second, in ``unit``: higher
    is better, the target a floor); without, times in ``unit`` ("ms" or "s": lower is
    better, the target a ceiling).  For wall and CPU time: the medians, the ratio of
    the medians and the sorted per-round ratios (rounds where both sides ran)."""
    scale = {"ms": 1e3, "us": 1e6}.get(unit, 1.0)
    rows = []
    for label, name, base, target in pairs:
        row = {"label": label, "unit": unit, "target": target, "higher": amount is not None}
        missing = [times.get(n) for n in (name, base)
                   if not isinstance(times.get(n), list)]
        if missing:
            row["missing"] = missing[0] or "no times"
            rows.append(row)
            continue
        for k, key in ((0, "wall"), (1, "cpu")):
            if amount is not None:
                v = [amount / t[k] for t in times[name]]
                b = [amount / t[k] for t in times[base]]
            else:
                v = [t[k] * scale for t in times[name]]
                b = [t[k] * scale for t in times[base]]
            per_round = sorted(x / y for x, y in zip(v, b) if y)
            mv, mb = statistics.median(v), statistics.median(b)
            row[key] = (mv, mb, mv / mb if mb else float("nan"), per_round)
        rows.append(row)
    return rows


def num(v):
    """A value with as many decimals as its size deserves."""
    return "%.0f" % v if abs(v) >= 100 else "%.1f" % v if abs(v) >= 10 else "%.2f" % v


def target_text(row):
    if row["target"] is None:
        return "no target"
    return "target %s %.2fx" % (">=" if row["higher"] else "<=", row["target"])


def _verdict(row, ratio):
    if row["target"] is None:
        return ""
    ratio = round(ratio, 2)     # as printed
    ok = ratio >= row["target"] if row["higher"] else ratio <= row["target"]
    return " meets" if ok else " misses"


def header(title, rounds, load_before, load_after=None):
    print("== %s (median of %d interleaved rounds)" % (title, rounds))
    print("   before: %s; after: %s" % (load_before, load_after or load()))


def report_ratios(rows, title=None, rounds=None, load_before=None):
    """Print each row: the medians, the ratio of the medians with the range of the
    per-round ratios, for wall and CPU time, and the target (no assertion: a
    benchmark reports).  With ``title``, a header with the rounds and the load."""
    if title is not None:
        header(title, rounds, load_before)
    w = max(len(r["label"]) for r in rows)
    for r in rows:
        if "missing" in r:
            print("%-*s  not measured: %s; %s" % (w, r["label"], r["missing"], target_text(r)))
            continue
        wall, cpu = r["wall"], r["cpu"]
        rng = (lambda x: "rounds %.2f-%.2f" % (x[3][0], x[3][-1]) if x[3] else "no rounds")
        print("%-*s  %7s %s vs %7s: %.2fx (%s)%s; CPU time %.2fx (%s)%s; %s" % (
            w, r["label"], num(wall[0]), r["unit"], num(wall[1]), wall[2], rng(wall),
            _verdict(r, wall[2]), cpu[2], rng(cpu), _verdict(r, cpu[2]), target_text(r)))


def report_times(times, labels, unit="ms"):
    """One line per case: the median wall time with its range and the median CPU
    time (``labels``: (label, name) pairs)."""
    scale = {"ms": 1e3, "us": 1e6}.get(unit, 1.0)
    w = max(len(l) for l, _ in labels)
    for label, name in labels:
        t = times.get(name)
        if not isinstance(t, list):
            print("  %-*s  not measured: %s" % (w, label, t or "no times"))
            continue
        m, lo, hi = median_range(t, 0, scale)
        c = median_range(t, 1, scale)[0]
        print("  %-*s  %7s %s (%s-%s), CPU %s %s" % (w, label, num(m), unit, num(lo),
                                                    num(hi), num(c), unit))


def sim_writes(name, size, buf, flush=True):
    """``fn(env)`` for ``SimMapper.run``: sequential writes of ``buf`` over the first
    ``size`` bytes of device ``name``, then (``flush``) a flush and the background work
    (logging, resync...) run to completion; returns (wall, cpu) seconds."""
    from dmctl.sim import bio as B
    from dmctl.sim.io import Session, resolve

    def fn(env):
        s = Session(env, resolve(env, name))
        with Clock() as c:
            for off in range(0, size, len(buf)):
                s.submit(B.WRITE, off >> 9, len(buf) >> 9, buf)
            if flush:
                s.submit(B.WRITE, 0, 0, None, B.PREFLUSH)
                env.run_work(None)
        return c.times
    return fn


def on_device(m, name, target, params, sectors, fn, files=()):
    """``m.run(fn)`` on a new device ``name`` (one ``target`` line of ``sectors``),
    removed afterwards; ``files`` ((path, size) pairs) are made fresh first."""
    from dmctl.backend.base import TargetLine
    for path, size in files:
        fresh_file(path, size)
    m.create(name)
    try:
        m.load(name, [TargetLine(0, sectors, target, params)])
        m.resume(name)
        return m.run(fn)
    finally:
        m.remove(name)


# A child process that fills a simulator state dir with linear devices through the
# library, in one transaction (``python -c POPULATE SIM_DIR DISK N``): each source
# tree or installed package fills its own state, in its own format.
POPULATE = """\
import os, sys
sim, disk, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.environ["DMCTL_SIM_DIR"] = sim
try:
    from dmctl.records import TargetLine
except ImportError:
    from dmctl.backend.base import TargetLine
from dmctl.backend.sim import SimMapper
m = SimMapper()
with m.batch():
    for i in range(n):
        name = "dev%05d" % i
        m.create(name)
        m.load(name, [TargetLine(0, 8, "linear", "%s %d" % (disk, i * 8))])
        m.resume(name)
m.close()
"""


def populate(sim_dir, disk, n, python=sys.executable, env_=None, timeout=None):
    """Fill ``sim_dir`` with ``n`` linear devices dev00000... of 8 sectors on
    ``disk`` (made, sparse, if it is missing); subprocess.TimeoutExpired past
    ``timeout``."""
    if not os.path.exists(disk):
        fresh_file(disk, (n + 1) * 4096)
    p = subprocess.run([python, "-c", POPULATE, sim_dir, disk, str(n)], env=env_,
                       cwd=os.path.dirname(os.path.abspath(sim_dir)),   # not a source tree
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode:
        raise RuntimeError("populating %s failed: %s" % (sim_dir, p.stderr[-800:]))
