"""Shared fixtures: an isolated simulator per test, backing files, a CLI runner."""

import os
import subprocess
import sys

import pytest

from testlib import GOLDEN, ROOT, golden  # noqa: F401

# The log daemons tests start serve their own simulated hosts and no cluster engine,
# even on a machine whose initial namespace runs a corosync (the CPG tests ask for
# corosync explicitly, inside namespaces of their own).
os.environ.setdefault("DMCTL_LOGD_CLUSTER", "none")


@pytest.fixture
def sim_dir(tmp_path, monkeypatch):
    d = tmp_path / "simstate"
    monkeypatch.setenv("DMCTL_SIM_DIR", str(d))
    monkeypatch.setenv("DMCTL_BACKEND", "sim")
    return d


@pytest.fixture
def mapper(sim_dir):
    from dmctl.backend.sim import SimMapper
    m = SimMapper(str(sim_dir))
    yield m
    m.close()


@pytest.fixture
def backing(tmp_path):
    """backing(name, size_bytes) -> path of a sparse file."""
    def make(name="disk.img", size=16 << 20):
        p = tmp_path / name
        with open(p, "wb") as f:
            f.truncate(size)
        return str(p)
    return make


class Result:
    def __init__(self, rc, out, err):
        self.rc = rc
        self.out = out
        self.err = err

    def __repr__(self):
        return "Result(rc=%r, out=%r, err=%r)" % (self.rc, self.out, self.err)


@pytest.fixture
def dmctl(sim_dir):
    """Run ``python -m dmctl ARGS`` in a subprocess against the test's simulator."""
    def run(*args, input=None, binary=False, env=None):
        e = dict(os.environ)
        e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
        if env:
            e.update(env)
        p = subprocess.run([sys.executable, "-m", "dmctl"] + list(args), input=input,
                           capture_output=True, env=e, cwd=ROOT,
                           text=not binary)
        return Result(p.returncode, p.stdout, p.stderr)
    return run
