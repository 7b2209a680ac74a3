"""The layering of ``dmctl/``, checked from the source with ``ast`` (docs/architecture.md).

Top to bottom: ``cli`` and ``tools`` (programs) -> ``libdm`` (libdevmapper's policy, the
public API's pieces) -> ``backend`` (the Mapper interface: kernel, sim) -> the simulated
kernel ``sim`` and ``ioctl``, ``formats``, ``pdata``, and the shared bottom modules
(``constants``, ``records``, ``errors``, ``numbers``, ``getopt``, ``progress``).  Every
import counts, function-local ones included.
"""

import ast
import os
import re

from testlib import ROOT

PKG = os.path.join(ROOT, "dmctl")

# what each layer may import (besides itself and the bottom)
BOTTOM = {"dmctl", "dmctl.constants", "dmctl.records", "dmctl.errors", "dmctl.numbers",
          "dmctl.getopt", "dmctl.progress"}
ALLOWED = {
    "cli": {"cli", "tools", "libdm", "backend", "sim", "ioctl", "formats", "pdata", "logd",
            "export"},
    "testing": {"testing", "export", "libdm", "backend"},   # the pytest plugin
    "export": {"export", "libdm", "backend", "sim"},         # dmctl sim export (nbdkit)
    "tools": {"tools", "formats", "pdata"},
    "logd": {"logd", "formats", "pdata"},       # the daemon: sim talks to it over a socket
    "libdm": {"libdm", "backend"},
    "backend": {"backend", "sim", "ioctl"},
    "sim": {"sim", "formats", "pdata"},
    "ioctl": {"ioctl"},
    "formats": {"formats", "pdata"},
    "pdata": {"pdata"},
}


def _modules():
    mods = {}
    for dp, _dn, fn in os.walk(PKG):
        for f in fn:
            if f.endswith(".py"):
                p = os.path.join(dp, f)
                m = os.path.relpath(p[:-3], ROOT).replace(os.sep, ".")
                if m.endswith(".__init__"):
                    m = m[:-len(".__init__")]
                mods[m] = p
    return mods


def _graph():
    mods = _modules()
    g = {}
    for m, p in mods.items():
        with open(p) as f:
            tree = ast.parse(f.read(), p)
        deps = set()
        for n in ast.walk(tree):
            names = []
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                if n.level:
                    base = m.split(".")
                    if not p.endswith("__init__.py"):
                        base = base[:-1]
                    base = base[:len(base) - n.level + 1]
                    b = ".".join(base + ([n.module] if n.module else []))
                else:
                    b = n.module
                names = [b + "." + a.name if b + "." + a.name in mods else b
                         for a in n.names]
            for x in names:
                while x and x not in mods:
                    x = x.rpartition(".")[0]
                if x and x.startswith("dmctl") and x != m:
                    deps.add(x)
        g[m] = deps
    return g


def _layer(m):
    parts = m.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_no_import_circles():
    g = _graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))
    for v in sorted(g):
        if v not in index:
            visit(v)
    assert cycles == []


def test_arrows_point_down():
    bad = []
    for m, deps in sorted(_graph().items()):
        layer = _layer(m)
        if layer is None:
            continue
        for d in sorted(deps):
            if d in BOTTOM:
                continue
            if _layer(d) not in ALLOWED[layer]:
                bad.append("%s -> %s" % (m, d))
    assert bad == []


def test_bottom_modules_import_nothing_above():
    bad = ["%s -> %s" % (m, d) for m, deps in sorted(_graph().items())
           if m in BOTTOM - {"dmctl"} for d in sorted(deps) if d not in BOTTOM]
    assert bad == []


def test_each_dm_constant_defined_once():
    """DM ABI constants (``DM_*`` names) are assigned in dmctl/constants.py only."""
    where = {}
    for m, p in _modules().items():
        with open(p) as f:
            tree = ast.parse(f.read(), p)
        for n in tree.body:
            targets = n.targets if isinstance(n, ast.Assign) else (
                [n.target] if isinstance(n, ast.AnnAssign) else [])
            for t in targets:
                if isinstance(t, ast.Name) and re.match(r"DM_[A-Z0-9_]+$", t.id):
                    where.setdefault(t.id, []).append(m)
    bad = {k: v for k, v in where.items() if v != ["dmctl.constants"]}
    assert bad == {}
