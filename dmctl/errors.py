"""dmctl's exceptions: one root, :class:`DmctlError`, and the errors that carry an errno
from the bottom (kernel, simulator) up to the CLI.

Only the CLI turns these into dmsetup's text and exit codes.  Catch ``DmctlError`` to
catch any failure dmctl reports on purpose (a bug still raises what Python raises).
The hierarchy (each class lives where its layer is; all keep their own messages,
attributes and errno)::

    DmctlError
     +-- DmError                 a device-mapper ioctl failed (errno, op, device, detail)
     +-- TargetError             a simulated target's ctr/message failed (ti->error)
     +-- IOFailure               I/O on a simulated device failed (dmctl.sim.io's errors)
     +-- StateError              the simulator's state dir cannot be used (dmctl.sim.store)
     +-- UsageError              bad command line (dmctl's own commands)
     +-- GetoptError             bad option, glibc's message (dmctl.getopt)
     +-- TableError              a table line does not parse (dmctl.libdm.table)
     +-- ParseError              a target's params or status text does not have its
     |                           shape (dmctl.libdm.fields; also a ValueError)
     +-- KernelUnavailable       no usable /dev/mapper/control (dmctl.backend)
     +-- PDataError              persistent-data failure, -errno + text (dmctl.pdata)
     |    +-- EraMetadataError   era metadata (dmctl.formats.era_meta)
     +-- LogFormatError          not a dm-log-writes log (dmctl.formats.log_writes;
     |                           also a ValueError), with BadMagic, BadVersion,
     |                           ShortSuper, Malformed, Truncated
     +-- LogError                a dirty log's constructor failed
     |                           (dmctl.sim.targets.dirty_log.base)
     +-- KernelError             a DM ioctl's reply does not decode (dmctl.ioctl.codec)
     +-- DeviceArgError          a device argument names no device (dmctl.libdm.devices)
     +-- ManglingError           a name/uuid cannot be mangled (dmctl.libdm.names)
     +-- SemError                a udev cookie semaphore call failed (dmctl.libdm.cookie;
     |                           also an OSError)
     +-- ReportError, FieldError bad -o/-O/-S report options (dmctl.libdm.report)
     +-- TreeOptionError         bad ls --tree options (dmctl.libdm.tree)
     +-- BackendUnavailable      the chosen backend cannot be used (dmctl.cli.ctx)
     +-- NotRunning, StartError  the log daemon is not running / cannot start (dmctl.logd)
"""

import errno as _errno
import os


class DmctlError(Exception):
    """The root of every exception dmctl raises on purpose."""


class DmError(DmctlError):
    """A device-mapper operation failed with an errno.

    ``op`` is libdm's ioctl name as dmsetup prints it (``create``, ``reload``,
    ``resume``, ``remove``, ``info``, ``table``, ``status``, ``message``...).
    ``name``/``uuid``/``major``/``minor`` identify the device the request named.
    ``detail`` is the kernel's own explanation where it is known (for example the
    target's ``ti->error`` text, ``"era: Invalid block size"``); the simulator always
    knows it, the kernel backend reads it from the kernel log where it can.
    """

    def __init__(self, err, op=None, name=None, uuid=None, major=None, minor=None,
                 detail=None):
        self.errno = err
        self.op = op
        self.name = name
        self.uuid = uuid
        self.major = major
        self.minor = minor
        self.detail = detail
        super().__init__(self.describe())

    @property
    def strerror(self):
        return os.strerror(self.errno) if self.errno else "Unknown error"

    def describe(self):
        s = "%s ioctl on %s failed: %s" % (self.op or "?", self.name or self.uuid or "", self.strerror)
        if self.detail:
            s += " (%s)" % self.detail
        return s

    def with_context(self, op=None, name=None, uuid=None, major=None, minor=None):
        """Fill in request context the raiser did not know (returns self)."""
        if op is not None and self.op is None:
            self.op = op
        if name is not None and self.name is None:
            self.name = name
        if uuid is not None and self.uuid is None:
            self.uuid = uuid
        if major is not None and self.major is None:
            self.major, self.minor = major, minor
        self.args = (self.describe(),)
        return self


class TargetError(DmctlError):
    """A target constructor/message failed: ``ti->error`` text plus errno.

    Raised by target code in the simulator; the mapper turns it into a DmError
    whose ``detail`` is the kernel's log line (``"<dev>: <type>: <text> (-EINVAL)"``).
    """

    def __init__(self, err, text, log=None):
        self.errno = err
        self.text = text
        # What the kernel logs instead of/besides ti->error (DMWARN/DMERR lines).
        self.log = log
        super().__init__(text)


class IOFailure(DmctlError):
    """An I/O request on a simulated device failed the way a program sees it (EIO on
    a bio, a bad I/O script line).  Like a failed ioctl it does not undo what the
    simulated kernel already did: the transaction is still committed."""


class StateError(DmctlError):
    """The simulator's state dir cannot be used (``dmctl.sim.store``): not a database,
    a schema this dmctl does not know, locked past ``DMCTL_SIM_LOCK_TIMEOUT``, not
    writable, disk full.  The message is one line naming the file and what to do; the
    CLI prints it and exits 1.  Nothing was changed."""


class UsageError(DmctlError):
    """Bad command line: the CLI prints ``message`` and exits 1."""

    def __init__(self, message, usage=False):
        self.message = message
        self.usage = usage
        super().__init__(message)


EINVAL = _errno.EINVAL
ENXIO = _errno.ENXIO
EBUSY = _errno.EBUSY
ENODEV = _errno.ENODEV
EIO = _errno.EIO
ENOMEM = _errno.ENOMEM
ENOTTY = _errno.ENOTTY
EACCES = _errno.EACCES


def errno_name(err):
    """``22`` -> ``"EINVAL"`` (as the kernel's %pe prints ``-EINVAL``)."""
    return _errno.errorcode.get(err, str(err))
