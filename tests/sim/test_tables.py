"""Every example table in tables/ loads in the simulator and becomes a live device."""

import glob
import os

import pytest

from dmctl.backend.base import TargetLine
from dmctl.sim import io as sio

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLES = sorted(glob.glob(os.path.join(ROOT, "tables", "*.table")))

SIZES = {"@DATA@": 16 << 20, "@META@": 8 << 20, "@ORIGIN@": 64 << 20, "@LOG@": 32 << 20,
         "@LEG1@": 8 << 20, "@LEG2@": 8 << 20}


def parse(text):
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        start, length, ttype, *rest = line.split(None, 3)
        lines.append(TargetLine(int(start), int(length), ttype, rest[0] if rest else ""))
    return lines


def test_there_are_tables_for_every_target():
    types = set()
    for t in TABLES:
        types.update(l.target_type for l in parse(open(t).read()))
    assert {"linear", "zero", "error", "era", "log-writes", "mirror"} <= types


@pytest.mark.parametrize("path", TABLES, ids=[os.path.basename(t) for t in TABLES])
def test_table_loads_in_the_simulator(path, mapper, backing, request):
    text = open(path).read()
    if "userspace" in text:
        # as on a real kernel, a userspace dirty log needs its server running
        from logd_helpers import logd_start, logd_stop
        logd_start(mapper)
        request.addfinalizer(lambda: logd_stop(mapper, force=True))
    for ph, size in SIZES.items():
        if ph in text:
            text = text.replace(ph, backing(ph.strip("@").lower(), size))
    assert "@" not in text.split("#")[0]
    lines = parse(text)
    mapper.create("t")
    mapper.load("t", lines)
    info = mapper.resume("t")
    assert info.live_table and not info.suspended
    got = mapper.table("t")[1]
    assert [(l.start, l.length, l.target_type) for l in got] == \
        [(l.start, l.length, l.target_type) for l in lines]
    # the device does I/O
    sio.read(mapper, "t", 0, 8)
    mapper.remove("t")
