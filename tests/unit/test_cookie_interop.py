"""Cookie interoperability with the real dmsetup/libdevmapper on a real kernel.

Runs only inside the VM tier's guest (DMCTL_VM_GUEST=1: real device-mapper, no udevd):
``tests/vm/run tests/unit/test_cookie_interop.py -q``.  The guest's /run is a fresh
tmpfs, so "udev is running" is made true for libdm and dmctl alike by creating
/run/udev/control, and a stand-in for udevd's 95-dm-notify rule listens to the kernel's
uevents (netlink, through pyudev) and runs ``<tool> udevcomplete $DM_COOKIE`` for each
dm uevent -- with the *other* tool than the one waiting:

* real ``dmsetup create/remove`` released by ``dmctl udevcomplete``;
* ``dmctl create/remove`` (kernel backend) released by the real ``dmsetup udevcomplete``;
* ``udevcreatecookie``/``udevcomplete``/``udevreleasecookie`` across the two tools;
* a cookie nobody completes: dmctl returns after --udevtimeout with its explanation.
"""

import os
import stat
import subprocess
import sys
import threading
import time

import pytest

IN_GUEST = os.environ.get("DMCTL_VM_GUEST") == "1"
pytestmark = pytest.mark.skipif(not IN_GUEST, reason="runs in the VM tier's guest only")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DMSETUP = "/usr/sbin/dmsetup"
CONTROL = "/run/udev/control"
DMCTL = [sys.executable, "-m", "dmctl"]
TABLE = "0 2048 zero"


def env(**kw):
    e = dict(os.environ, PYTHONPATH=ROOT, DMCTL_BACKEND="kernel")
    for v in ("DM_DISABLE_UDEV", "DM_UDEV_COOKIE", "DMCTL_UDEV_TIMEOUT"):
        e.pop(v, None)
    e.update(kw)
    return e


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True, env=env(**kw),
                          cwd=ROOT, timeout=timeout)


def dmsetup(*a, **kw):
    return run([DMSETUP] + list(a), **kw)


def dmctl(*a, **kw):
    return run(DMCTL + list(a), **kw)


class FakeUdevd:
    """95-dm-notify.rules: ``RUN+="dmsetup udevcomplete $env{DM_COOKIE}"`` for every
    dm uevent that carries a cookie, run with ``tool``."""

    def __init__(self, tool):
        import pyudev
        self.tool = tool
        self.ctx = pyudev.Context()
        self.mon = pyudev.Monitor.from_netlink(self.ctx, source="kernel")
        self.mon.filter_by("block")
        self.mon.start()
        self.events = []
        self.runs = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            dev = self.mon.poll(timeout=0.2)
            if dev is None or not (dev.sys_name or "").startswith("dm-"):
                continue
            props = dict(dev.properties)
            self.events.append((dev.action, props.get("DM_COOKIE")))
            if props.get("DM_COOKIE"):
                self.runs.append(self.tool("udevcomplete", props["DM_COOKIE"]))

    def close(self):
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def udev_running():
    os.makedirs("/run/udev", exist_ok=True)
    with open(CONTROL, "w"):
        pass
    yield
    os.unlink(CONTROL)
    for name in ("ck-dmsetup", "ck-dmctl", "ck-timeout", "ck-nodes"):
        subprocess.run([DMSETUP, "remove", "--noudevsync", name], capture_output=True,
                       env=env(DM_DISABLE_UDEV="1"))


def no_cookies_left():
    r = dmsetup("udevcookies")
    return r.stdout.count("\n") == 1


def test_dmsetup_lifecycle_released_by_dmctl_udevcomplete(udev_running):
    udevd = FakeUdevd(dmctl)
    try:
        t = time.monotonic()
        r = dmsetup("create", "ck-dmsetup", "--table", TABLE, timeout=60)
        assert r.returncode == 0, r
        r = dmsetup("remove", "ck-dmsetup", timeout=60)
        assert r.returncode == 0, r
        assert time.monotonic() - t < 30
    finally:
        udevd.close()
    assert [a for a, c in udevd.events if c] == ["change", "remove"], udevd.events
    for p in udevd.runs:
        assert p.returncode == 0 and p.stdout.startswith("DM_COOKIE_COMPLETED=0x"), p
    assert no_cookies_left()


def test_dmctl_lifecycle_released_by_dmsetup_udevcomplete(udev_running):
    udevd = FakeUdevd(dmsetup)
    try:
        t = time.monotonic()
        r = dmctl("--udevtimeout", "20", "create", "ck-dmctl", "--table", TABLE)
        assert r.returncode == 0 and "not completed" not in r.stderr, r
        r = dmctl("--udevtimeout", "20", "remove", "ck-dmctl")
        assert r.returncode == 0 and "not completed" not in r.stderr, r
        # no timeout message above is the proof; Python under TCG starts slowly
        assert time.monotonic() - t < 40
    finally:
        udevd.close()
    cookies = [c for a, c in udevd.events if c]
    assert len(cookies) == 2, udevd.events
    # libdm's flags + a semaphore base: 0x60____ (DISABLE_LIBRARY_FALLBACK|PRIMARY_SOURCE)
    for c in cookies:
        assert int(c) >> 16 == 0x60 and int(c) & 0xFFFF, c
    for p in udevd.runs:
        assert p.returncode == 0, p
    assert no_cookies_left()


def test_dmctl_timeout_with_nobody_completing(udev_running):
    t = time.monotonic()
    r = dmctl("--udevtimeout", "2", "create", "ck-timeout", "--table", TABLE)
    took = time.monotonic() - t
    assert r.returncode == 0, r
    assert 2 <= took < 60
    assert "was not completed within 2 s" in r.stderr, r
    assert '"change" uevent of ck-timeout' in r.stderr, r
    assert dmsetup("info", "ck-timeout").returncode == 0
    assert no_cookies_left()


def test_cookie_commands_across_tools(udev_running):
    # dmctl creates, dmsetup completes and releases
    r = dmctl("udevcreatecookie")
    assert r.returncode == 0 and r.stdout.startswith("0x0D4D"), r
    c = int(r.stdout, 16)
    from dmctl.libdm import cookie as ck
    semid = ck.semget(c, 1, 0)
    ck.sem_inc(c, semid)
    r = dmsetup("udevcomplete", str(0x00600000 | (c & 0xFFFF)))
    assert r.returncode == 0 and ck.getval(semid) == 1, r
    r = dmsetup("udevreleasecookie", "0x%x" % c, timeout=20)
    assert r.returncode == 0, r
    with pytest.raises(OSError):
        ck.semget(c, 1, 0)
    # dmsetup creates, dmctl completes and releases
    r = dmsetup("udevcreatecookie")
    assert r.returncode == 0 and r.stdout.startswith("0x0D4D"), r
    c = int(r.stdout, 16)
    semid = ck.semget(c, 1, 0)
    ck.sem_inc(c, semid)
    r = dmctl("udevcomplete", str(c))
    assert r.returncode == 0 and ck.getval(semid) == 1, r
    r = dmctl("udevreleasecookie", "%d" % c)
    assert (r.returncode, r.stderr) == (0, ""), r
    with pytest.raises(OSError):
        ck.semget(c, 1, 0)


def test_node_fallback_on_real_kernel():
    """DM_DISABLE_UDEV=1: libdm's node (dmsetup) and dmctl's: same device number."""
    assert not os.path.exists(CONTROL)
    r = dmsetup("create", "ck-nodes", "--table", TABLE, DM_DISABLE_UDEV="1")
    assert r.returncode == 0, r
    st1 = os.lstat("/dev/mapper/ck-nodes")
    r = dmsetup("remove", "ck-nodes", DM_DISABLE_UDEV="1")
    assert not os.path.lexists("/dev/mapper/ck-nodes")
    r = dmctl("create", "ck-nodes", "--table", TABLE, DM_DISABLE_UDEV="1")
    assert r.returncode == 0, r
    st2 = os.lstat("/dev/mapper/ck-nodes")
    assert stat.S_ISBLK(st2.st_mode) and stat.S_ISBLK(st1.st_mode)
    assert st1.st_rdev == st2.st_rdev
    # the same node libdm makes: mode, owner and group (Debian: 0660 root:disk)
    assert (st2.st_mode, st2.st_uid, st2.st_gid) == (st1.st_mode, st1.st_uid, st1.st_gid)
    r = dmctl("remove", "ck-nodes", DM_DISABLE_UDEV="1")
    assert r.returncode == 0, r
    assert not os.path.lexists("/dev/mapper/ck-nodes")
    # default policy without udev: nobody makes the node (as dmsetup)
    r = dmctl("create", "ck-nodes", "--table", TABLE)
    assert r.returncode == 0 and not os.path.lexists("/dev/mapper/ck-nodes"), r
    r = dmctl("mknodes", "ck-nodes")
    assert r.returncode == 0 and stat.S_ISBLK(os.lstat("/dev/mapper/ck-nodes").st_mode)
    r = dmctl("--verifyudev", "remove", "ck-nodes")
    assert r.returncode == 0 and not os.path.lexists("/dev/mapper/ck-nodes"), r


def test_resume_without_uevent_does_not_wait(udev_running):
    """Resuming a device that is not suspended sends no uevent (the reply lacks
    DM_UEVENT_GENERATED_FLAG): libdm completes the cookie itself and returns at once."""
    r = dmsetup("create", "ck-timeout", "--table", TABLE, "--noudevsync")
    assert r.returncode == 0, r
    t = time.monotonic()
    r = dmsetup("resume", "ck-timeout", timeout=60)        # libdm: no wait at all
    assert r.returncode == 0, r
    base = time.monotonic() - t
    t = time.monotonic()
    r = dmctl("--udevtimeout", "10", "resume", "ck-timeout")
    assert r.returncode == 0, r
    assert "not completed" not in r.stderr, r
    assert time.monotonic() - t < base + 8


def test_outer_transaction_across_tools(udev_running):
    """lvm-style: dmsetup udevcreatecookie, dmctl --udevcookie create + rename
    (no wait), udev completes with dmctl, dmsetup udevreleasecookie waits."""
    udevd = FakeUdevd(dmctl)
    try:
        r = dmsetup("udevcreatecookie")
        assert r.returncode == 0 and r.stdout.startswith("0x0D4D"), r
        c = r.stdout.strip()
        r = dmctl("--udevcookie", c, "create", "ck-dmctl", "--table", TABLE)
        assert r.returncode == 0 and r.stderr == "", r
        r = dmctl("rename", "ck-dmctl", "ck-dmctl2", DM_UDEV_COOKIE=c)
        assert r.returncode == 0 and r.stderr == "", r
        r = dmsetup("udevreleasecookie", c, timeout=60)
        assert r.returncode == 0, r
        r = dmctl("--udevtimeout", "20", "remove", "ck-dmctl2")
        assert r.returncode == 0 and "not completed" not in r.stderr, r
    finally:
        udevd.close()
        dmsetup("remove", "--noudevsync", "ck-dmctl2", DM_DISABLE_UDEV="1")
    cookies = [int(ck_) for a, ck_ in udevd.events if ck_]
    assert len(cookies) == 3 and len({x & 0xFFFF for x in cookies[:2]}) == 1, udevd.events
    assert cookies[0] & 0xFFFF == int(c, 16) & 0xFFFF
    assert no_cookies_left()


def test_verifyudev_falls_back_when_udev_makes_no_node(udev_running):
    """udev "runs" (completes cookies) but its rules make no /dev/mapper link:
    --verifyudev makes the node after the wait, with libdm's warning."""
    udevd = FakeUdevd(dmctl)
    try:
        r = dmctl("--verifyudev", "--udevtimeout", "20", "create", "ck-nodes", "--table",
                  TABLE)
        assert r.returncode == 0, r
        # and the udev database check: the stand-in ran no 10-dm.rules
        assert r.stderr == ("/dev/mapper/ck-nodes not set up by udev: Falling back to "
                            "direct node creation.\n"
                            "udev has no DM_UDEV_RULES_VSN for ck-nodes (254:0): the "
                            "device-mapper udev rules (10-dm.rules) did not run for it.\n"
                            ), r
        assert stat.S_ISBLK(os.lstat("/dev/mapper/ck-nodes").st_mode)
        r = dmctl("--verifyudev", "--udevtimeout", "20", "remove", "ck-nodes")
        assert r.returncode == 0, r
        assert r.stderr == ("Node /dev/mapper/ck-nodes was not removed by udev. Falling "
                            "back to direct node removal.\n"), r
        assert not os.path.lexists("/dev/mapper/ck-nodes")
    finally:
        udevd.close()


def test_other_dev_dir_gets_symlinks(tmp_path):
    d = str(tmp_path / "dev")
    r = dmctl("create", "ck-nodes", "--table", TABLE, DM_DEV_DIR=d)
    assert r.returncode == 0, r
    p = os.path.join(d, "mapper", "ck-nodes")
    assert os.path.islink(p) and os.readlink(p).startswith("/dev/dm-"), r
    info = os.stat(p)
    r = dmsetup("info", "-c", "--noheadings", "-o", "major,minor", "ck-nodes")
    assert r.stdout.strip() == "%d:%d" % (os.major(info.st_rdev), os.minor(info.st_rdev))
    r = dmctl("rename", "ck-nodes", "ck-nodes2", DM_DEV_DIR=d)
    assert r.returncode == 0 and os.path.islink(os.path.join(d, "mapper", "ck-nodes2")), r
    r = dmctl("remove", "ck-nodes2", DM_DEV_DIR=d)
    assert r.returncode == 0 and os.listdir(os.path.join(d, "mapper")) in ([], ["control"]), r
