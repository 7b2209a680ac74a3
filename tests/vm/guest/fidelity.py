"""Fidelity scenarios: one script of steps, run on the real kernel and on the simulator.

A scenario names its backing devices by role (with sizes; ``(size, seed)`` for a device
whose first MiB starts with payload(seed)), and lists steps:

    ("create", NAME, TABLE)            TABLE may use {role} and {dm:NAME} placeholders
    ("load", NAME, TABLE)              into the inactive slot (a resume swaps it in)
    ("try_create", NAME, TABLE)        observed: the failure, or the table (then removed)
    ("write", NAME, SECTOR, NR, SEED)  SEED: int -> reproducible random bytes
    ("write_fua", NAME, SECTOR, NR, SEED)
    ("flush", NAME)                    an empty REQ_PREFLUSH bio (fsync of the node)
    ("discard", NAME, SECTOR, NR)      BLKDISCARD
    ("read", NAME, SECTOR, NR)         observed: sha256 of the data (or the errno)
    ("message", NAME, TEXT)            observed: the reply (or the errno)
    ("suspend"|"resume"|"remove", NAME)
    ("rename", NAME, NEW)
    ("status"|"table", NAME)           observed: lines, device numbers -> role names
    ("info", NAME)                     observed: event_nr, open_count, suspended
    ("deps", NAME)                     observed: the device numbers, as role names
    ("tool", ROLE, ARGV...)            observed: rc, stdout, stderr of ARGV + [device]
    ("settle", NAME)                   wait for the kernel's background work (mirror
                                       resync, era digestion); the sim: ``settle``
    ("file", ROLE, OFFSET, LENGTH)     observed: those bytes of the role's backing file

Each driver turns the steps into a list of observations; the test compares the lists
and then the final backing files (see test_fidelity.py).

KernelDriver: real dm devices (dmctl.backend.kernel.KernelMapper, in this process) over
loop devices; I/O with O_DIRECT from page-aligned (mmap) buffers on /dev/dm-N, so that
each step is exactly one bio of the given size.  A flush is fsync() of the node
(blkdev_fsync -> blkdev_issue_flush: one empty PREFLUSH bio).  A FUA write is
pwrite on an O_DIRECT|O_DSYNC descriptor; what that submits is what KERNEL_DSYNC_BIOS
says, and test_fidelity.py checks that claim against the flags the kernel's
log-writes target recorded.

SimDriver: the simulator (dmctl.backend.sim.SimMapper, in this process) in a temporary
DMCTL_SIM_DIR over sparse files of the same sizes; I/O through dmctl.sim.io, submitting
the same bios as the kernel driver.
"""

import errno
import fcntl
import hashlib
import mmap
import os
import random
import re
import subprocess
import tempfile
import time

from dmctl.backend.base import TargetLine
from dmctl.errors import DmError, IOFailure

SUFFIX = "-dmctl-vm"
BLKDISCARD = 0x1277            # _IO(0x12, 119)

# What one pwrite() on an O_DIRECT|O_DSYNC block-device descriptor submits in Linux 6.1
# (block/fops.c): the write bio carries REQ_FUA (dio_bio_write_op: "if
# (iocb_is_dsync(iocb)) opf |= REQ_FUA"), and then generic_write_sync() ->
# blkdev_fsync() still issues an empty REQ_PREFLUSH bio.  test_fidelity checks this
# against the kernel's own log-writes log, so a wrong claim fails there.
KERNEL_DSYNC_BIOS = ("write+fua", "flush")


def payload(seed, nr):
    return random.Random(seed).randbytes(nr << 9)


def sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


def _parse_table(text):
    lines = []
    for line in text.strip().splitlines():
        start, length, ttype, params = (line.split(None, 3) + [""])[:4]
        lines.append(TargetLine(int(start), int(length), ttype, params))
    return lines


class Driver:
    kind = "?"

    def __init__(self, roles):
        # role -> size in bytes; a role given as (size, seed) starts with 1 MiB of
        # payload(seed) at offset 0 instead of zeros
        self.roles = {r: (v if isinstance(v, int) else v[0]) for r, v in roles.items()}
        self.seeds = {r: v[1] for r, v in roles.items() if not isinstance(v, int)}
        self.paths = {}                     # role -> what tables name
        self.files = {}                     # role -> backing file
        self.devnos = {}                    # role -> "maj:min"
        self.dm_devnos = {}                 # scenario dm device -> "maj:min"
        self.knames = {}                    # role -> the kernel's name ("loop5")

    def make_file(self, role, path):
        with open(path, "wb") as f:
            f.truncate(self.roles[role])
            if role in self.seeds:
                f.write(payload(self.seeds[role], 2048))

    def normalise(self, text):
        """Device numbers -> role names: backing devices (the kernel's loop devices and
        the simulator's backing files have different numbers) and the scenario's own
        dm devices (their minors depend on what else exists)."""
        for role, devno in list(self.devnos.items()) + list(self.dm_devnos.items()):
            text = re.sub(r"(?<![\d:])%s(?!\d)" % re.escape(devno), "<%s>" % role, text)
        for role, kname in self.knames.items():       # the kernel's names: "loop5"
            text = re.sub(r"\b%s\b" % re.escape(kname), "<%s>" % role, text)
        return text

    def fmt(self, table):
        """{role} -> the role's device; {dm:NAME} -> MAJ:MIN of a scenario device."""
        names = {"dm:" + n: d for n, d in self.dm_devnos.items()}
        return re.sub(r"\{([^}]+)\}", lambda m: {**self.paths, **names}[m.group(1)], table)

    def file_bytes(self, role, offset=0, length=None):
        with open(self.files[role], "rb") as f:
            f.seek(offset)
            return f.read(self.roles[role] - offset if length is None else length)

    def run(self, steps):
        obs = []
        for i, step in enumerate(steps):
            op, args = step[0], step[1:]
            value = getattr(self, "do_" + op)(*args)
            if value is not None:
                obs.append((i, op) + tuple(str(a) for a in args[:1]) + (value,))
        return obs

    # common step implementations
    def do_write(self, name, sector, nr, seed):
        return self._io(lambda: self.write(name, sector, payload(seed, nr), fua=False))

    def do_write_fua(self, name, sector, nr, seed):
        return self._io(lambda: self.write(name, sector, payload(seed, nr), fua=True))

    def do_flush(self, name):
        return self._io(lambda: self.flush(name))

    def do_discard(self, name, sector, nr):
        return self._io(lambda: self.discard(name, sector, nr))

    def do_read(self, name, sector, nr):
        out = []
        r = self._io(lambda: out.append(self.read(name, sector, nr)))
        return r if r is not None else sha(out[0])

    def _io(self, fn):
        try:
            fn()
        except (OSError, DmError, IOFailure) as e:
            return "error %s" % errno.errorcode.get(e.errno, e.errno)
        return None

    def dm_error(self, e):
        """A failed ioctl: errno and the kernel's log lines (the simulator's detail is
        the log its kernel would write)."""
        s = "error %s" % errno.errorcode.get(e.errno, e.errno)
        return s + (": " + self.normalise(e.detail) if e.detail else "")

    def do_message(self, name, text):
        try:
            reply = self.mapper.message(name, 0, text)
        except DmError as e:
            return self.dm_error(e)
        return "reply %r" % (reply,)

    def do_create(self, name, table):
        """dmsetup create: create, load, resume; a failed load is observed (errno and
        log lines) and the device removed again."""
        info = self.mapper.create(name)
        self.dm_devnos[name] = "%d:%d" % (info.major, info.minor)
        try:
            self.mapper.load(name, _parse_table(self.fmt(table)))
        except DmError as e:
            err = self.dm_error(e)
            self.do_remove(name)
            return err
        self.mapper.resume(name)

    def do_try_create(self, name, table):
        """create, and when that worked: observe the table and remove the device."""
        err = self.do_create(name, table)
        if err is not None:
            return err
        lines = self.do_table(name)
        self.do_remove(name)
        return "created: %r" % (lines,)

    def do_deps(self, name):
        return [self.normalise("%d:%d" % d) for d in self.mapper.deps(name)[1]]

    def do_tool(self, role, *argv):
        """A thin-provisioning tool on the role's device (its loop device, or the
        simulator's file through a read-only loop device), e.g. era_invalidate
        --metadata-snapshot on a live era device's metadata."""
        rc, out, err = run_tool(argv, self.paths[role] if self.kind == "kernel"
                                else self.files[role])
        return "rc=%d\n%s%s" % (rc, out, err)

    def do_load(self, name, table):
        self.mapper.load(name, _parse_table(self.fmt(table)))

    def do_rename(self, name, new):
        self.mapper.rename(name, new)
        self.dm_devnos[new] = self.dm_devnos.pop(name)
        if hasattr(self, "created"):
            self.created[self.created.index(name)] = new

    def do_suspend(self, name):
        self.mapper.suspend(name)

    def do_resume(self, name):
        self.mapper.resume(name)

    def do_remove(self, name):
        self.mapper.remove(name)
        del self.dm_devnos[name]

    def do_status(self, name):
        return [self.normalise(l.format()) for l in self.mapper.status(name)[1]]

    def do_table(self, name):
        return [self.normalise(l.format()) for l in self.mapper.table(name)[1]]

    def do_info(self, name):
        i = self.mapper.info(name)
        return "event_nr=%d open=%d suspended=%d" % (i.event_nr, i.open_count, i.suspended)

    def do_settle(self, name, timeout=60.0):
        """Wait until the target's background work is over: a mirror until every region
        is in sync (or, when its resync fails, its status has not changed for 2 s),
        anything else until its status stops changing (era digestion).  The
        kernel's work runs by itself (we sleep); the simulator's runs in ``background``.
        Both drivers then ask for the status the same way, because an era status is an
        RPC to the worker that commits the metadata: the last status seen here is of a
        committed, fully digested state on both."""
        deadline = time.monotonic() + timeout
        last, same = None, 0
        while time.monotonic() < deadline:
            self.background()
            lines = [l.format() for l in self.mapper.status(name)[1]]
            m = [re.search(r" (\d+)/(\d+) \d+ [A-Z]+ ", l) for l in lines
                 if " mirror " in l]
            if m and all(x and x.group(1) == x.group(2) for x in m):
                return None
            same = same + 1 if lines == last else 0
            if same >= (2 if not m else 10):      # a failing resync: 2 s unchanged
                return None
            last = lines
        raise AssertionError("%s did not settle: %r" % (name, last))

    def do_file(self, role, offset, length):
        return sha(self.file_bytes(role, offset, length))


class KernelDriver(Driver):
    kind = "kernel"

    def __init__(self, roles, tmp):
        super().__init__(roles)
        from dmctl.backend.kernel import KernelMapper
        self.mapper = KernelMapper()
        self.created = []
        self.loops = []
        for role, size in self.roles.items():
            path = os.path.join(tmp, role + ".img")
            self.make_file(role, path)
            loop = subprocess.run(["losetup", "-f", "--show", path], check=True,
                                  capture_output=True, text=True).stdout.strip()
            self.loops.append(loop)
            self.files[role] = path
            self.paths[role] = loop
            rdev = os.stat(loop).st_rdev
            self.devnos[role] = "%d:%d" % (os.major(rdev), os.minor(rdev))
            self.knames[role] = os.path.basename(loop)

    def close(self):
        for name in reversed(self.created):
            try:
                self.mapper.remove(name)
            except DmError:
                pass
        self.mapper.close()
        for loop in self.loops:
            subprocess.run(["losetup", "-d", loop], capture_output=True)

    def node(self, name):
        return "/dev/dm-%d" % self.mapper.info(name).minor

    def do_create(self, name, table):
        self.created.append(name)
        return super().do_create(name, table)

    def _open(self, name, flags):
        return os.open(self.node(name), flags | os.O_DIRECT | os.O_CLOEXEC)

    def write(self, name, sector, data, fua):
        buf = mmap.mmap(-1, max(len(data), mmap.PAGESIZE))      # page aligned for O_DIRECT
        buf[:len(data)] = data
        fd = self._open(name, os.O_WRONLY | (os.O_DSYNC if fua else 0))
        try:
            n = os.pwrite(fd, memoryview(buf)[:len(data)], sector << 9)
            assert n == len(data), (n, len(data))
        finally:
            os.close(fd)
            buf.close()

    def read(self, name, sector, nr):
        buf = mmap.mmap(-1, max(nr << 9, mmap.PAGESIZE))
        fd = self._open(name, os.O_RDONLY)
        try:
            n = os.preadv(fd, [memoryview(buf)[:nr << 9]], sector << 9)
            assert n == nr << 9, (n, nr)
            return bytes(buf[:nr << 9])
        finally:
            os.close(fd)
            buf.close()

    def flush(self, name):
        fd = os.open(self.node(name), os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self, name, sector, nr):
        fd = os.open(self.node(name), os.O_WRONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, BLKDISCARD, (sector << 9).to_bytes(8, "little")
                        + (nr << 9).to_bytes(8, "little"))
        finally:
            os.close(fd)

    def do_remove(self, name):
        super().do_remove(name)
        self.created.remove(name)

    def background(self):
        time.sleep(0.2)

class SimDriver(Driver):
    kind = "sim"

    def __init__(self, roles, tmp):
        super().__init__(roles)
        from dmctl.backend.sim import SimMapper
        from dmctl.sim import io as sio
        self.sio = sio
        self.tmp = tmp
        self.mapper = SimMapper(os.path.join(tmp, "simstate"))
        for role, size in self.roles.items():
            path = os.path.join(tmp, role + ".img")
            self.make_file(role, path)
            self.files[role] = self.paths[role] = path
        minors = self.mapper.run(lambda env: {r: env.backing_file(p).minor
                                              for r, p in self.paths.items()})
        self.devnos = {r: "7:%d" % m for r, m in minors.items()}
        self.knames = {r: "loop%d" % m for r, m in minors.items()}

    def close(self):
        self.mapper.close()

    def write(self, name, sector, data, fua):
        if not fua:
            self.sio.write(self.mapper, name, sector, data)
            return
        for bio in KERNEL_DSYNC_BIOS:
            if bio == "write+fua":
                self.sio.write(self.mapper, name, sector, data, fua=True)
            elif bio == "write":
                self.sio.write(self.mapper, name, sector, data)
            elif bio == "flush":
                self.sio.flush(self.mapper, name)

    def read(self, name, sector, nr):
        return self.sio.read(self.mapper, name, sector, nr)

    def flush(self, name):
        self.sio.flush(self.mapper, name)

    def discard(self, name, sector, nr):
        self.sio.discard(self.mapper, name, sector, nr)

    def background(self):
        self.sio.settle(self.mapper)


def run_both(scenario, tmp_root):
    """-> (kernel driver, kernel observations, sim driver, sim observations); the
    drivers are returned open (their files are read afterwards); close them."""
    kt = tempfile.mkdtemp(prefix="k-", dir=tmp_root)
    st = tempfile.mkdtemp(prefix="s-", dir=tmp_root)
    k = KernelDriver(scenario["roles"], kt)
    try:
        kobs = k.run(scenario["steps"])
    except BaseException:
        k.close()
        raise
    s = SimDriver(scenario["roles"], st)
    try:
        sobs = s.run(scenario["steps"])
    except BaseException:
        k.close()
        s.close()
        raise
    return k, kobs, s, sobs


def run_tool(argv, path):
    """``argv + [path]`` for a block device, or for a file through a read-only loop
    device: thin-provisioning-tools open with O_DIRECT, which the guest's tmpfs
    refuses.  -> (rc, stdout, stderr)"""
    loop = None
    if os.path.isfile(path):
        loop = subprocess.run(["losetup", "-r", "-f", "--show", path], check=True,
                              capture_output=True, text=True).stdout.strip()
    try:
        p = subprocess.run([*argv, loop or path], capture_output=True, text=True)
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True)
    return p.returncode, p.stdout, p.stderr
