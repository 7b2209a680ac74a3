"""The one Mapper interface, implemented by the kernel and the simulator backends.

Plain classes with __slots__ (no dataclasses/typing imports: CLI start-up is measured).
Every method raises ``dmctl.errors.DmError`` carrying the kernel's errno on failure.
"""

from dmctl.constants import (  # noqa: F401  (re-exported)
    DM_READONLY_FLAG,
    DM_SUSPEND_FLAG,
    DM_PERSISTENT_DEV_FLAG,
    DM_STATUS_TABLE_FLAG,
    DM_ACTIVE_PRESENT_FLAG,
    DM_INACTIVE_PRESENT_FLAG,
    DM_BUFFER_FULL_FLAG,
    DM_SKIP_BDGET_FLAG,
    DM_SKIP_LOCKFS_FLAG,
    DM_NOFLUSH_FLAG,
    DM_QUERY_INACTIVE_TABLE_FLAG,
    DM_UEVENT_GENERATED_FLAG,
    DM_UUID_FLAG,
    DM_SECURE_DATA_FLAG,
    DM_DATA_OUT_FLAG,
    DM_DEFERRED_REMOVE,
    DM_INTERNAL_SUSPEND_FLAG,
    DM_IMA_MEASUREMENT_FLAG)
from dmctl.constants import LOOP_MAJOR
from dmctl.errors import DmctlError
from dmctl.records import (  # noqa: F401  (re-exported)
    DeviceEntry, DeviceInfo, DevId, TargetLine, TargetVersion)


class SimulatorRequired(DmctlError):
    """An operation only the simulator has was asked of another backend."""

    def __init__(self, kind="kernel"):
        self.kind = kind
        super().__init__("this needs the simulator backend (the %s backend cannot do it)"
                         % kind)


class Mapper:
    """The device-mapper as seen through its control interface.

    ``dev`` arguments accept a DevId, a name (str) or a (major, minor) tuple.
    ``cookie`` is the udev cookie value placed in ``event_nr`` (resume/remove/rename).
    """

    kind = "abstract"           # "kernel" or "sim": informational, never branched on

    # -- what the backend is (every question the CLI and libdm ask of it) -------------
    # The defaults describe the kernel's device mapper; the simulator overrides them.

    #: The driver is dmctl's simulator, not a kernel (``dmctl version`` says
    #: "(simulated)").  For display only: ask the capabilities below, not this.
    simulated = False

    #: create/resume/remove/rename send uevents that udev hears, so libdm's udev
    #: synchronisation (cookies, waits) applies.  The kernel: yes; the simulator: no.
    emits_uevents = True

    #: Mapped devices are block device nodes (``/dev/mapper/NAME``, ``/dev/dm-N``) that
    #: libdm creates, removes and renames where udev does not, and ``mknodes`` checks.
    #: The simulator has none: ``/dev/mapper/NAME`` in an argument just names NAME.
    has_device_nodes = True

    #: Why the last ``read_ahead()`` or ``set_read_ahead()`` could not do its work, as
    #: libdm logs it (``/dev/mapper/x: open failed: No such file or directory``), or None.
    read_ahead_error = None

    @property
    def dm_major(self):
        """The block major of mapped devices (libdm's ``_dm_device_major``): the one a
        persistent device number is made with.  0 when the driver has none."""
        raise NotImplementedError

    def blkdev_name(self, major, minor):
        """The kernel's name of block device ``major:minor`` (``dm-3``, ``loop7``,
        ``sda1``), or None when there is no such device: libdm's dm_device_get_name
        with prefer_kernel_name.  This default knows the mapped devices this mapper
        lists (``dm-<minor>``) and loop devices (``loop<minor>``, Linux's fixed major 7);
        the kernel backend asks sysfs."""
        if major == LOOP_MAJOR:
            return "loop%d" % minor
        return "dm-%d" % minor if self.dm_name(major, minor) is not None else None

    def dm_name(self, major, minor):
        """The name of mapped device ``major:minor`` (sysfs ``dm/name``), or None when
        it is not one.  This default looks through ``list_devices()``."""
        for e in self.list_devices():
            if (e.major, e.minor) == (major, minor):
                return e.name
        return None

    def simulator(self):
        """The simulated kernel behind this mapper, for what only the simulator can do
        (``dmctl io``/``sim``/``logd``, ``dmctl.sim.io``: I/O, power cuts, faults).
        Raises SimulatorRequired on any other backend."""
        raise SimulatorRequired(self.kind)

    # -- driver ---------------------------------------------------------------------
    def version(self):
        """Driver interface version (DM_VERSION), e.g. (4, 47, 0)."""
        raise NotImplementedError

    def list_devices(self, uuid=False):
        """DM_LIST_DEVICES: [DeviceEntry] in the kernel's order (by name)."""
        raise NotImplementedError

    def target_versions(self):
        """DM_LIST_VERSIONS: [TargetVersion] in the kernel's list order."""
        raise NotImplementedError

    def target_version(self, name):
        """DM_GET_TARGET_VERSION: TargetVersion, EINVAL if unknown."""
        raise NotImplementedError

    def remove_all(self, deferred=False):
        """DM_REMOVE_ALL: remove every device that is not open."""
        raise NotImplementedError

    # -- device lifecycle -----------------------------------------------------------
    def create(self, name, uuid=None, minor=None, readonly=False):
        """DM_DEV_CREATE -> DeviceInfo.  ``minor`` requests a persistent minor."""
        raise NotImplementedError

    def load(self, dev, lines, readonly=False):
        """DM_TABLE_LOAD of [TargetLine] into the inactive slot -> DeviceInfo."""
        raise NotImplementedError

    def resume(self, dev, noflush=False, nolockfs=False, cookie=0, readonly=False):
        """DM_DEV_SUSPEND without DM_SUSPEND_FLAG -> DeviceInfo.  ``readonly``: dmsetup
        -r sets DM_READONLY_FLAG on the resume request too (the kernel ignores it)."""
        raise NotImplementedError

    def suspend(self, dev, noflush=False, nolockfs=False):
        """DM_DEV_SUSPEND with DM_SUSPEND_FLAG -> DeviceInfo."""
        raise NotImplementedError

    def clear(self, dev):
        """DM_TABLE_CLEAR -> DeviceInfo."""
        raise NotImplementedError

    def remove(self, dev, deferred=False, cookie=0):
        """DM_DEV_REMOVE -> DeviceInfo (of the removed, or deferred, device)."""
        raise NotImplementedError

    def rename(self, dev, new, set_uuid=False, cookie=0):
        """DM_DEV_RENAME (by name only, as the kernel) -> DeviceInfo."""
        raise NotImplementedError

    def set_geometry(self, dev, cylinders, heads, sectors, start):
        """DM_DEV_SET_GEOMETRY; the arguments are the strings the user typed."""
        raise NotImplementedError

    # -- queries --------------------------------------------------------------------
    def info(self, dev, inactive=False):
        """DM_DEV_STATUS -> DeviceInfo (ENXIO if missing)."""
        raise NotImplementedError

    def table(self, dev, inactive=False):
        """DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG -> (DeviceInfo, [TargetLine])."""
        raise NotImplementedError

    def status(self, dev, inactive=False, noflush=False):
        """DM_TABLE_STATUS (INFO) -> (DeviceInfo, [TargetLine])."""
        raise NotImplementedError

    def measure(self, dev, inactive=False):
        """DM_TABLE_STATUS with DM_IMA_MEASUREMENT_FLAG -> (DeviceInfo, [TargetLine])."""
        raise NotImplementedError

    def deps(self, dev, inactive=False):
        """DM_TABLE_DEPS -> (DeviceInfo, [(major, minor)]) in the kernel's order."""
        raise NotImplementedError

    def message(self, dev, sector, message):
        """DM_TARGET_MSG -> the target's reply string, or None."""
        raise NotImplementedError

    def wait_event(self, dev, event_nr=0, inactive=False, noflush=False, timeout=None):
        """DM_DEV_WAIT: block until the event counter differs from ``event_nr``.

        -> (DeviceInfo, [TargetLine] status lines).  ``timeout`` (seconds) is dmctl's
        own addition; on expiry DmError(ETIME) is raised.
        """
        raise NotImplementedError

    # -- batching -------------------------------------------------------------------
    def batch(self):
        """Context manager grouping several calls (the simulator: one transaction)."""
        return _NullContext()

    def close(self):
        pass


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _mapper_read_ahead(self, info):
    """Read-ahead of a device in 512-byte sectors, or None when it cannot be read
    (dm_task_get_read_ahead: sysfs bdi/read_ahead_kb * 2 for the kernel)."""
    return None


def _mapper_set_read_ahead(self, info, sectors, minimum=False):
    """Set read-ahead (dmsetup --readahead after resume); ``minimum``: only raise."""
    return None


Mapper.read_ahead = _mapper_read_ahead
Mapper.set_read_ahead = _mapper_set_read_ahead
