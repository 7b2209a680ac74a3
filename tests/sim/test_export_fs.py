"""Crash-consistency testing of a real filesystem made and used by unmodified programs
(issue 15): a log-writes device is exported over NBD (`dmctl sim export`), shown as a
plain file by nbdfuse, formatted by the real `mkfs.ext4` and mounted with `fuse2fs`;
files are written with `dmctl message ... mark` between the steps, sent from another
process while the device is exported.  `dmctl replay-log` then rebuilds the
filesystem at each mark: the real `e2fsck -fn` passes and `debugfs` lists exactly the
files written up to that mark.

The filesystem is unmounted (fuse2fs writes back and flushes when it ends) before each
mark: a flush puts the writes it covers on the log (log-writes logs plain writes at
the next flush, as the kernel's does), so the mark follows a consistent, complete
filesystem.  Everything the test starts (exports, FUSE mounts) is stopped by pid at
teardown, also when it fails.
"""

import os
import re
import subprocess
import time

MiB = 1 << 20
SIZE = 32 * MiB


def sh(*argv):
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    assert r.returncode == 0, (argv, r.stdout, r.stderr)
    return r.stdout


class Fuse2fs:
    """``fuse2fs -f -o fakeroot IMAGE DIR`` in the foreground, so that unmounting can
    wait for it to end: it writes the filesystem back (and flushes) when it exits."""

    def __init__(self, image, mnt):
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        self.out = open(mnt + ".log", "w+")
        self.proc = subprocess.Popen(["fuse2fs", "-f", "-o", "fakeroot", image, mnt],
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        # mounted once the directory is a mount point (or fuse2fs failed)
        while not os.path.ismount(mnt):
            if self.proc.poll() is not None:
                out = self.output()
                self.out.close()
                raise AssertionError("fuse2fs failed: %s" % out)
            time.sleep(0.01)

    def output(self):
        self.out.seek(0)
        return self.out.read()

    def unmount(self):
        if self.out.closed:                         # unmounted already
            return
        try:
            if self.proc.poll() is None:
                sh("fusermount3", "-u", self.mnt)
                self.proc.wait(60)
        finally:
            if self.proc.poll() is None:            # stuck: kill it, drop the mount
                self.proc.kill()
                self.proc.wait()
            if self.proc.returncode:
                subprocess.run(["fusermount3", "-u", "-z", self.mnt],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            out = self.output()
            self.out.close()
        assert self.proc.returncode == 0, "fuse2fs: exit %d: %s" % (self.proc.returncode, out)


def listing(image):
    """The names in the root directory of ``image`` (``debugfs -R 'ls -l /'``)."""
    out = sh("debugfs", "-R", "ls -l /", image)
    names = set()
    for ln in out.splitlines():
        # " 12  100644 (1)   1000   1000    20000 6-Dec-2026 22:03 f1"
        m = re.match(r"\s*\d+\s+\d+\s+\(\d+\)\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+\s+(.+)$", ln)
        if m:
            names.add(m.group(1))
    assert {".", "..", "lost+found"} <= names, out
    return names - {".", "..", "lost+found"}


def test_replayed_marks_of_a_fuse2fs_mounted_ext4_on_an_export(dm):
    dm.require("nbdkit", "nbdfuse", "fusermount3", "mkfs.ext4", "fuse2fs", "e2fsck",
               "debugfs", fuse=True)
    data, log = dm.file("data", SIZE), dm.file("log", 128 * MiB)
    dm.run("create", "lw", "--table", "0 %d log-writes %s %s" % (SIZE >> 9, data, log))
    export = dm.export("lw")
    disk = dm.nbdfuse(export)
    assert os.path.getsize(disk) == SIZE

    mounts = []
    try:
        # mkfs.ext4 fsyncs the image (nbdfuse: an NBD flush) before it exits
        sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,nodiscard", disk)
        dm.run("message", "lw", "0", "mark", "mkfs")
        expected = {"mkfs": set()}
        contents = {}
        files = set()
        for k in range(1, 4):
            fs = Fuse2fs(disk, dm.path("mnt"))
            mounts.append(fs)
            for name in ("f%d" % k, "g%d" % k):
                contents[name] = os.urandom(20000 * k)
                with open(os.path.join(fs.mnt, name), "wb") as f:
                    f.write(contents[name])
                    f.flush()
                    os.fsync(f.fileno())
                files.add(name)
            if k == 3:
                os.unlink(os.path.join(fs.mnt, "g1"))
                files.discard("g1")
            fs.unmount()            # fuse2fs writes everything back and flushes
            mounts.remove(fs)
            # a mark from another process while the device is exported
            dm.run("message", "lw", "0", "mark", "step%d" % k)
            expected["step%d" % k] = set(files)
        dm.unmount(disk)
        export.stop()               # nbdkit flushes at exit
    finally:
        for fs in mounts:           # a failed step: unmount, keep the step's error
            try:
                fs.unmount()
            except AssertionError:
                pass
    dm.run("sim", "settle")         # log-writes logs in background work
    dm.run("remove", "lw")

    for mark, names in expected.items():
        rep = dm.replay_log(log, dm.path("replay-%s.img" % mark), mark, SIZE)
        r = subprocess.run(["e2fsck", "-fn", rep], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        assert r.returncode == 0, (mark, r.stdout)
        assert listing(rep) == names, mark
        for name in names:
            got = subprocess.run(["debugfs", "-R", "cat /%s" % name, rep],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
            assert got == contents[name], (mark, name)
    # the whole log reproduces the device's final contents
    full = dm.replay_log(log, dm.path("full.img"), None, SIZE)
    with open(full, "rb") as a, open(data, "rb") as b:
        assert a.read() == b.read()
