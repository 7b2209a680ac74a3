"""The guest itself works: the real kernel, its dm targets and the real dmsetup.

These depend on nothing of dmctl, so they pass whatever state dmctl is in; when they
fail, the VM tier (not dmctl) is broken.
"""

import os
import platform
import re

from dmvm import REPO, dev, dmsetup, run


def test_guest_is_the_debian_kernel():
    assert os.environ.get("DMCTL_VM_GUEST") == "1"
    assert platform.release().startswith("6."), platform.release()
    assert "Debian" in platform.version(), platform.version()


def test_guest_layout():
    # cwd is the checkout, shared read-write; the host's / is read-only; /tmp is tmpfs
    assert os.getcwd() == REPO
    probe = os.path.join(REPO, ".dmctl-vm-probe")
    with open(probe, "w") as f:
        f.write("x")
    os.unlink(probe)
    assert run(["touch", "/usr/.dmctl-vm-probe"]).rc != 0
    with open("/proc/mounts") as f:
        mounts = {line.split()[1]: line.split()[2] for line in f}
    assert mounts.get("/tmp") == "tmpfs"
    assert mounts.get("/") == "9p"
    assert os.path.exists("/dev/mapper/control")
    assert os.path.exists("/dev/loop-control")


def test_dmsetup_version():
    r = dmsetup("version")
    assert r.rc == 0, r
    assert r.stdout.startswith("Library version:"), r
    assert "Driver version:    4." in r.stdout, r
    assert r.stderr == ""


def test_dmsetup_targets():
    r = dmsetup("targets")
    assert r.rc == 0, r
    names = {line.split()[0] for line in r.stdout.splitlines()}
    assert {"linear", "striped", "error", "zero", "era", "log-writes", "mirror"} <= names, r


def test_loop_devices(loops):
    for role, path in loops.items():
        assert path.startswith("/dev/loop"), (role, path)
        size = int(run(["blockdev", "--getsz", path], check=True).stdout)
        assert size > 0


def test_create_and_remove_linear(loops):
    name = dev("smoke")
    lin = loops["lin"]
    r = dmsetup("create", name, "-u", "SMOKE-DMCTL-VM", "--table", "0 32768 linear %s 0" % lin)
    assert (r.rc, r.stderr) == (0, ""), r
    rdev = os.stat(lin).st_rdev
    r = dmsetup("table", name)
    assert r.stdout == "0 32768 linear %d:%d 0\n" % (os.major(rdev), os.minor(rdev)), r
    r = dmsetup("status", name)
    assert r.stdout == "0 32768 linear \n", r              # note dmsetup's trailing space
    r = dmsetup("info", name)
    assert "State:             ACTIVE" in r.stdout, r
    assert "UUID: SMOKE-DMCTL-VM" in r.stdout, r
    # DM_DISABLE_UDEV=1 (set for every dmsetup here): libdevmapper made the node itself
    node = "/dev/mapper/" + name
    assert os.path.exists(node)
    # data goes through to the loop device
    with open(node, "r+b") as f:
        f.seek(4096)
        f.write(b"dmctl-vm" * 64)
        f.flush()
        os.fsync(f.fileno())
    with open(lin, "rb") as f:
        f.seek(4096)
        assert f.read(16) == b"dmctl-vmdmctl-vm"
    r = dmsetup("remove", name)
    assert (r.rc, r.stdout, r.stderr) == (0, "", ""), r
    assert not os.path.exists(node)
    assert name not in dmsetup("ls").stdout


def test_other_targets_activate(loops):
    """era, log-writes, mirror, zero and error tables load, with the status formats the
    golden captures recorded on this kernel."""
    loops.wipe()
    era, lw, mir, z, e = dev("era"), dev("lw"), dev("mirror"), dev("zero"), dev("err")
    tables = {
        era: "0 131072 era %s %s 128" % (loops["era_meta"], loops["era_origin"]),
        lw: "0 32768 log-writes %s %s" % (loops["lw_data"], loops["lw_log"]),
        mir: "0 16384 mirror core 1 1024 2 %s 0 %s 0" % (loops["leg1"], loops["leg2"]),
        z: "0 1024 zero",
        e: "0 1024 error",
    }
    for name, table in tables.items():
        r = dmsetup("create", name, "--table", table)
        assert r.rc == 0, (table, r)
    assert dmsetup("status", era).stdout == "0 131072 era 8 10/2048 1 -\n"
    assert dmsetup("status", lw).stdout == "0 32768 log-writes 0 0\n"
    assert dmsetup("status", mir).stdout.startswith("0 16384 mirror 2 ")
    assert dmsetup("status", z).stdout == "0 1024 zero \n"
    assert dmsetup("table", e).stdout == "0 1024 error \n"
    r = dmsetup("message", era, "0", "checkpoint")
    assert r.rc == 0, r
    # a checkpoint advances the era (and uses metadata blocks)
    assert re.fullmatch(r"0 131072 era 8 \d+/2048 2 -\n", dmsetup("status", era).stdout)


def test_bad_table_fails_like_dmsetup_does(loops):
    r = dmsetup("create", dev("bad"), "--table", "0 1024 nosuchtarget foo")
    assert r.rc == 1
    assert r.stderr.endswith("Command failed.\n"), r
    assert dev("bad") not in dmsetup("ls").stdout
