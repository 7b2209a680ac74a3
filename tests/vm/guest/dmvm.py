"""Helpers for tests that run inside the VM tier's guest (real kernel, real dmsetup).

Conventions:
- every device-mapper device a test creates is named ``<something>-dmctl-vm``
  (:func:`dev`); after each test all such devices are removed (and any left suspended
  are resumed first), so tests do not see each other's devices;
- loop devices are made once per session over sparse files in the guest's /tmp (a
  tmpfs): :data:`LOOP_SIZES` gives the roles and sizes (the same as the golden captures);
- :func:`both` runs one dmsetup command line through the real ``dmsetup`` and through
  ``python3 -m dmctl --backend kernel`` on identical device state and returns both
  results.

No udevd runs in the guest: DM_DISABLE_UDEV=1 makes libdevmapper (and dmctl) create the
/dev/mapper nodes themselves.
"""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
PYTHON = os.environ.get("DMCTL_VM_PYTHON") or sys.executable
SUFFIX = "-dmctl-vm"
DMSETUP = os.environ.get("DMCTL_VM_DMSETUP", "/usr/sbin/dmsetup")
LOOP_DIR = "/tmp/dmctl-vm-loops"
# role -> size in MiB
LOOP_SIZES = {
    "era_origin": 64,   # 131072 sectors
    "era_meta": 8,
    "lw_data": 16,      # 32768 sectors
    "lw_log": 32,
    "leg1": 8,          # 16384 sectors
    "leg2": 8,
    "mlog": 1,
    "lin": 16,          # 32768 sectors
}
# Devices whose contents are metadata that targets read back at activation: zeroed
# before each differential run so that both runs start from the same bytes
# (role -> bytes to zero).
WIPE = {"era_meta": 8 << 20, "mlog": 1 << 20, "lw_log": 1 << 20}
CMD_TIMEOUT = float(os.environ.get("DMCTL_VM_CMD_TIMEOUT", "120"))

BASE_ENV = dict(os.environ, DM_DISABLE_UDEV="1", LC_ALL="C")


def dev(base):
    """The name of a test device: ``base`` + the tier's suffix."""
    return base + SUFFIX


class Result:
    __slots__ = ("argv", "stdout", "stderr", "rc", "kmsg")

    def __init__(self, argv, stdout, stderr, rc):
        self.argv, self.stdout, self.stderr, self.rc = argv, stdout, stderr, rc
        self.kmsg = ""

    def triple(self):
        return (self.stdout, self.stderr, self.rc)

    def __repr__(self):
        return "Result(rc=%r, stdout=%r, stderr=%r)" % (self.rc, self.stdout, self.stderr)


def run(argv, input=None, timeout=CMD_TIMEOUT, env=None, check=False):
    """Run ``argv``; -> Result with text stdout/stderr.  A timeout is a result too
    (rc ``"timeout"``), so that "both block" can be compared."""
    try:
        p = subprocess.run(argv, input=input, capture_output=True, text=True,
                           errors="surrogateescape", timeout=timeout,
                           env=env or BASE_ENV, cwd=REPO)
        r = Result(argv, p.stdout, p.stderr, p.returncode)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="surrogateescape") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="surrogateescape") if isinstance(e.stderr, bytes) else (e.stderr or "")
        r = Result(argv, out, err, "timeout")
    if check and r.rc != 0:
        raise AssertionError("command failed: %r -> %r" % (argv, r))
    return r


def dmsetup(*args, **kw):
    return run([DMSETUP, *args], **kw)


def dmctl_argv(*args):
    return [PYTHON, "-m", "dmctl", "--backend", "kernel", *args]


def dmctl(*args, **kw):
    env = dict(BASE_ENV)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    kw.setdefault("env", env)
    return run(dmctl_argv(*args), **kw)


def tier_devices():
    """Names of the existing dm devices that carry the tier's suffix."""
    r = dmsetup("info", "-c", "--noheadings", "-o", "name,attr", "--separator", "\t")
    names = []
    for line in r.stdout.splitlines():
        parts = line.split("\t")
        if parts and parts[0].endswith(SUFFIX):
            names.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return names


def remove_tier_devices():
    """Remove every ``*-dmctl-vm`` device; devices stacked on others go first (removal is
    repeated while it makes progress; only when it does not: --retry, then --force).
    Returns the names that could not be removed."""
    stuck = 0
    for _ in range(12):
        left = tier_devices()
        if not left:
            return []
        for name, attr in left:
            if len(attr) > 2 and attr[2] == "s":        # suspended: resume first
                dmsetup("resume", name, timeout=30)
        removed = 0
        for name, _ in left:
            opts = ([], ["--retry"], ["--force"])[min(stuck, 2)]
            if dmsetup("remove", *opts, name, timeout=60).rc == 0:
                removed += 1
        stuck = 0 if removed else stuck + 1
    return [n for n, _ in tier_devices()]


class Loops(dict):
    """role -> /dev/loopN, plus the backing files."""

    def __init__(self):
        super().__init__()
        self.files = {}

    def wipe(self, roles=None):
        for role, nbytes in WIPE.items():
            if roles is not None and role not in roles:
                continue
            with open(self.files[role], "r+b") as f:
                f.write(b"\0" * nbytes)
                f.flush()
                os.fsync(f.fileno())


class Holder:
    """Keeps device nodes open (for open counts / deferred removal) until closed."""

    def __init__(self):
        self.fds = []

    def open(self, path, wait=5.0):
        deadline = time.monotonic() + wait
        while True:
            try:
                self.fds.append(os.open(path, os.O_RDONLY))
                return
            except FileNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self):
        while self.fds:
            os.close(self.fds.pop())


class Differ:
    """Runs a command through dmsetup and dmctl on identical state (see :meth:`both`)."""

    def __init__(self, loops):
        self.loops = loops
        self.holder = Holder()

    def fmt(self, s):
        return s.format(**self.loops)

    def reset(self):
        self.holder.close()
        left = remove_tier_devices()
        assert not left, "could not remove %r" % left
        self.loops.wipe()

    def prepare(self, setup):
        for step in setup:
            if callable(step):
                step(self)
                continue
            argv, stdin = step, None
            if isinstance(step, dict):
                argv, stdin = step["args"], step.get("stdin")
            r = dmsetup(*[self.fmt(a) for a in argv],
                        input=self.fmt(stdin) if stdin is not None else None)
            assert r.rc == 0, "setup step %r failed: %r" % (argv, r)

    def both(self, args, setup=(), stdin=None, timeout=CMD_TIMEOUT, runners=None,
             rebuild=True):
        """-> (dmsetup Result, dmctl Result) of ``args`` (dmsetup arguments; ``{role}``
        placeholders become loop device paths), each run from a freshly built state:
        no test devices, wiped metadata loops, then the ``setup`` steps (dmsetup argument
        lists, ``{"args": [...], "stdin": "..."}``, or callables taking this Differ).
        ``rebuild=False`` (for commands that change nothing) builds the state once and
        runs both commands on it.  The kernel log is cleared before each command; what
        the kernel logged during it is in the result's ``kmsg``."""
        args = [self.fmt(a) for a in args]
        stdin = self.fmt(stdin) if stdin is not None else None
        out = []
        for i, runner in enumerate(runners or (dmsetup, dmctl)):
            if rebuild or i == 0:
                self.reset()
                self.prepare(setup)
            run(["dmesg", "-C"])
            r = runner(*args, input=stdin, timeout=timeout)
            r.kmsg = run(["dmesg"]).stdout
            out.append(r)
        self.reset()
        return tuple(out)
