"""The one Mapper interface, implemented by the kernel and the simulator backends.

Plain classes with __slots__ (no dataclasses/typing imports: CLI start-up is measured).
Every method raises ``dmctl.errors.DmError`` carrying the kernel's errno on failure.
"""

# Flags as in <linux/dm-ioctl.h>; repeated here (cheap) so that callers that never touch
# the ioctl layer need not import it.  dmctl.ioctl.abi defines the same values.
DM_READONLY_FLAG = 1 << 0
DM_SUSPEND_FLAG = 1 << 1
DM_PERSISTENT_DEV_FLAG = 1 << 3
DM_STATUS_TABLE_FLAG = 1 << 4
DM_ACTIVE_PRESENT_FLAG = 1 << 5
DM_INACTIVE_PRESENT_FLAG = 1 << 6
DM_BUFFER_FULL_FLAG = 1 << 8
DM_SKIP_BDGET_FLAG = 1 << 9
DM_SKIP_LOCKFS_FLAG = 1 << 10
DM_NOFLUSH_FLAG = 1 << 11
DM_QUERY_INACTIVE_TABLE_FLAG = 1 << 12
DM_UEVENT_GENERATED_FLAG = 1 << 13
DM_UUID_FLAG = 1 << 14
DM_SECURE_DATA_FLAG = 1 << 15
DM_DATA_OUT_FLAG = 1 << 16
DM_DEFERRED_REMOVE = 1 << 17
DM_INTERNAL_SUSPEND_FLAG = 1 << 18
DM_IMA_MEASUREMENT_FLAG = 1 << 19


class _Rec:
    __slots__ = ()

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__))

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}


class DevId(_Rec):
    """How a request names a device: exactly one of name, uuid or (major, minor)."""
    __slots__ = ("name", "uuid", "major", "minor")

    def __init__(self, name=None, uuid=None, major=None, minor=None):
        self.name = name
        self.uuid = uuid
        self.major = major
        self.minor = minor

    @classmethod
    def coerce(cls, x):
        if isinstance(x, DevId):
            return x
        if isinstance(x, str):
            return cls(name=x)
        if isinstance(x, tuple) and len(x) == 2:
            return cls(major=x[0], minor=x[1])
        raise TypeError("cannot name a device with %r" % (x,))

    def label(self):
        if self.name:
            return self.name
        if self.uuid:
            return self.uuid
        if self.major is not None:
            return "%d:%d" % (self.major, self.minor)
        return ""


class DeviceInfo(_Rec):
    """What DM_DEV_STATUS (``__dev_status``) reports about one device."""
    __slots__ = ("name", "uuid", "major", "minor", "flags", "open_count", "event_nr",
                 "target_count")

    def __init__(self, name="", uuid="", major=0, minor=0, flags=0, open_count=0,
                 event_nr=0, target_count=0):
        self.name = name
        self.uuid = uuid
        self.major = major
        self.minor = minor
        self.flags = flags
        self.open_count = open_count
        self.event_nr = event_nr
        self.target_count = target_count

    suspended = property(lambda s: bool(s.flags & DM_SUSPEND_FLAG))
    read_only = property(lambda s: bool(s.flags & DM_READONLY_FLAG))
    live_table = property(lambda s: bool(s.flags & DM_ACTIVE_PRESENT_FLAG))
    inactive_table = property(lambda s: bool(s.flags & DM_INACTIVE_PRESENT_FLAG))
    deferred_remove = property(lambda s: bool(s.flags & DM_DEFERRED_REMOVE))
    internal_suspend = property(lambda s: bool(s.flags & DM_INTERNAL_SUSPEND_FLAG))
    uevent_generated = property(lambda s: bool(s.flags & DM_UEVENT_GENERATED_FLAG))

    @property
    def devno(self):
        return "%d:%d" % (self.major, self.minor)


class DeviceEntry(_Rec):
    """One record of DM_LIST_DEVICES.  ``uuid`` is None when it was not asked for."""
    __slots__ = ("name", "major", "minor", "event_nr", "uuid")

    def __init__(self, name, major, minor, event_nr=0, uuid=None):
        self.name = name
        self.major = major
        self.minor = minor
        self.event_nr = event_nr
        self.uuid = uuid


class TargetLine(_Rec):
    """``<start> <length> <target_type> <params>``; params are passed through verbatim."""
    __slots__ = ("start", "length", "target_type", "params")

    def __init__(self, start, length, target_type, params=""):
        self.start = start
        self.length = length
        self.target_type = target_type
        self.params = params

    def format(self):
        # dmsetup always prints the space after the type, even for empty params.
        return "%d %d %s %s" % (self.start, self.length, self.target_type, self.params)


class TargetVersion(_Rec):
    __slots__ = ("name", "version")

    def __init__(self, name, version):
        self.name = name
        self.version = tuple(version)


class Mapper:
    """The device-mapper as seen through its control interface.

    ``dev`` arguments accept a DevId, a name (str) or a (major, minor) tuple.
    ``cookie`` is the udev cookie value placed in ``event_nr`` (resume/remove/rename).
    """

    kind = "abstract"           # "kernel" or "sim"

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
