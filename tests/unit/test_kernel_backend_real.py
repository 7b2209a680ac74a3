"""KernelMapper against a real kernel (only with DMCTL_KERNEL_TESTS=1, as root, with dm).

Meant for the QEMU guest of the VM tier, e.g.
``tests/vm/run --cmd "DMCTL_KERNEL_TESTS=1 python3 -m pytest -q tests/unit/test_kernel_backend_real.py"``.
It creates loop devices over files in /tmp and dm devices named ``dmctl-ut-*``, and
removes what it created (never remove_all).

The VM tier runs this file (scripts/test sets DMCTL_KERNEL_TESTS=1 for tests/vm/run).

Kernel bug avoided on purpose: on Debian's 6.1 kernel (linux-image-6.1.0-56, 6.1.192 under
QEMU) a table ``clear`` followed by a ``rename`` of the same device corrupts dm-ima's
bookkeeping, and a later remove ends in ``kernel BUG at mm/slub.c:419`` in
dm_ima_measure_on_device_remove.  The real dmsetup alone reproduces it (2026-11-22):

    dmsetup create r1 -u R1 --table "0 8 zero"; dmsetup suspend r1
    dmsetup load r1 --table "0 4096 zero"; dmsetup clear r1; dmsetup resume r1
    dmsetup rename r1 r2; dmsetup remove r2
    for i in 1 2 3 4 5 6 7 8; do dmsetup create w$i --table "0 8 zero"
        dmsetup rename w$i x$i; dmsetup remove x$i; done       # -> kernel BUG

(the same script without the clear, or without the first rename, survives).  So
test_lifecycle clears one device and renames another.
"""

import errno
import os
import shutil
import subprocess
import threading
import time

import pytest

from dmctl.backend.base import DevId, TargetLine as TL
from dmctl.backend.kernel import KernelMapper
from dmctl.errors import DmError
from dmctl.ioctl import abi, codec

pytestmark = pytest.mark.skipif(
    os.environ.get("DMCTL_KERNEL_TESTS") != "1" or os.geteuid() != 0
    or not os.path.exists(abi.DM_CONTROL_PATH) or not shutil.which("losetup"),
    reason="real-kernel tests: set DMCTL_KERNEL_TESTS=1 and run as root with device-mapper")

P = "dmctl-ut-"


@pytest.fixture(scope="module")
def loops(tmp_path_factory):
    d = tmp_path_factory.mktemp("loops")
    devs = []
    for name, size in (("origin", 64 << 20), ("meta", 8 << 20), ("lin", 16 << 20)):
        f = d / name
        with open(f, "wb") as fh:
            fh.truncate(size)
        out = subprocess.run(["losetup", "-f", "--show", str(f)], capture_output=True,
                             text=True, check=True)
        devs.append(out.stdout.strip())
    yield devs
    for dev in devs:
        subprocess.run(["losetup", "-d", dev])


@pytest.fixture
def km():
    k = KernelMapper()
    yield k
    for e in k.list_devices():
        if e.name.startswith(P):
            try:
                k.remove(e.name)
            except DmError:
                pass
    k.close()


def _devno(path):
    st = os.stat(path)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def test_version_and_targets(km):
    v = km.version()
    assert v[0] == 4 and v[1] >= 0
    names = [t.name for t in km.target_versions()]
    assert "linear" in names and "error" in names
    assert km.target_version("linear").name == "linear"
    with pytest.raises(DmError) as e:
        km.target_version("no-such-target-xyz")
    assert e.value.errno == errno.EINVAL


def test_lifecycle(km, loops):
    lin = loops[2]
    mj, mn = _devno(lin)
    i = km.create(P + "a", uuid=P + "UUID-A")
    assert not i.live_table and i.target_count == 0
    i = km.load((i.major, i.minor), [TL(0, 8192, "linear", lin + " 0")])
    assert i.inactive_table and i.name == P + "a"          # the kernel filled the name in
    i = km.resume(P + "a")
    assert i.live_table and i.target_count == 1 and not i.suspended
    _, lines = km.table(P + "a")
    assert lines == [TL(0, 8192, "linear", "%d:%d 0" % (mj, mn))]
    _, lines = km.status(P + "a")
    assert lines == [TL(0, 8192, "linear", "")]
    _, deps = km.deps(P + "a")
    assert deps == [(mj, mn)]
    ents = {e.name: e for e in km.list_devices(uuid=True)}
    if km.kernel_version[1] >= abi.DM_NAME_LIST_UUID_MINOR:
        assert ents[P + "a"].uuid == P + "UUID-A"
    assert km.info(DevId(uuid=P + "UUID-A")).name == P + "a"
    assert km.suspend(P + "a").suspended
    km.load(P + "a", [TL(0, 4096, "zero", "")])
    assert km.info(P + "a", inactive=True).target_count == 1
    i = km.clear(P + "a")
    assert not i.inactive_table
    assert not km.resume(P + "a").suspended
    km.remove(P + "a")
    # a fresh device for rename: see the module docstring (dm-ima bug after clear)
    km.create(P + "a")
    km.load(P + "a", [TL(0, 8192, "linear", lin + " 0")])
    km.resume(P + "a")
    i = km.rename(P + "a", P + "b")
    assert i.event_nr == 1 and i.name == P + "a"            # reply keeps the old name
    km.set_geometry(P + "b", "100", "2", "3", "0")
    with pytest.raises(DmError) as e:
        km.set_geometry(P + "b", "100000", "2", "3", "0")
    assert e.value.errno == errno.EINVAL
    km.remove(P + "b")
    with pytest.raises(DmError) as e:
        km.info(P + "b")
    assert (e.value.errno, e.value.op) == (errno.ENXIO, "info")


def test_errors_carry_kernel_log(km, loops):
    km.create(P + "bad")
    with pytest.raises(DmError) as e:
        km.load(P + "bad", [TL(0, 8, "nosuchtgt", "")])
    assert (e.value.errno, e.value.op) == (errno.EINVAL, "reload")
    if os.access("/dev/kmsg", os.R_OK):
        assert "unknown target type" in (e.value.detail or "")
    with pytest.raises(DmError) as e:
        km.create(P + "bad")
    assert e.value.errno == errno.EBUSY
    try:
        r = km.message(P + "bad", 0, "hello")        # no live table
        assert r is None                              # older kernels: positive 2
    except DmError as e:
        assert e.errno == errno.EINVAL


def test_buffer_doubling_against_the_kernel(km, loops):
    km.create(P + "big")
    km.load(P + "big", [TL(i * 8, 8, "zero", "") for i in range(40)])
    km.resume(P + "big")
    small = KernelMapper()
    small.min_buffer = 400
    sizes = []
    ioctl = small.control.ioctl

    def rec(nr, buf):
        sizes.append((nr, len(buf)))
        return ioctl(nr, buf)
    small.control.ioctl = rec
    _, lines = small.table(P + "big")
    assert len(lines) == 40 and lines[39] == TL(312, 8, "zero", "")
    got = [s for nr, s in sizes if nr == abi.DM_TABLE_STATUS_CMD]
    assert got[0] == 400 and got == [400 << i for i in range(len(got))] and len(got) > 1
    small.close()


def test_wait_event_timeout_and_wakeup(km, loops):
    km.create(P + "w")
    km.load(P + "w", [TL(0, 8, "zero", "")])
    km.resume(P + "w")
    ev = km.info(P + "w").event_nr
    with pytest.raises(DmError) as e:
        km.wait_event(P + "w", ev, timeout=0.3)
    assert e.value.errno == errno.ETIME
    t = threading.Timer(0.2, lambda: KernelMapper().rename(P + "w", P + "w2"))
    t.start()
    t0 = time.monotonic()
    info, lines = km.wait_event(DevId(major=km.info(P + "w").major,
                                      minor=km.info(P + "w").minor), ev, timeout=10)
    t.join()
    assert info.event_nr == ev + 1 and time.monotonic() - t0 < 10
    assert lines == [TL(0, 8, "zero", "")]


def test_reply_layout_invariants(km, loops):
    """What the kernel writes back: data_start 312 for payload commands, version 4.x."""
    rec = []
    k = KernelMapper()
    ioctl = k.control.ioctl

    def spy(nr, buf):
        r = ioctl(nr, buf)
        rec.append((nr, codec.Header.unpack(buf)))
        return r
    k.control.ioctl = spy
    k.create(P + "l")
    k.load(P + "l", [TL(0, 8, "zero", "")])
    k.resume(P + "l")
    k.list_devices()
    k.status(P + "l")
    k.target_versions()
    for nr, h in rec:
        assert h.version[0] == 4 and h.version[1] >= 0
        if nr in (abi.DM_LIST_DEVICES_CMD, abi.DM_TABLE_STATUS_CMD, abi.DM_LIST_VERSIONS_CMD):
            assert h.data_start == 312 and h.data_size > 312
        elif nr != abi.DM_VERSION_CMD:
            assert h.data_size == 305
    k.close()
