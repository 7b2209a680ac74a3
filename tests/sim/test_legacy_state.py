"""Simulator state written by an earlier dmctl (before the simulated kernel moved into
``dmctl.sim`` and the records into ``dmctl.records``) must keep working after an upgrade.

``tests/data/legacy-state-v1.tar.gz`` is a sim dir made by dmctl at commit 795ca55 with
devices of every simulated target (linear, multi-segment linear/zero/error, striped
suspended with an injected write fault, era with a checkpoint and a metadata snapshot,
log-writes with a mark, a disk-log mirror, a userspace-log mirror served by logd, a
device with only an inactive table) and unflushed writes in the write cache.
``legacy-state-v1.expected`` is what that same commit printed for the command sequence
below on a fresh copy of it.  Paths inside the state are absolute, so the archive is
unpacked at the path it was made at, under a lock (pytest-xdist runs tests in parallel).
"""

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from testlib import ROOT

DIR = "/tmp/dmctl-legacy-state-v1"
DATA = os.path.join(ROOT, "tests", "data")
SEQUENCE = ["ls", "status", "table", "info -c", "sim status", "logd status -v", "deps"]


@pytest.fixture
def legacy():
    with open(DIR + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(DIR, ignore_errors=True)
        with tarfile.open(os.path.join(DATA, "legacy-state-v1.tar.gz")) as tf:
            tf.extractall("/tmp")
        env = dict(os.environ, DMCTL_SIM_DIR=DIR + "/sim", DMCTL_BACKEND="sim",
                   PYTHONPATH=ROOT)

        def run(cmd, check=True):
            p = subprocess.run([sys.executable, "-m", "dmctl"] + cmd.split(), env=env,
                               capture_output=True, text=True)
            if check:
                assert p.returncode == 0, (cmd, p.stderr)
            return p
        # the userspace-log mirror's server ran inside the old state; now it is a daemon
        # (its kernel reconnects: CTR and RESUME again, dmctl.sim...dirty_log.userspace)
        run("logd start")
        try:
            yield run
        finally:
            run("logd stop --force", check=False)
            shutil.rmtree(DIR, ignore_errors=True)


def test_old_state_reads_as_it_did(legacy):
    out = []
    for c in SEQUENCE:
        p = legacy(c)
        out.append("$ dmctl %s\n%s%s" % (c, p.stdout, p.stderr))
    with open(os.path.join(DATA, "legacy-state-v1.expected")) as f:
        assert "".join(out) == f.read()


def test_old_state_keeps_working(legacy):
    # the write that was still in lin0's volatile cache reads back through the stack
    p = subprocess.run([sys.executable, "-m", "dmctl", "io", "read", "lin0", "4096",
                        "--sectors", "1"], capture_output=True,
                       env=dict(os.environ, DMCTL_SIM_DIR=DIR + "/sim", DMCTL_BACKEND="sim",
                                PYTHONPATH=ROOT))
    assert p.returncode == 0 and p.stdout == b"\x55" * 512
    # era answers from its restored metadata; log-writes and the mirrors take writes
    assert legacy("era changed-since 1 %s/files/meta" % DIR).stdout.split() == ["0", "2", "100", "101"]
    legacy("io write lw 64 --pattern 3 --sectors 8")
    legacy("io write mir 2048 --pattern 4 --sectors 8")
    legacy("io write mu 4096 --pattern 5 --sectors 8")
    legacy("message lw 0 mark second")
    legacy("sim settle")
    assert legacy("status mir").stdout.endswith("16/16 1 AA 3 disk 7:7 A\n")
    # the suspended striped device resumes; the fault injected on its second stripe
    # (s2 sectors 0-7, i.e. str sectors 64-71) is still there
    legacy("resume str")
    assert legacy("io write str 64 --pattern 6 --sectors 8", check=False).returncode == 1
    legacy("remove_all")
    assert legacy("ls").stdout == "No devices found\n"
