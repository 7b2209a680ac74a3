"""Shared setup for the mirror tests: backing files numbered like the golden
captures' loop devices (loop4/loop5 legs of 8 MiB, loop6 a 1 MiB log, loop7 16 MiB),
so the kernel's strings can be compared verbatim."""

import os
import shlex

from dmctl.backend.base import TargetLine as L
from dmctl.errors import DmError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "golden")

# DEVICES-mirror.txt
LOOP_SIZES = [64 << 20, 8 << 20, 16 << 20, 32 << 20, 8 << 20, 8 << 20, 1 << 20, 16 << 20]


def golden(name):
    p = os.path.join(GOLDEN, name)
    if not os.path.exists(p):
        return None
    with open(p, "rb" if name.endswith(".bin") else "r") as f:
        return f.read()


def make_loops(mapper, tmp_path, sizes=LOOP_SIZES):
    """Files loop0..loop7 registered in order, so that loopN is 7:N."""
    paths = []
    for i, size in enumerate(sizes):
        p = str(tmp_path / ("loop%d.img" % i))
        with open(p, "wb") as f:
            f.truncate(size)
        paths.append(p)

    def reg(env):
        for p in paths:
            env.backing_file(p)
    mapper.run(reg)
    return paths


def subst(table, loops):
    """A golden table line with /dev/loopN replaced by the simulator's files."""
    for i in range(len(loops) - 1, -1, -1):
        table = table.replace("/dev/loop%d" % i, loops[i])
    return table


def golden_commands(prefix="mirror"):
    """[(name, rc, argv)] from INDEX-mirror.tsv."""
    out = []
    for line in golden("INDEX-mirror.tsv").splitlines():
        if not line or line.startswith("#") or line.startswith("name\t"):
            continue
        name, rc, cmd = line.split("\t", 2)
        if name.startswith(prefix):
            out.append((name, int(rc), shlex.split(cmd)))
    return out


def create_table(argv):
    """(name, table line) of a ``dmsetup create NAME [-u U] --table T`` argv."""
    assert argv[:2] == ["dmsetup", "create"], argv
    name = argv[2]
    table = argv[argv.index("--table") + 1]
    return name, table


def mk(mapper, name, table, uuid=None):
    """dmsetup create: create, load, resume (removing the device when load fails)."""
    start, length, ttype, params = (table.split(None, 3) + [""])[:4]
    mapper.create(name, uuid=uuid)
    try:
        mapper.load(name, [L(int(start), int(length), ttype, params)])
    except DmError:
        mapper.remove(name)
        raise
    mapper.resume(name)


def status_line(mapper, name, table=False):
    lines = (mapper.table if table else mapper.status)(name)[1]
    return "\n".join("%d %d %s %s" % (l.start, l.length, l.target_type, l.params)
                     if l.params else "%d %d %s" % (l.start, l.length, l.target_type)
                     for l in lines)


def target(env, name):
    """The live mirror target object of a device (inside a transaction)."""
    return env.device_by_name(name).get_live().targets[0]
