"""dmctl.libdm.udev: dmsetup's udev flag policy, the bounded wait and libdm's node fallback,
on real semaphores and real block nodes in a temporary DM_DEV_DIR (mknod needs root).

"udev running" is simulated by pointing udev.UDEV_CONTROL at a file; the kernel is a
fake mapper whose replies carry (or lack) DM_UEVENT_GENERATED_FLAG.
"""

import errno
import os
import stat
import time

import pytest

from dmctl.libdm import cookie as ck
from dmctl.libdm import udev
from dmctl.backend.base import DeviceEntry, DeviceInfo
from dmctl.errors import DmError

UEVENT = 1 << 13
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


class FakeKernel:
    kind = "kernel"
    emits_uevents = True        # the Mapper interface's answers of the kernel backend
    has_device_nodes = True

    def __init__(self, devices=()):
        self.devices = {d.name: d for d in devices}

    def info(self, name):
        d = self.devices.get(name)
        if d is None:
            raise DmError(errno.ENXIO, op="mknodes", name=name)
        return DeviceInfo(name=d.name, major=d.major, minor=d.minor)

    def list_devices(self, uuid=False):
        return sorted(self.devices.values(), key=lambda d: d.name)

    def close(self):
        pass


class FakeSim(FakeKernel):
    kind = "sim"
    emits_uevents = False
    has_device_nodes = False


@pytest.fixture
def env(monkeypatch, tmp_path):
    for v in ("DM_DISABLE_UDEV", "DM_UDEV_COOKIE", "DMCTL_UDEV_TIMEOUT", "DM_DEV_DIR"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setattr(udev, "UDEV_CONTROL", str(tmp_path / "no-udev-control"))
    return tmp_path


def make_ctx(*switches, dev_dir="/dev/", mapper=None, command="resume", verbose=0,
             **values):
    """The udev policy (dmctl.libdm.udev.UdevPolicy) the CLI builds for a dmsetup
    command line with these switches, printing through a Ctx as dmsetup does."""
    from dmctl.cli.ctx import Ctx
    ctx = Ctx("dmsetup")
    for s in switches:
        ctx.sw.set(s)
    for k, v in values.items():
        ctx.sw.set(k, v)
    for _ in range(verbose):
        ctx.sw.set("verbose")
    ctx.dev_dir = dev_dir
    ctx.command = command
    ctx._mapper = mapper if mapper is not None else FakeKernel()
    return ctx.udev_policy()


def udev_up(env, monkeypatch):
    p = env / "control"
    p.write_text("")
    monkeypatch.setattr(udev, "UDEV_CONTROL", str(p))


def run_task(ctx, op="resume", name="lin1", uevent=True, **kw):
    tx = udev.UdevTransaction(ctx)
    t = tx.begin(op, name=name, **kw)
    info = DeviceInfo(name=name, major=254, minor=0, flags=UEVENT if uevent else 0)
    t.done(info)
    return tx, t


# ------------------------------------------------------------------ flag policy

@pytest.mark.parametrize("switches,setenv,dev_dir,want", [
    ((), {}, "/dev/", 0x60),                                   # golden: 0x600000
    ((), {"DM_DISABLE_UDEV": "1"}, "/dev/", 0x43),             # golden: 0x430000
    ((), {"DM_DISABLE_UDEV": ""}, "/dev/", 0x43),              # set-but-empty counts
    (("noudevrules",), {}, "/dev/", 0x63),
    (("verifyudev",), {}, "/dev/", 0x40),
    (("noudevrules", "verifyudev"), {}, "/dev/", 0x43),
    (("noudevsync",), {}, "/dev/", 0x60),
    ((), {}, "/tmp/x/", 0x40),
    (("noudevrules",), {}, "/tmp/x/", 0x43),
    (("verifyudev",), {"DM_UDEV_COOKIE": "0x0D4D0001"}, "/dev/", 0x60),
])
def test_event_nr_flags_without_udev(env, monkeypatch, switches, setenv, dev_dir, want):
    for k, v in setenv.items():
        monkeypatch.setenv(k, v)
    ctx = make_ctx(*switches, dev_dir=dev_dir)
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("resume", name="lin1")
    assert t.event_nr == want << 16           # udev not running: flags only, base 0
    assert not tx.sync and tx.cookie in (0, 0x0D4D0001)
    assert tx.finish()


def test_sim_backend_is_a_noop(env):
    ctx = make_ctx("verifyudev", mapper=FakeSim())
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("resume", name="x")
    assert t.event_nr == 0 and tx.inactive
    t.done(DeviceInfo(name="x", major=254, minor=0))
    assert tx.finish() and tx.node_ops == []


def test_with_udev_running_cookie_is_libdms(env, monkeypatch):
    udev_up(env, monkeypatch)
    ctx = make_ctx(udevtimeout="5")
    tx = udev.UdevTransaction(ctx)
    assert tx.sync
    t = tx.begin("resume", name="lin1")
    assert t.event_nr >> 16 == 0x60
    base = t.event_nr & 0xFFFF
    assert base and tx.cookie == 0x0D4D0000 | base
    assert ck.getval(tx.semid) == 2                  # created at 1, +1 for the task
    # udev's "dmsetup udevcomplete $DM_COOKIE" (the decimal value from the uevent)
    from dmctl.libdm.cookies import parse_cookie
    assert ck.complete(ck.cookie_key(parse_cookie(str(t.event_nr))))
    t.done(DeviceInfo(name="lin1", major=254, minor=0, flags=UEVENT))
    start = time.monotonic()
    assert tx.finish()
    assert time.monotonic() - start < 2 and not tx.wait_result.timed_out
    assert tx.cookie not in [c.cookie for c in ck.list_cookies()]


def test_no_uevent_completes_itself(env, monkeypatch):
    udev_up(env, monkeypatch)
    ctx = make_ctx(udevtimeout="5")
    tx, t = run_task(ctx, uevent=False)
    assert t.state == "completed" and ck.getval(tx.semid) == 1
    start = time.monotonic()
    assert tx.finish() and time.monotonic() - start < 1


def test_failed_ioctl_completes_itself(env, monkeypatch):
    udev_up(env, monkeypatch)
    ctx = make_ctx()
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("remove", name="gone")
    t.failed()
    assert ck.getval(tx.semid) == 1
    assert tx.finish() and not tx.wait_result.timed_out


def test_noudevsync_and_disable_udev_make_no_semaphore(env, monkeypatch):
    udev_up(env, monkeypatch)
    before = len(ck.list_cookies())
    for sw, e in ((("noudevsync",), {}), ((), {"DM_DISABLE_UDEV": "1"})):
        for k, v in e.items():
            monkeypatch.setenv(k, v)
        ctx = make_ctx(*sw)
        tx = udev.UdevTransaction(ctx)
        t = tx.begin("resume", name="x")
        assert t.event_nr & 0xFFFF == 0 and not tx.sync
        tx.finish()
    assert len(ck.list_cookies()) == before


def test_disable_udev_warns_when_udev_runs(env, monkeypatch, capsys):
    udev_up(env, monkeypatch)
    monkeypatch.setenv("DM_DISABLE_UDEV", "1")
    udev.UdevTransaction(make_ctx())
    assert capsys.readouterr().err == (
        "Udev is running and DM_DISABLE_UDEV environment variable is set. Bypassing "
        "udev, device-mapper library will manage device nodes in device directory.\n")


def test_external_cookie_is_incremented_not_waited(env, monkeypatch):
    udev_up(env, monkeypatch)
    c, semid = ck.create()
    try:
        ctx = make_ctx(udevcookie=c)
        tx, t = run_task(ctx)
        assert t.event_nr & 0xFFFF == c & 0xFFFF
        assert t.event_nr >> 16 == 0x60
        assert ck.getval(semid) == 2
        start = time.monotonic()
        assert tx.finish() and time.monotonic() - start < 1
        assert ck.getval(semid) == 2                  # still there: caller releases
    finally:
        ck.rmid(semid)


def test_external_cookie_missing_fails_like_libdm(env, monkeypatch, capsys):
    udev_up(env, monkeypatch)
    missing, semid = ck.create()
    ck.rmid(semid)
    ctx = make_ctx(udevcookie=missing)
    tx = udev.UdevTransaction(ctx)
    assert tx.begin("resume", name="x") is None
    assert capsys.readouterr().err == (
        "Could not find notification semaphore identified by cookie value %u (0x%x)\n"
        % (missing, missing))


def test_timeout_returns_and_explains(env, monkeypatch, capsys):
    udev_up(env, monkeypatch)
    ctx = make_ctx(udevtimeout="0.5")
    tx, t = run_task(ctx, name="lin1")
    start = time.monotonic()
    assert tx.finish()                          # the ioctl succeeded: not a failure
    took = time.monotonic() - start
    assert 0.45 <= took < 3
    err = capsys.readouterr().err
    assert ("Udev cookie 0x%x (semid %d) was not completed within 0.5 s: udev has not "
            "acknowledged 1 uevent(s)" % (tx.cookie, tx.semid)) in err
    assert ('expected: "change" uevent of lin1 (254:0) after resume, DM_COOKIE=%u (0x%08x, '
            'flags DISABLE_LIBRARY_FALLBACK|PRIMARY_SOURCE)' % (t.event_nr, t.event_nr)) in err
    assert "--udevtimeout" in err and "DMCTL_UDEV_TIMEOUT" in err
    assert tx.cookie not in [c.cookie for c in ck.list_cookies()]


def test_timeout_from_environment(env, monkeypatch):
    monkeypatch.setenv("DMCTL_UDEV_TIMEOUT", "2.5")
    assert udev.get_timeout(make_ctx()) == 2.5
    assert udev.get_timeout(make_ctx(udevtimeout="7")) == 7
    monkeypatch.delenv("DMCTL_UDEV_TIMEOUT")
    assert udev.get_timeout(make_ctx()) == 30
    for bad in ("0", "-1", "x", "nan", "inf"):
        with pytest.raises(ValueError):
            udev.get_timeout(make_ctx(udevtimeout=bad))


def test_remove_timeout_names_remove_uevent(env, monkeypatch, capsys):
    udev_up(env, monkeypatch)
    ctx = make_ctx(udevtimeout="0.2")
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("remove", name="old")
    t.done(DeviceInfo(name="old", major=254, minor=3, flags=UEVENT))
    tx.finish()
    assert 'expected: "remove" uevent of old (254:3) after remove' in capsys.readouterr().err


def test_debug_lines_at_vvv(env, monkeypatch, capsys):
    udev_up(env, monkeypatch)
    ctx = make_ctx(verbose=3, command="create")
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("create", name="udevtest")
    ck.complete(tx.cookie)          # udev's udevcomplete (another process: no output)
    t.done(DeviceInfo(name="udevtest", major=254, minor=0, flags=UEVENT))
    tx.finish()
    out = capsys.readouterr().out.splitlines()
    c, s = tx.cookie, tx.semid
    assert out == [
        "Udev cookie 0x%x (semid %d) created" % (c, s),
        "Udev cookie 0x%x (semid %d) incremented to 1" % (c, s),
        "Udev cookie 0x%x (semid %d) incremented to 2" % (c, s),
        "Udev cookie 0x%x (semid %d) assigned to CREATE task(0) with flags "
        "DISABLE_LIBRARY_FALLBACK         (0x20)" % (c, s),
        "udevtest: Stacking NODE_ADD (254,0) 0:%d 0660 [trust_udev]" % udev.DEFAULT_GID,
        "Udev cookie 0x%x (semid %d) decremented to 0" % (c, s),
        "Udev cookie 0x%x (semid %d) waiting for zero" % (c, s),
        "Udev cookie 0x%x (semid %d) destroyed" % (c, s),
        "udevtest: Skipping NODE_ADD (254,0) 0:%d 0660 [trust_udev]" % udev.DEFAULT_GID,
    ]


def test_remove_trusting_udev_stacks_no_node_op(env, monkeypatch, capsys):
    # libdm's _dm_task_node_ops stacks NODE_DEL only when it does not rely on udev:
    # dmsetup -vvv remove with udev running (VM tier, tests/vm/guest/test_udev.py)
    # prints no "Stacking NODE_DEL [trust_udev]" / "Skipping NODE_DEL" lines.
    from dmctl.libdm import nodes
    udev_up(env, monkeypatch)
    ctx = make_ctx(verbose=3, command="remove")
    c = nodes.sync_begin(ctx, 0x20)
    # c is the event_nr (udev flags << 16 | base), the DM_COOKIE udev's rule passes to
    # `dmsetup udevcomplete`, which completes the semaphore keyed by the cookie
    assert ck.complete(ck.cookie_key(c))
    nodes.sync_done(ctx, c, DeviceInfo(flags=UEVENT))
    nodes.remove_node(ctx, "udevtest", c)
    tx = ctx.tx
    assert tx.node_ops == []
    start = time.monotonic()
    assert nodes.sync_wait(ctx, c)
    assert not tx.wait_result.timed_out and tx.wait_result.pending == 0
    assert time.monotonic() - start < 5
    out, err = capsys.readouterr()
    assert "NODE_DEL" not in out and err == ""
    tx = udev.UdevTransaction(make_ctx(command="remove"))
    t = tx.begin("remove", name="udevtest")
    ck.complete(tx.cookie)
    t.done(DeviceInfo(name="udevtest", flags=UEVENT))
    assert tx.node_ops == [] and tx.finish()
    # without trust (--verifyudev) the NODE_DEL is stacked and processed
    ctx = make_ctx("verifyudev", verbose=3, command="remove")
    c = nodes.sync_begin(ctx, 0)
    assert ck.complete(ck.cookie_key(c))
    nodes.sync_done(ctx, c, DeviceInfo(flags=UEVENT))
    nodes.remove_node(ctx, "udevtest", c)
    tx = ctx.tx
    assert [o.kind for o in tx.node_ops] == ["del"]
    start = time.monotonic()
    assert nodes.sync_wait(ctx, c)
    assert not tx.wait_result.timed_out and tx.wait_result.pending == 0
    assert time.monotonic() - start < 5
    out = capsys.readouterr().out
    assert "udevtest: Stacking NODE_DEL [verify_udev]" in out
    assert "udevtest: Processing NODE_DEL [verify_udev]" in out


def test_not_running_debug_line(env, capsys):
    udev.UdevTransaction(make_ctx(verbose=3))
    assert capsys.readouterr().out == (
        "Udev is not running. Not using udev synchronisation code.\n")


# ------------------------------------------------------------------ nodes

def node(ddir, name):
    return os.path.join(str(ddir), "mapper", name)


def assert_blk(path, major, minor, mode=0o660, uid=0, gid=None):
    # Debian dmsetup's defaults (golden udev-disabled-ls-dev-mapper.txt: root disk 0660)
    if gid is None:
        gid = udev.DEFAULT_GID
    st = os.lstat(path)
    assert stat.S_ISBLK(st.st_mode), path
    assert st.st_rdev == os.makedev(major, minor)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid)


@ROOT_ONLY
def test_default_without_udev_makes_no_node(env):
    # dmsetup in the golden run: no /dev/mapper/udevtest without udev (trust_udev).
    # The dev dir must be "/dev/" for that policy, so only check the stacked op.
    ctx = make_ctx()
    tx, t = run_task(ctx)
    assert [(o.kind, o.rely) for o in tx.node_ops] == [("add", True)]


@ROOT_ONLY
def test_disable_udev_creates_and_removes_node(env, monkeypatch):
    monkeypatch.setenv("DM_DISABLE_UDEV", "1")
    ddir = env / "dev"
    ctx = make_ctx(dev_dir=str(ddir) + "/")
    tx, t = run_task(ctx, name="udevtest")
    assert tx.finish()
    assert_blk(node(ddir, "udevtest"), 254, 0)
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("remove", name="udevtest")
    t.done(DeviceInfo(name="udevtest", flags=UEVENT))
    assert tx.finish()
    assert not os.path.lexists(node(ddir, "udevtest"))


@ROOT_ONLY
def test_verifyudev_creates_node_with_uid_gid_mode(env):
    ddir = env / "dev"
    ctx = make_ctx("verifyudev", dev_dir=str(ddir) + "/", uid=12, gid=6, mode=0o660)
    tx, t = run_task(ctx, op="create", name="udevtest")
    assert tx.finish()
    assert_blk(node(ddir, "udevtest"), 254, 0, 0o660, 12, 6)


@ROOT_ONLY
def test_rename_node(env):
    ddir = env / "dev"
    ctx = make_ctx("verifyudev", dev_dir=str(ddir) + "/")
    tx, _ = run_task(ctx, name="a")
    tx.finish()
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("rename", name="a", new_name="b")
    t.done(DeviceInfo(name="a", major=254, minor=0, flags=UEVENT))
    tx.finish()
    assert not os.path.lexists(node(ddir, "a"))
    assert_blk(node(ddir, "b"), 254, 0)
    # --setuuid renames no node
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("rename", name="b", new_name="UUID-X", set_uuid=True)
    t.done(DeviceInfo(name="b", major=254, minor=0, flags=UEVENT))
    tx.finish()
    assert_blk(node(ddir, "b"), 254, 0)


@ROOT_ONLY
def test_add_node_replaces_wrong_device_and_keeps_right_one(env):
    ddir = env / "dev"
    ctx = make_ctx(dev_dir=str(ddir) + "/")
    assert udev.add_node(ctx, "x", 254, 7)
    os.chmod(node(ddir, "x"), 0o644)
    assert udev.add_node(ctx, "x", 254, 7)               # right inode: untouched
    assert_blk(node(ddir, "x"), 254, 7, mode=0o644)
    assert udev.add_node(ctx, "x", 254, 8)               # wrong: recreated
    assert_blk(node(ddir, "x"), 254, 8)
    os.symlink("/nonexistent", node(ddir, "dangling"))
    assert udev.add_node(ctx, "dangling", 254, 9)
    assert_blk(node(ddir, "dangling"), 254, 9)


@ROOT_ONLY
def test_add_node_refuses_non_block_file(env, capsys):
    ddir = env / "dev"
    os.makedirs(ddir / "mapper")
    (ddir / "mapper" / "f").write_text("x")
    ctx = make_ctx(dev_dir=str(ddir) + "/")
    assert not udev.add_node(ctx, "f", 254, 1)
    assert capsys.readouterr().err == (
        "A non-block device file at '%s' is already present\n" % node(ddir, "f"))


@ROOT_ONLY
def test_symlink_to_kernel_node_when_dev_dir_differs(env, monkeypatch):
    ddir = env / "dev"
    knode = env / "dm-5"
    os.mknod(str(knode), stat.S_IFBLK | 0o600, os.makedev(254, 5))
    monkeypatch.setattr(udev, "_kernel_node", lambda ma, mi: str(knode))
    ctx = make_ctx(dev_dir=str(ddir) + "/")
    assert udev.add_node(ctx, "y", 254, 5)
    p = node(ddir, "y")
    assert os.path.islink(p) and os.readlink(p) == str(knode)
    assert os.stat(p).st_rdev == os.makedev(254, 5)
    assert udev.add_node(ctx, "y", 254, 5)                 # accepted as is
    assert os.path.islink(p)


@ROOT_ONLY
def test_mknodes_syncs_directory(env):
    ddir = env / "dev"
    ctx = make_ctx(dev_dir=str(ddir) + "/")
    k = FakeKernel([DeviceEntry("a", 254, 0), DeviceEntry("b", 254, 1)])
    assert udev.add_node(ctx, "stale", 254, 9)
    assert udev.add_node(ctx, "a", 254, 4)                 # wrong numbers
    assert udev.mknodes(ctx, k)
    assert sorted(os.listdir(ddir / "mapper")) == ["a", "b", "control"]
    assert_blk(node(ddir, "a"), 254, 0)
    assert_blk(node(ddir, "b"), 254, 1)
    st = os.stat(node(ddir, "control"))
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 10
    # one name: stale -> removed, existing -> made
    os.unlink(node(ddir, "b"))
    assert udev.add_node(ctx, "zz", 254, 9)
    assert udev.mknodes(ctx, k, "b") and udev.mknodes(ctx, k, "zz")
    assert sorted(os.listdir(ddir / "mapper")) == ["a", "b", "control"]
    assert udev.mknodes(make_ctx(mapper=FakeSim()), FakeSim())


@ROOT_ONLY
def test_verifyudev_warns_when_udev_did_not_make_node(env, monkeypatch, capsys):
    """udev running, --verifyudev, but no node appeared: libdm's fallback warning.
    (Needs the dev dir to be /dev/ for libdm's checking, so node ops are redirected.)"""
    udev_up(env, monkeypatch)
    ddir = str(env / "dev") + "/"
    monkeypatch.setattr(udev, "node_path", lambda ctx, name: ddir + "mapper/" + name)
    monkeypatch.setattr(udev, "_ensure_mapper_dir",
                        lambda ctx: os.makedirs(ddir + "mapper", exist_ok=True))
    monkeypatch.setattr(udev, "check_udev_properties", lambda *a, **k: [])
    ctx = make_ctx("verifyudev", udevtimeout="5")
    tx = udev.UdevTransaction(ctx)
    t = tx.begin("resume", name="v1")
    ck.complete(tx.cookie)
    t.done(DeviceInfo(name="v1", major=254, minor=2, flags=UEVENT))
    assert tx.finish()
    assert capsys.readouterr().err == (
        "%smapper/v1 not set up by udev: Falling back to direct node creation.\n" % ddir)
    assert_blk(ddir + "mapper/v1", 254, 2)


# ------------------------------------------------------------------ pyudev check

def test_check_udev_properties():
    good = {"DM_NAME": "lin1", "DM_UUID": "U-1", "DM_UDEV_RULES_VSN": "3",
            "DM_UDEV_PRIMARY_SOURCE_FLAG": "1", "DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG": "1"}
    assert udev.check_udev_properties(254, 0, "lin1", "U-1", props=good) == []
    msgs = udev.check_udev_properties(254, 0, "lin2", "U-2", props={"DM_NAME": "lin1"})
    assert len(msgs) == 3 and "10-dm.rules" in msgs[0]
    assert udev.udev_flags_of(good) == 0x60


def test_pyudev_lookup_of_absent_device_is_none():
    assert udev.udev_properties(4095, 1048575) is None


# ------------------------------------------------------------------ the nodes.py seam

def test_seam_functions_with_udev_running(env, monkeypatch):
    from dmctl.libdm import nodes
    udev_up(env, monkeypatch)
    ctx = make_ctx(udevtimeout="5")
    c1 = nodes.sync_begin(ctx, 0x20)
    assert c1 >> 16 == 0x60 and c1 & 0xFFFF
    tx = ctx.tx
    assert ck.getval(tx.semid) == 2
    nodes.sync_done(ctx, c1, DeviceInfo(flags=0))          # no uevent: completes
    assert ck.getval(tx.semid) == 1
    c2 = nodes.sync_begin(ctx, 0x20)
    assert c2 == c1 and ck.getval(tx.semid) == 2
    nodes.sync_complete(ctx, c2)                           # failed ioctl
    assert ck.getval(tx.semid) == 1
    start = time.monotonic()
    assert nodes.sync_wait(ctx, c2)
    assert time.monotonic() - start < 1
    assert ctx.tx is None


@ROOT_ONLY
def test_seam_node_ops_follow_cookie_flags(env, monkeypatch):
    from dmctl.libdm import nodes
    ddir = env / "dev"
    ctx = make_ctx("verifyudev", dev_dir=str(ddir) + "/")
    c = nodes.sync_begin(ctx, 0)
    assert c == 0x40 << 16                                   # no udev: flags only
    nodes.add_node(ctx, "s1", 254, 11, None, None, None, c)
    assert not os.path.lexists(node(ddir, "s1"))             # queued until the wait
    nodes.sync_wait(ctx, c)
    assert_blk(node(ddir, "s1"), 254, 11)
    c = nodes.sync_begin(ctx, 0)
    nodes.rename_node(ctx, "s1", "s2", c)
    nodes.sync_wait(ctx, c)
    assert_blk(node(ddir, "s2"), 254, 11)
    # DISABLE_LIBRARY_FALLBACK in the cookie: libdm trusts udev, no node
    c = nodes.sync_begin(ctx, 0x20)
    nodes.remove_node(ctx, "s2", c)
    nodes.sync_wait(ctx, c)
    assert_blk(node(ddir, "s2"), 254, 11)
    c = nodes.sync_begin(ctx, 0)
    nodes.remove_node(ctx, "s2", c)
    nodes.sync_wait(ctx, c)
    assert not os.path.lexists(node(ddir, "s2"))
    # --addnodeoncreate path without a cookie value: runs at once
    nodes.add_node(ctx, "s3", 254, 12)
    assert_blk(node(ddir, "s3"), 254, 12)
