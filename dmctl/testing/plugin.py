"""The ``dm`` pytest fixture: a device mapper of its own for each test.

Installed with dmctl (the ``pytest11`` entry point ``dmctl``).  By default every test
gets a fresh simulator in its own temporary directory, so tests are isolated from
each other, from the user's simulator and from ``pytest -n`` workers::

    def test_mirror_survives_a_crash(dm):
        a, b = dm.file("a", 8 << 20), dm.file("b", 8 << 20)
        dm.run("create", "m", "--table", "0 16384 mirror core 1 1024 2 %s 0 %s 0" % (a, b))
        dm.run("io", "write", "m", "0", "--pattern", "0x41", "--sectors", "8", "--fua")
        dm.crash()
        ...

``pytest --dm-backend=kernel`` runs the same tests on the real device mapper (root):
``dm.file`` then attaches a loop device, and teardown removes the devices the test
made.  What the kernel cannot do (``dm.crash``, exports) skips the test there.

The fixture:

* ``dm.run(*args, input=None)`` -- a dmctl command (a subprocess); returns stdout,
  raises ``DmRunError`` (with stderr) on a non-zero exit;
* ``dm.file(name, size_bytes)`` -- a backing file (sparse) or, on the kernel, its loop
  device; the path to put in tables;
* ``dm.mapper`` -- the library API (``dmctl.open_mapper``) on the same device mapper;
* ``dm.crash(seed=None)`` -- a power cut (``dmctl sim crash``);
* ``dm.replay_log(log, into, end_mark=None, size=None)`` -- ``dmctl replay-log`` of a
  log-writes log onto a file (made ``size`` bytes when it does not exist), to a mark;
* ``dm.export(device)`` -- ``dmctl sim export`` on a socket in the test's directory
  (``.uri``, ``.socket``, ``.pid``), stopped at teardown;
* ``dm.nbdfuse(export, name="disk")`` -- the export as a plain file (nbdfuse),
  unmounted at teardown;
* ``dm.require(*programs)`` -- skip the test when a program is missing, but fail it
  when ``$CI`` is true (a CI machine must have what the tests need).
"""

import os
import shutil
import subprocess
import sys
import time

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("dmctl")
    group.addoption("--dm-backend", choices=("sim", "kernel"), default="sim",
                    help="device mapper for the dm fixture: a fresh simulator per test "
                         "(default) or the real kernel (root)")


class DmRunError(AssertionError):
    """A dmctl command of ``dm.run`` exited non-zero."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args_ = list(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__("dmctl %s: exit status %d: %s" % (
            " ".join(self.args_), returncode, stderr.strip() or stdout.strip()))


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(*programs, fuse=False):
    """Skip (fail in CI) unless every program is on PATH (and /dev/fuse exists)."""
    missing = [p for p in programs if shutil.which(p) is None]
    if fuse and not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if missing:
        msg = "needs %s (scripts/test installs them)" % ", ".join(missing)
        if in_ci():
            pytest.fail(msg + " -- missing in CI")
        pytest.skip(msg)


class Export:
    def __init__(self, socket, pidfile, uri):
        self.socket = socket
        self.pidfile = pidfile
        self.uri = uri

    @property
    def pid(self):
        with open(self.pidfile) as f:
            return int(f.read().strip())

    def stop(self):
        """SIGTERM nbdkit (it flushes the device) and wait for it."""
        from dmctl.export import nbd
        if os.path.exists(self.pidfile):
            nbd.stop(self.pid)
            os.unlink(self.pidfile)
        if os.path.exists(self.socket):
            os.unlink(self.socket)


class Dm:
    """One test's device mapper (see the module's docstring)."""

    def __init__(self, tmpdir, backend="sim"):
        self.dir = str(tmpdir)
        self.backend = backend
        self.sim_dir = os.path.join(self.dir, "sim") if backend == "sim" else None
        self.env = dict(os.environ)
        self.env["DMCTL_BACKEND"] = backend
        if self.sim_dir:
            self.env["DMCTL_SIM_DIR"] = self.sim_dir
        self._mapper = None
        self._exports = []
        self._mounts = []
        self._loops = []
        self._devices_before = None
        self._n = 0
        if backend == "kernel":
            self._devices_before = set(self._names())

    # -- commands ---------------------------------------------------------------------
    def run(self, *args, input=None, check=True):
        argv = [sys.executable, "-m", "dmctl"] + [str(a) for a in args]
        r = subprocess.run(argv, env=self.env, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=self.dir)
        if check and r.returncode != 0:
            raise DmRunError(args, r.returncode, r.stdout, r.stderr)
        return r.stdout

    @property
    def mapper(self):
        if self._mapper is None:
            import dmctl
            self._mapper = dmctl.open_mapper(self.backend, sim_dir=self.sim_dir) \
                if self.sim_dir else dmctl.open_mapper(self.backend)
        return self._mapper

    def path(self, name):
        return os.path.join(self.dir, name)

    def file(self, name, size_bytes):
        path = self.path(name)
        with open(path, "wb") as f:
            f.truncate(size_bytes)
        if self.backend == "kernel":
            loop = subprocess.run(["losetup", "--find", "--show", path], check=True,
                                  stdout=subprocess.PIPE, text=True).stdout.strip()
            self._loops.append(loop)
            return loop
        return path

    # -- crash testing ----------------------------------------------------------------
    def _sim_only(self, what):
        if self.backend != "sim":
            pytest.skip("%s needs the simulator (--dm-backend=sim)" % what)

    def crash(self, seed=None):
        """Power cut: devices vanish, backing files keep their durable contents."""
        self._sim_only("a power cut")
        args = ["sim", "crash"] + (["--seed", str(seed)] if seed is not None else [])
        return self.run(*args)

    def replay_log(self, log, into, end_mark=None, size=None, *options):
        """Replay a log-writes log onto ``into`` (created ``size`` bytes if missing),
        up to ``end_mark`` (the whole log without); returns ``into``."""
        if not os.path.exists(into):
            if size is None:
                raise ValueError("%s does not exist: give its size" % into)
            with open(into, "wb") as f:
                f.truncate(size)
        args = ["replay-log", "--log", log, "--replay", into]
        if end_mark is not None:
            args += ["--end-mark", str(end_mark)]
        self.run(*(args + list(options)))
        return into

    # -- unmodified programs ----------------------------------------------------------
    def require(self, *programs, fuse=False):
        require(*programs, fuse=fuse)

    def export(self, device, readonly=False):
        """``dmctl sim export DEVICE`` on a socket in the test's directory."""
        self._sim_only("an NBD export")
        require("nbdkit")
        self._n += 1
        sock = self.path("nbd%d.sock" % self._n)
        pidf = self.path("nbd%d.pid" % self._n)
        args = ["sim", "export", device, "--socket", sock, "--pidfile", pidf]
        if readonly:
            args.append("--readonly")
        uri = self.run(*args).strip()
        e = Export(sock, pidf, uri)
        self._exports.append(e)
        return e

    def nbdfuse(self, export, name="disk", readonly=False):
        """The export as a plain file (nbdfuse); returns its path."""
        require("nbdfuse", "fusermount3", fuse=True)
        self._n += 1
        mnt = self.path("fuse%d" % self._n)
        os.mkdir(mnt)
        pidf = mnt + ".pid"
        argv = ["nbdfuse", "-P", pidf] + (["-r"] if readonly else []) + \
            [os.path.join(mnt, name), "--unix", export.socket]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self._mounts.append((mnt, proc))
        while not os.path.exists(pidf) or not os.path.getsize(pidf):
            if proc.poll() is not None:
                raise RuntimeError("nbdfuse failed: %s" % proc.stderr.read().strip())
            time.sleep(0.01)
        return os.path.join(mnt, name)

    def unmount(self, path):
        """Unmount an nbdfuse file early (teardown does it otherwise)."""
        for mnt, proc in list(self._mounts):
            if path.startswith(mnt + os.sep) or path == mnt:
                self._umount(mnt, proc)
                self._mounts.remove((mnt, proc))

    @staticmethod
    def _umount(mnt, proc):
        if proc.poll() is None:
            subprocess.run(["fusermount3", "-u", mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for s in (proc.stdout, proc.stderr):
            s.close()

    # -- teardown -----------------------------------------------------------------------
    def _names(self):
        out = self.run("ls", check=False)
        return [ln.split()[0] for ln in out.splitlines()
                if ln.strip() and not ln.startswith("No devices")]

    def close(self):
        errors = []
        for mnt, proc in reversed(self._mounts):
            try:
                self._umount(mnt, proc)
            except Exception as e:          # pragma: no cover
                errors.append(e)
        self._mounts = []
        for e in reversed(self._exports):
            try:
                e.stop()
            except Exception as ex:         # pragma: no cover
                errors.append(ex)
        self._exports = []
        if self.backend == "kernel":
            for name in set(self._names()) - self._devices_before:
                self.run("remove", "--retry", "-f", name, check=False)
            for loop in self._loops:
                subprocess.run(["losetup", "-d", loop], check=False)
        if errors:
            raise errors[0]


@pytest.fixture
def dm(request, tmp_path):
    """A device mapper of the test's own (see dmctl.testing.plugin)."""
    backend = request.config.getoption("--dm-backend", default="sim") or "sim"
    if backend == "kernel":
        from dmctl.backend import kernel_available
        if not kernel_available():
            pytest.fail("--dm-backend=kernel: /dev/mapper/control is not usable (root?)")
    d = Dm(tmp_path, backend)
    try:
        yield d
    finally:
        d.close()
