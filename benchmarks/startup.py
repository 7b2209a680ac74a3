#!/usr/bin/env python3
"""CLI start-up: `dmctl version`, and `ls`, `status`, `info` and `table` with 100
simulated devices, next to `python -c pass` of the same interpreter (issue 13's
targets: version and ls <= 1.3x, status <= 1.5x; info and table, for which the issue
sets none, are held to status's 1.5x).

    python3 benchmarks/startup.py [--rounds 21] [--devices 100] [--tree DIR]
                                  [--compare DIR] [--installed VENV] [--python PY]

The commands run as CLI processes through the simulator (``DMCTL_BACKEND=sim``), from
a working directory outside any source tree:

- this checkout (or ``--tree DIR``): ``python -c <what the dmctl script runs>`` with
  ``PYTHONPATH`` the tree and bytecode caching on (``common.env``), under ``--python``
  (default: the ``--installed`` venv's interpreter, else this one).  An interpreter
  whose start-up already imports modules dmctl would (e.g. a development venv's
  editable-install finder imports ``re`` and ``pathlib``) hides their cost in its
  `python -c pass`: the output names such modules;
- ``--installed VENV``: the ``dmctl`` script of a virtualenv into which the package is
  installed as a user installs it (not editable; pip byte-compiles it), next to that
  venv's own `python -c pass` (issue 13's targets are for this case; a source tree runs
  under this script's interpreter, with whatever its site-packages load at start-up).
  Make one with

      python3 -m venv /tmp/v && /tmp/v/bin/pip install -q /work/main

- ``--compare DIR``: the same from another source tree, e.g. the code before a change
  (``git worktree add /tmp/base <commit>``), next to the tree; or, if DIR is a venv,
  the package installed from it, next to ``--installed``.  Printed: the after/before
  ratio per command (target <= 1.05x: no regression beyond the noise of a median) and
  dmctl's own share (a command's median minus `python -c pass`'s) before and after.

Every variant fills its own state dir with its own code (``common.populate``).  Every
command of every variant and each interpreter's `python -c pass` run once per round, in
a rotated order (BENCH_ROUNDS rounds, default 21), after a warm-up run of each; printed:
the medians with their ranges, the ratios of the medians with the range of the
per-round ratios, for wall and CPU time (of the child), and the load average.  Exit
status 0 whatever the ratios: a benchmark reports, it does not fail."""

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import (ENTRY, env, header, interleaved, load,  # noqa: E402
                               median_range, num, populate, ratio_rows, report_ratios,
                               report_times, run_timed)

# (command, arguments, target vs `python -c pass`)
COMMANDS = (("version", 1.3), ("ls", 1.3), ("status", 1.5), ("info", 1.5), ("table", 1.5))
REGRESSION = 1.05


class Variant:
    """One dmctl to time: its key, a description, its interpreter, the argv prefix
    that runs its CLI and the environment (its state dir included)."""

    def __init__(self, key, what, python, cli, env_):
        self.key, self.what, self.python, self.cli, self.env = key, what, python, cli, env_
        self.base = "python -c pass: " + python

    def name(self, cmd):
        return "%s %s" % (self.key, cmd)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "21")))
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--tree", default=ROOT, help="the source tree measured (default: this one)")
    p.add_argument("--compare", metavar="DIR",
                   help="a source tree (or venv) of the code before, to compare with")
    p.add_argument("--installed", metavar="VENV", help="a venv with dmctl pip-installed")
    p.add_argument("--python", help="the interpreter of the source trees (default: the "
                   "--installed venv's, else this one)")
    return p.parse_args(argv)


def is_venv(path):
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


def installed(key, venv, sim):
    venv = os.path.abspath(venv)
    script = os.path.join(venv, "bin", "dmctl")
    if not os.access(script, os.X_OK):
        sys.exit("%s: no dmctl script; make the venv with `python3 -m venv %s && "
                 "%s/bin/pip install -q %s`" % (venv, venv, venv, ROOT))
    return Variant(key, "installed in %s" % venv, os.path.join(venv, "bin", "python"),
                   [script], env(sim, path=None))


def source(key, tree, sim, python):
    tree = os.path.abspath(tree)
    return Variant(key, "source tree %s" % tree, python, [python, "-c", ENTRY],
                   env(sim, path=tree))


def variants(a, d):
    """The variants to time, and the (after, before) pair to compare or None."""
    def sim(key):
        return {"DMCTL_BACKEND": "sim", "DMCTL_SIM_DIR": os.path.join(d, "sim-" + key)}
    python = a.python
    if python is None:
        python = os.path.join(a.installed, "bin", "python") if a.installed else sys.executable
    out = {"tree": source("tree", a.tree, sim("tree"), python)}
    if a.installed:
        out["installed"] = installed("installed", a.installed, sim("installed"))
    pair = None
    if a.compare:
        if is_venv(a.compare):
            if not a.installed:
                sys.exit("--compare %s is a venv: give the venv after the change as "
                         "--installed VENV" % a.compare)
            out["before"] = installed("before", a.compare, sim("before"))
            pair = (out["installed"], out["before"])
        else:
            out["before"] = source("before", a.compare, sim("before"), python)
            pair = (out["tree"], out["before"])
    return list(out.values()), pair


WATCHED = ("re", "enum", "pickle", "sqlite3", "datetime", "pathlib", "contextlib", "typing")


def preloaded(python, env_, d):
    """Which of the modules dmctl's start-up work avoids the interpreter's own
    start-up (site, .pth files) already imports."""
    p = subprocess.run([python, "-X", "importtime", "-c", "pass"], env=env_, cwd=d,
                       capture_output=True, text=True)
    names = {l.rsplit("|", 1)[-1].strip() for l in p.stderr.splitlines() if "|" in l}
    return [m for m in WATCHED if m in names]


def check(v, cmd, devices, d):
    """Run a command once (a warm-up) and check that it works; returns nothing."""
    p = subprocess.run(v.cli + [cmd], env=v.env, cwd=d, capture_output=True, text=True)
    if p.returncode:
        sys.exit("%s: dmctl %s failed: %s" % (v.what, cmd, p.stderr[-800:]))
    if cmd in ("ls", "status", "table") and len(p.stdout.splitlines()) != devices:
        sys.exit("%s: dmctl %s printed %d lines, not %d" % (
            v.what, cmd, len(p.stdout.splitlines()), devices))


def main(argv=None):
    a = parse_args(argv)
    load_before = load()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        vs, pair = variants(a, d)
        cases = {}
        for v in vs:
            populate(v.env["DMCTL_SIM_DIR"], os.path.join(d, "disk.img"), a.devices,
                     python=v.python, env_=v.env)
            v.preloaded = preloaded(v.python, v.env, d)
            v.module = subprocess.run([v.python, "-c", "import dmctl; print(dmctl.__file__)"],
                                      env=v.env, cwd=d, capture_output=True,
                                      text=True).stdout.strip()
            for cmd, _ in COMMANDS:
                check(v, cmd, a.devices, d)
                cases[v.name(cmd)] = (lambda v=v, cmd=cmd: run_timed(v.cli + [cmd], v.env, cwd=d))
            if v.base not in cases:
                argv_ = [v.python, "-c", "pass"]
                run_timed(argv_, v.env, cwd=d)
                cases[v.base] = (lambda argv_=argv_, e=v.env: run_timed(argv_, e, cwd=d))
        times = interleaved(cases, a.rounds, sync=False)

    header("CLI start-up next to `python -c pass` of the same interpreter, %d simulated "
           "devices" % a.devices, a.rounds, load_before)
    for v in vs:
        print("-- %s: %s (dmctl from %s)" % (v.key, v.what, os.path.dirname(v.module)))
        labels = [("python -c pass (%s)" % v.python, v.base)]
        labels += [("dmctl " + cmd, v.name(cmd)) for cmd, _ in COMMANDS]
        report_times(times, labels)
        if v.preloaded:
            print("  (note: this interpreter's start-up itself imports %s: their cost is "
                  "in the baseline, not in dmctl's share)" % ", ".join(v.preloaded))
        report_ratios(ratio_rows(times, [("dmctl %s vs python -c pass" % cmd, v.name(cmd),
                                          v.base, target) for cmd, target in COMMANDS]))
    if pair:
        after, before = pair
        print("-- after/before: %s vs %s (same rounds)" % (after.what, before.what))
        report_ratios(ratio_rows(times, [("dmctl %s, after/before" % cmd, after.name(cmd),
                                          before.name(cmd), REGRESSION)
                                         for cmd, _ in COMMANDS]))
        own = []
        for cmd, _ in COMMANDS:
            share = [[median_range(times[v.name(cmd)], k, 1e3)[0] -
                      median_range(times[v.base], k, 1e3)[0] for v in (before, after)]
                     for k in (0, 1)]
            own.append("%s %s -> %s (CPU %s -> %s)" % (cmd, num(share[0][0]), num(share[0][1]),
                                                      num(share[1][0]), num(share[1][1])))
        print("dmctl's own share (median minus python -c pass's), before -> after, ms: "
              + ", ".join(own))


if __name__ == "__main__":
    main()
