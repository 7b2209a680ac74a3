"""``dmctl logd`` serving the real kernel's dm-log-userspace over the netlink connector
(issue 12 item 2), in the guest: no corosync here, so a one-node cluster.

The real ``dmsetup`` creates ``clustered-core`` and ``clustered-disk`` mirrors over loop
devices whose legs start different; the kernel resyncs them through the daemon, takes
O_DIRECT writes, is suspended and resumed, reactivates from the disk log the daemon
wrote, and survives a ``kill -9`` of the daemon under I/O and its restart (the kernel
reconnects: "Reconnected to userspace log server").  At the end the legs are identical.

Fidelity: the same scenario on the simulator through the same daemon (its Unix socket)
gives the same status lines and disk-log bytes as on the real kernel (fidelity.py's
drivers, as test_fidelity.py compares other targets).
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import fidelity as F
from dmvm import BASE_ENV, PYTHON, REPO, dev, dmsetup, run

MiB = 1 << 20
LEG_SECTORS = 8192            # 4 MiB legs
REGION = 512                  # 16 regions
NR_REGIONS = LEG_SECTORS // REGION
LOGD_DIR = "/tmp/dmctl-vm-logd"
SOCK = os.path.join(LOGD_DIR, "logd.sock")
UUID_CORE = "dmctlvm-core-0000000000000000000000001"
UUID_DISK = "dmctlvm-disk-0000000000000000000000002"


def _env():
    env = dict(BASE_ENV)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def logd(*args, **kw):
    return run([PYTHON, "-m", "dmctl", "logd", *args], env=_env(), **kw)


class Logd:
    """The daemon under test (root, kernel transport required)."""

    def __init__(self):
        self.pid = None

    def start(self):
        r = logd("start", "--socket", SOCK, "--kernel", "--no-syslog")
        assert r.rc == 0, r
        self.pid = int(re.search(r"pid (\d+)", r.stderr).group(1))
        return r

    def status(self):
        r = logd("status", "--socket", SOCK, "--json")
        assert r.rc == 0, r
        return json.loads(r.stdout)

    def kill9(self):
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/stat" % self.pid) as f:
                    if f.read().split(") ", 1)[1][:1] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)
        self.pid = None

    def log_text(self):
        try:
            with open(os.path.join(LOGD_DIR, "logd.log")) as f:
                return f.read()
        except OSError:
            return ""


@pytest.fixture(scope="module")
def daemon():
    shutil.rmtree(LOGD_DIR, ignore_errors=True)
    os.makedirs(LOGD_DIR)
    d = Logd()
    d.start()
    yield d
    if d.pid is not None:
        r = logd("stop", "--force", "--socket", SOCK)
        if r.rc != 0 and d.pid:
            os.kill(d.pid, signal.SIGKILL)


class Legs:
    """Two legs that start different (random data on each) and a log device, as loop
    devices over files in /tmp."""

    def __init__(self, tmp):
        self.files, self.loops = {}, {}
        for role, size, seed in (("leg1", LEG_SECTORS << 9, 1), ("leg2", LEG_SECTORS << 9, 2),
                                 ("mlog", MiB, None)):
            path = os.path.join(tmp, role + ".img")
            with open(path, "wb") as f:
                f.write(random.Random(seed).randbytes(size) if seed else bytes(size))
            self.files[role] = path
            self.loops[role] = run(["losetup", "-f", "--show", path],
                                   check=True).stdout.strip()

    def close(self):
        for loop in self.loops.values():
            run(["losetup", "-d", loop])

    def read(self, role, offset=0, length=None):
        with open(self.files[role], "rb") as f:
            f.seek(offset)
            return f.read() if length is None else f.read(length)

    def patch(self, role, offset, data):
        with open(self.files[role], "r+b") as f:
            f.seek(offset)
            f.write(data)

    def assert_identical(self):
        a, b = self.read("leg1"), self.read("leg2")
        if a != b:
            first = next(i for i in range(0, len(a), 512) if a[i:i + 512] != b[i:i + 512])
            raise AssertionError("legs differ, first at sector %d (region %d)"
                                 % (first >> 9, (first >> 9) // REGION))


@pytest.fixture
def legs():
    tmp = tempfile.mkdtemp(prefix="logd-", dir="/tmp")
    lg = Legs(tmp)
    yield lg
    lg.close()
    shutil.rmtree(tmp, ignore_errors=True)


def table(legs, kind):
    if kind == "core":
        log = "userspace 3 %s clustered-core %d" % (UUID_CORE, REGION)
    else:
        log = "userspace 4 %s clustered-disk %s %d" % (UUID_DISK, legs.loops["mlog"], REGION)
    return "0 %d mirror %s 2 %s 0 %s 0" % (LEG_SECTORS, log, legs.loops["leg1"],
                                           legs.loops["leg2"])


def create(name, tbl):
    r = dmsetup("create", name, "--table", tbl, timeout=300)
    assert r.rc == 0, (r, _dmesg_tail())


def status(name):
    r = dmsetup("status", name, timeout=300)
    assert r.rc == 0, r
    return r.stdout.strip()


def wait_sync(name, timeout=300):
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = status(name)
        m = re.search(r" (\d+)/(\d+) \d+ ", line)
        if m and m.group(1) == m.group(2):
            return line
        time.sleep(0.3)
    raise AssertionError("%s did not get in sync: %r" % (name, line))


def dd_write(name, seek_kib, count, seed, bs=64):
    src = "/tmp/logd-dd-%d.bin" % seed
    with open(src, "wb") as f:
        f.write(random.Random(seed).randbytes(bs * 1024 * count))
    return subprocess.Popen(["dd", "if=" + src, "of=/dev/mapper/" + name, "bs=%dk" % bs,
                             "seek=%d" % (seek_kib // bs), "count=%d" % count,
                             "oflag=direct", "status=none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=BASE_ENV)


def dd_loop(name, count, seed, stop, progress, bs=64):
    """dd of the same data over the device again and again (O_DIRECT) until the file
    ``stop`` exists; one line is appended to ``progress`` per completed pass, and the
    loop ends at dd's first failure.  A writer that is sure to be writing when the
    daemon is killed, however fast the machine is."""
    src = "/tmp/logd-dd-%d.bin" % seed
    with open(src, "wb") as f:
        f.write(random.Random(seed).randbytes(bs * 1024 * count))
    script = ('set -e; while [ ! -e "$1" ]; do '
              'dd if="$3" of="$4" bs=%dk count=%d oflag=direct status=none; '
              'echo pass >> "$2"; done' % (bs, count))
    return subprocess.Popen(["sh", "-c", script, "sh", stop, progress, src,
                             "/dev/mapper/" + name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=BASE_ENV)


def passes(progress):
    try:
        with open(progress) as f:
            return len(f.read().split())
    except FileNotFoundError:
        return 0


def wait_for(cond, what, timeout=300):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


def dd_wait(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err.decode(errors="replace")


def _dmesg():
    return run(["dmesg"]).stdout


def _dmesg_tail(n=30):
    return "\n".join(_dmesg().splitlines()[-n:])


def test_logd_serves_the_kernel(daemon):
    st = daemon.status()
    kinds = {t["type"]: t for t in st["transports"]}
    assert set(kinds) == {"unix", "kernel"}, st["transports"]
    assert kinds["kernel"]["cap_sys_admin"] is True
    r = logd("status", "--socket", SOCK)
    assert "kernel netlink connector 7:1" in r.stdout.splitlines()[0], r


def test_clustered_core_resync_io_kill_restart(daemon, legs):
    name = dev("lu-core")
    create(name, table(legs, "core"))
    line = wait_sync(name)
    assert line.endswith(" 1 clustered-core"), line
    assert re.search(r" %d/%d 1 AA 1 clustered-core$" % (NR_REGIONS, NR_REGIONS), line)
    dd_wait(dd_write(name, 0, 4, 11))
    dd_wait(dd_write(name, 1536, 8, 12))
    assert dmsetup("suspend", name, timeout=120).rc == 0
    assert dmsetup("resume", name, timeout=120).rc == 0
    # cmirrord's clustered-core log resumes with nothing in sync (clog_resume: no disk,
    # so disk_nr_regions 0): the kernel resyncs the whole mirror again
    wait_sync(name)
    st = daemon.status()
    mine = [l for l in st["logs"] if l["uuid"] == UUID_CORE]
    assert len(mine) == 1 and mine[0]["in_sync"] and mine[0]["state"] == "RESUMED", mine

    # kill -9 under I/O, then a restart: the kernel reconnects and the write completes
    before = _dmesg().count("Reconnected to userspace log server")
    stop, progress = "/tmp/logd-dd-stop", "/tmp/logd-dd-progress"
    for f in (stop, progress):
        if os.path.exists(f):
            os.unlink(f)
    p = dd_loop(name, 64, 13, stop, progress)  # the whole 4 MiB, 6 requests per write
    wait_for(lambda: passes(progress) >= 1 or p.poll() is not None, "a first pass")
    assert p.poll() is None, p.stderr.read().decode(errors="replace")
    n = passes(progress)
    daemon.kill9()                            # the writer is writing: its next requests
    time.sleep(0.5)                           # find no server for a while
    daemon.start()
    wait_for(lambda: passes(progress) >= n + 2 or p.poll() is not None,
             "passes after the restart", timeout=600)
    open(stop, "w").close()
    dd_wait(p, timeout=600)
    after = _dmesg().count("Reconnected to userspace log server")
    assert after > before, _dmesg_tail()
    assert "state restored after a restart" in daemon.log_text()
    line = status(name)
    assert " %d/%d 1 AA 1 clustered-core" % (NR_REGIONS, NR_REGIONS) in line, line
    dd_wait(dd_write(name, 256, 4, 14))       # and it keeps serving
    assert dmsetup("remove", name, timeout=120).rc == 0
    legs.assert_identical()
    with open("/tmp/logd-dd-14.bin", "rb") as f:
        assert legs.read("leg1", 256 * 1024, 4 * 64 * 1024) == f.read()


def test_clustered_disk_reactivation_from_the_disk_log(daemon, legs):
    name = dev("lu-disk")
    create(name, table(legs, "disk"))
    line = wait_sync(name)
    devno = os.stat(legs.loops["mlog"]).st_rdev
    assert line.endswith(" 3 clustered-disk %d:%d A" % (os.major(devno), os.minor(devno))), line
    dd_wait(dd_write(name, 64, 4, 21))
    assert dmsetup("suspend", name, timeout=120).rc == 0
    assert dmsetup("resume", name, timeout=120).rc == 0
    wait_sync(name)
    assert dmsetup("remove", name, timeout=120).rc == 0
    legs.assert_identical()
    # the kernel's disk-log format, written by the daemon on the log device
    hdr = legs.read("mlog", 0, 16)
    assert hdr[:4] == b"rRiM" and int.from_bytes(hdr[8:16], "little") == NR_REGIONS, hdr
    bits = legs.read("mlog", 1024, NR_REGIONS // 8)
    assert bits == b"\xff" * (NR_REGIONS // 8), bits.hex()

    # reactivation: region 3 dirty in the disk log and different on leg2 -> only it is
    # resynced; a clean region that differs is not touched (the log is believed)
    legs.patch("mlog", 1024, bytes([0xff & ~(1 << 3)]))
    legs.patch("leg2", 3 * REGION * 512, b"\x5a" * 4096)
    create(name, table(legs, "disk"))
    wait_sync(name)
    dd_wait(dd_write(name, 1024, 4, 22))
    assert dmsetup("remove", name, timeout=120).rc == 0
    legs.assert_identical()
    assert legs.read("mlog", 1024, NR_REGIONS // 8) == b"\xff" * (NR_REGIONS // 8)


MIRU = dev("fl-logd")
FIDELITY_STEPS = [
    ("create", MIRU, "0 %d mirror userspace 3 %s clustered-core %d 2 {leg1} 0 {leg2} 0"
     % (LEG_SECTORS, UUID_CORE, REGION)),
    ("settle", MIRU), ("status", MIRU), ("table", MIRU),
    ("write", MIRU, 0, 8, 61), ("write", MIRU, 3000, 16, 62), ("flush", MIRU),
    ("settle", MIRU), ("status", MIRU),
    ("suspend", MIRU), ("resume", MIRU),
    ("settle", MIRU), ("status", MIRU),
    ("remove", MIRU),
    ("create", MIRU, "0 %d mirror userspace 4 %s clustered-disk {mlog} %d 2 {leg1} 0 {leg2} 0"
     % (LEG_SECTORS, UUID_DISK, REGION)),
    ("settle", MIRU), ("status", MIRU),
    ("write", MIRU, 100, 8, 63), ("flush", MIRU),
    ("settle", MIRU), ("status", MIRU),
    ("suspend", MIRU), ("resume", MIRU), ("settle", MIRU), ("status", MIRU),
    ("remove", MIRU),
    ("file", "mlog", 0, 8192),
    # reactivation from the disk log: all in sync at once
    ("create", MIRU, "0 %d mirror userspace 4 %s clustered-disk {mlog} %d 2 {leg1} 0 {leg2} 0"
     % (LEG_SECTORS, UUID_DISK, REGION)),
    ("status", MIRU),
    ("remove", MIRU),
    ("file", "mlog", 0, 8192),
]


def test_fidelity_userspace_log_through_the_daemon(daemon, monkeypatch):
    """The kernel through the connector and the simulator through the Unix socket,
    one daemon: the same status and table lines, legs and disk-log bytes."""
    monkeypatch.setenv("DMCTL_LOGD_SOCKET", SOCK)
    tmp = tempfile.mkdtemp(prefix="logd-fl-", dir="/tmp")
    roles = {"leg1": (LEG_SECTORS << 9, 71), "leg2": LEG_SECTORS << 9, "mlog": MiB}
    k = s = None
    try:
        k, kobs, s, sobs = F.run_both({"roles": roles, "steps": FIDELITY_STEPS}, tmp)
        assert kobs == sobs, "observations differ:\nkernel %r\nsim    %r" % (kobs, sobs)
        for role in ("leg1", "leg2", "mlog"):
            kb, sb = k.file_bytes(role), s.file_bytes(role)
            assert kb == sb, "%s differs" % role
        assert k.file_bytes("leg1") == k.file_bytes("leg2")
    finally:
        for d in (k, s):
            if d is not None:
                d.close()
        shutil.rmtree(tmp, ignore_errors=True)
