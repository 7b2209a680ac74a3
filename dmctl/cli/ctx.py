"""Per-invocation state of the dmsetup-compatible CLI (dmsetup's globals, as an object).

Commands receive a Ctx: parsed switches, the lazily created backend, output helpers,
device arguments resolved by ``dmctl.libdm.devices`` (errors printed here) and
dmsetup's error text for failed ioctls.
"""

import os
import sys

from dmctl.errors import DmctlError


class BackendUnavailable(DmctlError):
    pass


class Switches:
    """dmsetup's _switches/_int_args/_string_args: counts and last values per option."""
    __slots__ = ("count", "value")

    def __init__(self):
        self.count = {}
        self.value = {}

    def __getitem__(self, key):
        return self.count.get(key, 0)

    def get(self, key, default=None):
        return self.value.get(key, default)

    def set(self, key, value=None):
        self.count[key] = self.count.get(key, 0) + 1
        if value is not None:
            self.value[key] = value

    def clear(self, key):
        self.count.pop(key, None)
        self.value.pop(key, None)


class Ctx:
    def __init__(self, prog="dmctl"):
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
        self._udev_policy = None
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

    def udev_policy(self):
        """libdm's udev and node policy for this command (dmctl.libdm.udev.UdevPolicy,
        from the switches, built once: dmctl.cli.common.udev_policy)."""
        if self._udev_policy is None:
            from dmctl.cli.common import udev_policy
            self._udev_policy = udev_policy(self)
        return self._udev_policy

    # ------------------------------------------------------------------ errors
    def ioctl_error(self, e, op=None, name=None, uuid=None, major=None, minor=None):
        """Print libdm's line for a failed ioctl (and the kernel's reason under it),
        as dmctl.libdm.task builds it."""
        from dmctl.libdm.task import ioctl_error_lines
        for line in ioctl_error_lines(e, op, name, uuid, major, minor):
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

    def device_name(self, major, minor, blk):
        """libdm's dm_device_get_name: the kernel name (``dm-3``, ``loop7``) when ``blk``
        or the device is not a mapped device, else the dm name.  None if unknown."""
        m = self.mapper()
        if not blk:
            name = m.dm_name(major, minor)
            if name is not None:
                return self.display_name(name)
        return m.blkdev_name(major, minor)

    def mangle_name(self, name, what="name"):
        """A user-supplied name/uuid in the kernel's (mangled) form; None on error
        (the error was printed)."""
        from dmctl.libdm import names
        try:
            return names.kernel_form(name, self.mangling, what)
        except names.ManglingError as e:
            self.err(str(e))
            return None

    def set_name(self, arg, creating=False):
        """dm_task_set_name: a device argument (name or path) -> kernel name, or None
        (the error was printed)."""
        from dmctl.libdm import devices
        try:
            return devices.set_name(arg, self.mangling, self.dev_dir, creating,
                                    self._nodeless)
        except devices.DeviceArgError as e:
            self.err(str(e))
            return None

    def resolve_device(self, name=None, optional=False):
        """dmsetup's _set_task_device: the DevId named by ``name`` (an argument), else
        by -u, else by -j/-m.  None on error (printed); when nothing names a device,
        DevId() if ``optional``, else None after "No device specified."."""
        from dmctl.libdm import devices
        sw = self.sw
        try:
            dev = devices.resolve(name, sw.get("uuid") if sw["uuid"] else None,
                                  sw.get("major") if sw["major"] else None,
                                  sw.get("minor") if sw["minor"] else None,
                                  self.mangling, self.dev_dir, self._nodeless)
        except devices.DeviceArgError as e:
            self.err(str(e))
            return None
        if dev is None:
            if not optional:
                self.err("No device specified.")
                return None
            from dmctl.records import DevId
            dev = DevId()
        return dev

    def _nodeless(self):
        """The backend has no device nodes (the simulator's Mapper.has_device_nodes)."""
        try:
            return not self.mapper().has_device_nodes
        except BackendUnavailable:
            return False

    def dev_from_args(self, args, entry=None):
        """The device a per-device command addresses: a names entry from _process_all,
        else args[0], -u or -j/-m (resolve_device).  A DevId or None (error printed)."""
        if entry is not None:
            from dmctl.records import DevId
            return DevId(name=entry.name)
        return self.resolve_device(args[0] if args else None)
