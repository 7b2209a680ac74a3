"""Per-invocation state of the dmsetup-compatible CLI (dmsetup's globals, as an object).

Commands receive a Ctx: parsed switches, the lazily created backend, output helpers,
device-argument resolution and dmsetup's error text for failed ioctls.
"""

import os
import sys

_WHITELIST = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#+-.:=@_")


class BackendUnavailable(Exception):
    pass


class Ctx:
    def __init__(self, prog="dmctl"):
        from dmctl.cli.main import Switches
        self.prog = prog
        self.sw = Switches()
        self.dev_dir = "/dev/"
        self.command = None
        self.report = None
        self.selection_cmd = None
        self.concise_output_produced = False
        self.mangling_override = None
        self._mapper = None
        self._mapper_failed = False
        self._stdout = sys.stdout
        self._stderr = sys.stderr

    # ------------------------------------------------------------------ output
    def out(self, s):
        self._stdout.write(s)

    def err(self, msg):
        """libdm log_error: the message and a newline on stderr."""
        self._stdout.flush()
        self._stderr.write(msg + "\n")
        self._stderr.flush()

    def verbose(self, level):
        return self.sw["verbose"] >= level

    def finish(self):
        try:
            self._stdout.flush()
        except Exception:
            pass
        if self._mapper is not None:
            try:
                self._mapper.close()
            except Exception:
                pass

    def report_output(self, count):
        from dmctl.cli import report_cli
        report_cli.report_output(self, count)

    @property
    def json(self):
        return bool(self.sw["json"])

    # ------------------------------------------------------------------ backend
    @property
    def backend_kind(self):
        return self.sw.get("backend") or os.environ.get("DMCTL_BACKEND") or "auto"

    def mapper(self):
        """The backend, created on first use.  Raises BackendUnavailable after printing
        libdm's messages when the kernel driver cannot be reached."""
        if self._mapper is None:
            if self._mapper_failed:
                raise BackendUnavailable()
            from dmctl.backend import get_mapper, KernelUnavailable
            try:
                self._mapper = get_mapper(self.backend_kind)
            except KernelUnavailable as e:
                self.err("%s: open failed: %s" % (e.path, os.strerror(e.errno)))
                self.err("Failure to communicate with kernel device-mapper driver.")
                if os.geteuid() == 0:
                    self.err("Check that device-mapper is available in the kernel.")
                from dmctl import LIBRARY_VERSION
                self.err("Incompatible libdevmapper %s and kernel driver (unknown version)."
                         % LIBRARY_VERSION)
                self._mapper_failed = True
                raise BackendUnavailable()
        return self._mapper

    @property
    def is_sim(self):
        return self.mapper().kind == "sim"

    # ------------------------------------------------------------------ errors
    def ioctl_error(self, e, op=None, name=None, uuid=None, major=None, minor=None):
        """Print libdm's line for a failed ioctl (and the kernel's reason under it)."""
        op = e.op or op or "?"
        name = e.name if e.name is not None else (name or "")
        uuid = e.uuid if e.uuid is not None else (uuid or "")
        maj = e.major if e.major is not None else major
        mnr = e.minor if e.minor is not None else minor
        dev = ""
        if maj:
            dev = "(%d:%d)" % (maj, mnr or 0)
        # libdm prints dmi->name and dmi->uuid: the kernel's (mangled) strings
        self.err("device-mapper: %s ioctl on %s %s%s failed: %s" % (
            op, name or "", uuid or "", dev, e.strerror))
        if e.detail:
            for line in str(e.detail).splitlines():
                self.err(line)

    # ------------------------------------------------------------------ names
    @property
    def mangling(self):
        return (self.mangling_override or self.sw.get("manglename")
                or os.environ.get("DM_DEFAULT_NAME_MANGLING_MODE", "auto").lower())

    def display_name(self, kernel_name):
        """A kernel (mangled) name as dmsetup shows it: unmangled unless mode none."""
        if "\\x" not in kernel_name or self.mangling == "none":
            return kernel_name
        from dmctl.libdm import names
        return names.unmangle(kernel_name)

    def mangle_name(self, name, what="name"):
        """A user-supplied name/uuid in the kernel's (mangled) form; None on error
        (the error was printed)."""
        mode = self.mangling
        if mode == "none":
            return name
        if mode == "auto" and all(c in _WHITELIST for c in name):
            return name
        from dmctl.libdm import names
        try:
            return names.mangle(name, mode, what)
        except names.ManglingError as e:
            self.err(str(e))
            return None

    def name_from_arg(self, arg, creating=False):
        """dm_task_set_name: a device argument (name or path) -> kernel name or None."""
        if "/" not in arg:
            return self.mangle_name(arg)
        if creating:
            self.err('Name "%s" invalid. It contains "/".' % arg)
            return None
        base = arg.rsplit("/", 1)[1]
        mapper_dir = self.dev_dir + "mapper"
        try:
            st1 = os.stat(arg)
        except OSError:
            st1 = None
            # The simulator has no device nodes: /dev/mapper/NAME names NAME.
            if (os.path.dirname(os.path.normpath(arg)) == os.path.normpath(mapper_dir)
                    and self._sim_backend()):
                return base
            if len(arg) < 3 or arg.startswith("/") or arg.count("/") != 1:
                self.err("Device %s not found" % arg)
                return None
            try:
                st1 = os.stat(os.path.join(mapper_dir, "..", arg))
            except OSError:
                self.err("Device %s not found" % arg)
                return None
        else:
            try:
                st2 = os.stat(os.path.join(mapper_dir, base))
                if st2.st_rdev == st1.st_rdev:
                    return base
            except OSError:
                pass
        try:
            for entry in os.listdir(mapper_dir):
                try:
                    if os.stat(os.path.join(mapper_dir, entry)).st_rdev == st1.st_rdev:
                        return entry
                except OSError:
                    continue
        except OSError:
            pass
        self.err("Device %s not found" % arg)
        return None

    def _sim_backend(self):
        try:
            return self.mapper().kind == "sim"
        except BackendUnavailable:
            return False

    def dev_from_args(self, args, entry=None):
        """The device a per-device command addresses: -u, -j/-m, a names entry from
        _process_all, or args[0].  Returns a DevId or None (error printed)."""
        from dmctl.backend.base import DevId
        if entry is not None:
            return DevId(name=entry.name)
        sw = self.sw
        if sw["uuid"]:
            u = self.mangle_name(sw.get("uuid"), "UUID")
            return None if u is None else DevId(uuid=u)
        if sw["major"]:
            return DevId(major=sw.get("major"), minor=sw.get("minor"))
        if args:
            n = self.name_from_arg(args[0])
            return None if n is None else DevId(name=n)
        return None
