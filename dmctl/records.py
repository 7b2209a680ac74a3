"""What the device mapper reports, as plain records: the decoded form of the DM ioctl
ABI's structures, shared by the ioctl codec, both backends and the simulated kernel.

Plain classes with __slots__ (no dataclasses/typing imports: CLI start-up is measured).
"""

from dmctl.constants import (DM_ACTIVE_PRESENT_FLAG, DM_DEFERRED_REMOVE,
                             DM_INACTIVE_PRESENT_FLAG, DM_INTERNAL_SUSPEND_FLAG,
                             DM_READONLY_FLAG, DM_SUSPEND_FLAG, DM_UEVENT_GENERATED_FLAG)


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

    @classmethod
    def from_devno_or_node(cls, arg, dm_major, dev_dir="/dev/"):
        """The syntactic part of naming a device, with no stat() and no mangling:
        ``MAJ:MIN`` -> by number; ``DEV_DIR/mapper/NAME`` -> by name;
        ``DEV_DIR/dm-N`` -> (``dm_major``, N); None for anything else.  dmctl's own
        commands accept these (``dmctl.libdm.devices.device_arg``), and so does the
        simulator's I/O API (``dmctl.sim.io``) for library callers."""
        a, sep, b = arg.partition(":")
        if sep and a.isdigit() and b.isdigit():
            return cls(major=int(a), minor=int(b))
        if arg.startswith(dev_dir + "mapper/") and "/" not in arg[len(dev_dir) + 7:]:
            return cls(name=arg[len(dev_dir) + 7:])
        if arg.startswith(dev_dir + "dm-") and arg[len(dev_dir) + 3:].isdigit():
            return cls(major=dm_major, minor=int(arg[len(dev_dir) + 3:]))
        return None

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
    """One target type the driver knows (DM_LIST_VERSIONS): ``name`` and ``version``,
    a (major, minor, patch) tuple."""
    __slots__ = ("name", "version")

    def __init__(self, name, version):
        self.name = name
        self.version = tuple(version)
