"""Every mirror status line the simulator prints parses with libdevmapper's own
parser, ``dm_get_status_mirror`` (libdm-targets.c, the one lvm2 and dmeventd's mirror
plugin use), called through ctypes, and the parse gives back what the kernel's
format means: sync counts, per-leg MAJ:MIN and health, log type and log devices.

The library is Debian's libdevmapper1.02.1; the test is skipped without it (and
fails in CI)."""

import ctypes
import os

import pytest

from dmctl.sim import bio as B
from dmctl.sim import io as sio

LIB = "/lib/x86_64-linux-gnu/libdevmapper.so.1.02.1"


class Health(ctypes.Structure):
    _fields_ = [("health", ctypes.c_char), ("major", ctypes.c_uint32),
                ("minor", ctypes.c_uint32)]


class StatusMirror(ctypes.Structure):
    _fields_ = [("total_regions", ctypes.c_uint64), ("insync_regions", ctypes.c_uint64),
                ("dev_count", ctypes.c_uint32), ("devs", ctypes.POINTER(Health)),
                ("log_type", ctypes.c_char_p), ("log_count", ctypes.c_uint32),
                ("logs", ctypes.POINTER(Health))]


@pytest.fixture(scope="module")
def libdm():
    if not os.path.exists(LIB):
        if os.environ.get("CI") == "true":
            pytest.fail("libdevmapper1.02.1 is missing")
        pytest.skip("libdevmapper not installed")
    lib = ctypes.CDLL(LIB)
    lib.dm_pool_create.restype = ctypes.c_void_p
    lib.dm_pool_create.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.dm_pool_destroy.argtypes = [ctypes.c_void_p]
    lib.dm_get_status_mirror.restype = ctypes.c_int
    lib.dm_get_status_mirror.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                         ctypes.POINTER(ctypes.POINTER(StatusMirror))]
    return lib


def parse(lib, params):
    """dm_get_status_mirror(params) -> dict, or None when libdm rejects it."""
    pool = lib.dm_pool_create(b"mirror-oracle", 1024)
    try:
        out = ctypes.POINTER(StatusMirror)()
        if not lib.dm_get_status_mirror(pool, params.encode(), ctypes.byref(out)):
            return None
        s = out.contents
        return {
            "insync": s.insync_regions, "total": s.total_regions,
            "devs": [("%d:%d" % (s.devs[i].major, s.devs[i].minor), s.devs[i].health.decode())
                     for i in range(s.dev_count)],
            "log_type": s.log_type.decode() if s.log_type else None,
            "logs": [("%d:%d" % (s.logs[i].major, s.logs[i].minor), s.logs[i].health.decode())
                     for i in range(s.log_count)],
        }
    finally:
        lib.dm_pool_destroy(pool)


def test_oracle_itself(libdm):
    # the documented parses (oracles.md 4.4), and a rejection
    assert parse(libdm, "2 253:4 253:5 400/400 1 AA 1 core") == {
        "insync": 400, "total": 400, "devs": [("253:4", "A"), ("253:5", "A")],
        "log_type": "core", "logs": []}
    assert parse(libdm, "2 /dev/loop0 /dev/loop1 400/400 1 AA 1 core") is None


def _expect(params):
    """What the kernel's INFO format means, read independently of libdm."""
    w = params.split()
    n = int(w[0])
    legs = w[1:1 + n]
    insync, total = map(int, w[1 + n].split("/"))
    health = w[3 + n]
    nlog = int(w[4 + n])
    log = w[5 + n:5 + n + nlog]
    logs = [(log[1], log[2])] if log[0] == "disk" else []
    return {"insync": insync, "total": total, "devs": list(zip(legs, health)),
            "log_type": log[0], "logs": logs}


def test_every_status_the_simulator_prints_parses(libdm, mapper, tmp_path):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim"))
    from test_mirror_helpers import make_loops, mk
    loops = make_loops(mapper, tmp_path)
    a, b, lg, c = loops[4], loops[5], loops[6], loops[7]
    seen = []

    def check(name):
        for line in mapper.status(name)[1]:
            got = parse(libdm, line.params)
            assert got is not None, line.params
            assert got == _expect(line.params), line.params
            seen.append(line.params)

    mk(mapper, "core", "0 16384 mirror core 1 1024 2 %s 0 %s 0" % (a, b))
    check("core")
    mk(mapper, "disk3", "0 16384 mirror disk 2 %s 1024 3 %s 0 %s 0 %s 0 1 handle_errors" % (lg, a, b, c))
    check("disk3")
    # a partial sync, a failed leg (S, D, R, F letters) and a failed log device
    mk(mapper, "errdev", "0 16384 error")
    mk(mapper, "mf", "0 16384 mirror core 1 1024 2 %s 0 /dev/mapper/errdev 0 1 handle_errors" % a)
    check("mf")
    mk(mapper, "big", "0 16384 mirror core 1 16 2 %s 0 %s 0" % (a, b))
    check("big")
    sio.fail(mapper, b, ["write"], (0, 1024))

    def w(env, dev, sector):
        s = sio.Session(env, sio.resolve(env, dev))
        s.submit(B.WRITE, sector, 8, bytes(4096))
    mapper.run(w, "disk3", 0)
    check("disk3")
    sio.fail(mapper, lg, ["write"])
    mapper.run(w, "disk3", 4096)
    check("disk3")
    sio.heal(mapper, b)
    sio.fail(mapper, a, ["read"])
    mapper.run(lambda env: sio.Session(env, sio.resolve(env, "core")).submit(B.READ, 0, 8))
    check("core")
    sio.heal(mapper, a)
    mk(mapper, "fl", "0 16384 mirror disk 2 %s 1024 2 %s 0 %s 0" % (loops[3], a, b))
    check("fl")                  # out of sync while "big" takes the background work
    sio.settle(mapper)
    sio.fail(mapper, b, ["flush"])
    mapper.run(w, "fl", 0)
    check("fl")
    letters = "".join(s.split()[int(s.split()[0]) + 3] for s in seen)
    for ch in "ADFRS":
        assert ch in letters, (ch, seen)
    assert any(" D" == s[-2:] for s in seen)


def test_userspace_log_status_parses(libdm, mapper, tmp_path):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sim"))
    from test_mirror_helpers import make_loops, mk
    from logd_helpers import logd_start, logd_stop
    loops = make_loops(mapper, tmp_path)
    logd_start(mapper)
    mk(mapper, "mu", "0 16384 mirror userspace 4 MIRROR-UUID-USERLOG clustered-disk 7:6 1024 "
       "2 7:4 0 7:5 0 1 handle_errors")
    st = mapper.status("mu")[1][0].params
    assert st == "2 7:4 7:5 16/16 1 AA 3 clustered-disk 7:6 A"
    got = parse(libdm, st)
    assert got["log_type"] == "clustered-disk" and got["insync"] == got["total"] == 16
    assert got["devs"] == [("7:4", "A"), ("7:5", "A")]
    logd_stop(mapper, force=True)
    st = mapper.status("mu")[1][0].params
    assert st == "2 7:4 7:5 0/16 1 AA userspace 1 COM_FAILURE"
    got = parse(libdm, st)
    assert got["log_type"] == "COM_FAILURE"
