"""Every ``dmsetup create`` of the era, log-writes and mirror golden sections, replayed
on a fresh simulator whose backing files stand in for the capture's loop devices
(same sizes, registered in the same order so the kernel log names them loop0..loop7):
exit code, stdout, stderr and the kernel's log lines must match the capture, and a
failed create must leave no device behind."""

import os
import shlex

import pytest

from tests.conftest import GOLDEN, golden
from tests.sim.test_cli_create import split_err, state

# /dev/loopN of the golden runs (DEVICES-*.txt): size in MiB
LOOPS = [64, 8, 16, 32, 8, 8, 1, 16]


def _create_rows():
    rows = []
    for section in ("era", "lw", "mirror"):
        with open(os.path.join(GOLDEN, "INDEX-%s.tsv" % section)) as f:
            for line in f:
                if line.startswith("#") or line.startswith("name\t"):
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 3:
                    continue
                name, rc, cmd = parts
                words = shlex.split(cmd)
                if words[:2] == ["dmsetup", "create"]:
                    rows.append(pytest.param(name, int(rc), words[1:], id=name))
    return rows


@pytest.fixture
def loops(backing, dmctl, mapper):
    """Backing files for /dev/loop0..7, known to the simulator in that order."""
    paths = [backing("loop%d.img" % i, size << 20) for i, size in enumerate(LOOPS)]
    table = "".join("%d 8 linear %s 0\n" % (8 * i, p) for i, p in enumerate(paths))
    r = dmctl("create", "register", "--table", table)
    assert r.rc == 0, r
    assert dmctl("remove", "register").rc == 0
    return paths


def _translate(words, paths):
    out = []
    for w in words:
        for i in range(len(paths) - 1, -1, -1):
            w = w.replace("/dev/loop%d" % i, paths[i])
        out.append(w)
    return out


@pytest.mark.parametrize("name,rc,argv", _create_rows())
def test_golden_create(dmctl, mapper, loops, name, rc, argv):
    argv = _translate(argv, loops)
    if any("/dev/mapper/errdev" in w for w in argv):
        assert dmctl("create", "errdev", "--table", "0 16384 error").rc == 0
    before = state(mapper)
    r = dmctl(*argv)
    plain, klog = split_err(r.err)
    assert r.rc == rc, r
    assert r.out == (golden(name + ".txt") or "")
    assert plain == (golden(name + ".stderr.txt") or "")
    dm = golden(name + ".dmesg.txt")
    if rc != 0:
        assert state(mapper) == before          # all or nothing
        if dm is not None:
            assert klog == dm
    else:
        assert len(state(mapper)) == len(before) + 1
