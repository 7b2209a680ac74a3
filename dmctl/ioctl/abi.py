"""The device-mapper ioctl ABI, interface version 4 (<linux/dm-ioctl.h>).

The ``struct.Struct`` layouts (``STRUCT_DM_*``), offsets and sizes live here, and the
ABI's numbers (``DM_*``, defined in ``dmctl.constants``) are re-exported; encoding and
decoding is in ``dmctl.ioctl.codec``.  Layouts are the x86_64 / native-endian ones (``=`` format:
native byte order, no padding; the C structs have no implicit padding either, apart
from the trailing alignment of the flexible-array structs, see below).
"""

import struct

# The numbers themselves (DM_*_CMD, DM_*_FLAG, lengths, request numbers) are in
# dmctl.constants; re-exported here, where the ioctl layer's readers expect them.
from dmctl.constants import (  # noqa: F401
    DM_ACTIVE_PRESENT_FLAG, DM_BUFFER_FULL_FLAG, DM_CONTROL_NODE, DM_CONTROL_PATH,
    DM_DATA_OUT_FLAG, DM_DATA_START, DM_DEFERRED_REMOVE, DM_DEV_ARM_POLL,
    DM_DEV_ARM_POLL_CMD, DM_DEV_CREATE, DM_DEV_CREATE_CMD, DM_DEV_REMOVE, DM_DEV_REMOVE_CMD,
    DM_DEV_RENAME, DM_DEV_RENAME_CMD, DM_DEV_SET_GEOMETRY, DM_DEV_SET_GEOMETRY_CMD,
    DM_DEV_STATUS, DM_DEV_STATUS_CMD, DM_DEV_SUSPEND, DM_DEV_SUSPEND_CMD, DM_DEV_WAIT,
    DM_DEV_WAIT_CMD, DM_DIR, DM_EXISTS_FLAG, DM_GET_TARGET_VERSION,
    DM_GET_TARGET_VERSION_CMD, DM_IMA_MEASUREMENT_FLAG, DM_INACTIVE_PRESENT_FLAG,
    DM_INTERNAL_SUSPEND_FLAG, DM_IOCTL, DM_LIST_DEVICES, DM_LIST_DEVICES_CMD,
    DM_LIST_VERSIONS, DM_LIST_VERSIONS_CMD, DM_MAX_TYPE_NAME, DM_MIN_DATA_SIZE,
    DM_MPATH_PROBE_PATHS, DM_MPATH_PROBE_PATHS_CMD, DM_NAME_LEN,
    DM_NAME_LIST_EXT_MINOR, DM_NAME_LIST_FLAG_DOES_NOT_HAVE_UUID,
    DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID, DM_NAME_LIST_FLAG_HAS_UUID,
    DM_NAME_LIST_NAME_OFFSET, DM_NAME_LIST_UUID_MINOR, DM_NOFLUSH_FLAG,
    DM_OUTPUT_ONLY_FLAGS, DM_PERSISTENT_DEV_FLAG, DM_QUERY_INACTIVE_TABLE_FLAG,
    DM_READONLY_FLAG, DM_REMOVE_ALL, DM_REMOVE_ALL_CMD, DM_SECURE_DATA_FLAG,
    DM_SKIP_BDGET_FLAG, DM_SKIP_LOCKFS_FLAG, DM_STATUS_TABLE_FLAG, DM_SUSPEND_FLAG,
    DM_TABLE_CLEAR, DM_TABLE_CLEAR_CMD, DM_TABLE_DEPS, DM_TABLE_DEPS_CMD, DM_TABLE_LOAD,
    DM_TABLE_LOAD_CMD, DM_TABLE_STATUS, DM_TABLE_STATUS_CMD, DM_TARGET_MSG,
    DM_TARGET_MSG_CMD, DM_UEVENT_GENERATED_FLAG, DM_UUID_FLAG, DM_UUID_LEN, DM_VERSION,
    DM_VERSION_CMD, DM_VERSION_EXTRA, DM_VERSION_MAJOR, DM_VERSION_MINOR,
    DM_VERSION_PATCHLEVEL)

CMD_NAMES = {
    DM_VERSION_CMD: "DM_VERSION",
    DM_REMOVE_ALL_CMD: "DM_REMOVE_ALL",
    DM_LIST_DEVICES_CMD: "DM_LIST_DEVICES",
    DM_DEV_CREATE_CMD: "DM_DEV_CREATE",
    DM_DEV_REMOVE_CMD: "DM_DEV_REMOVE",
    DM_DEV_RENAME_CMD: "DM_DEV_RENAME",
    DM_DEV_SUSPEND_CMD: "DM_DEV_SUSPEND",
    DM_DEV_STATUS_CMD: "DM_DEV_STATUS",
    DM_DEV_WAIT_CMD: "DM_DEV_WAIT",
    DM_TABLE_LOAD_CMD: "DM_TABLE_LOAD",
    DM_TABLE_CLEAR_CMD: "DM_TABLE_CLEAR",
    DM_TABLE_DEPS_CMD: "DM_TABLE_DEPS",
    DM_TABLE_STATUS_CMD: "DM_TABLE_STATUS",
    DM_LIST_VERSIONS_CMD: "DM_LIST_VERSIONS",
    DM_TARGET_MSG_CMD: "DM_TARGET_MSG",
    DM_DEV_SET_GEOMETRY_CMD: "DM_DEV_SET_GEOMETRY",
    DM_DEV_ARM_POLL_CMD: "DM_DEV_ARM_POLL",
    DM_GET_TARGET_VERSION_CMD: "DM_GET_TARGET_VERSION",
    DM_MPATH_PROBE_PATHS_CMD: "DM_MPATH_PROBE_PATHS",
}

# Commands the kernel copies only the header for (IOCTL_FLAGS_NO_PARAMS): the handler
# sees param_size == 305 and cannot return a payload.
NO_PARAMS_CMDS = frozenset((DM_REMOVE_ALL_CMD, DM_DEV_CREATE_CMD, DM_DEV_REMOVE_CMD,
                            DM_DEV_SUSPEND_CMD, DM_DEV_STATUS_CMD, DM_TABLE_CLEAR_CMD,
                            DM_DEV_ARM_POLL_CMD))
# Commands that run dm_issue_global_event() on success (IOCTL_FLAGS_ISSUE_GLOBAL_EVENT).
GLOBAL_EVENT_CMDS = frozenset((DM_REMOVE_ALL_CMD, DM_DEV_CREATE_CMD, DM_DEV_REMOVE_CMD,
                               DM_DEV_RENAME_CMD))
# Highest command number with a handler in the control-node table (lookup_ioctl).
LAST_CONTROL_CMD = DM_GET_TARGET_VERSION_CMD

# -- ioctl request numbers (<asm-generic/ioctl.h>) ----------------------------------------
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2


def _IOC(direction, typ, nr, size):
    return ((direction << _IOC_DIRSHIFT) | (typ << _IOC_TYPESHIFT)
            | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT))


def _IO(typ, nr):
    return _IOC(_IOC_NONE, typ, nr, 0)


def _IOWR(typ, nr, size):
    return _IOC(_IOC_READ | _IOC_WRITE, typ, nr, size)


def _IOC_TYPE(request):
    return (request >> _IOC_TYPESHIFT) & ((1 << _IOC_TYPEBITS) - 1)


def _IOC_NR(request):
    return (request >> _IOC_NRSHIFT) & ((1 << _IOC_NRBITS) - 1)


# -- struct dm_ioctl -------------------------------------------------------------------
#   __u32 version[3]; __u32 data_size; __u32 data_start; __u32 target_count;
#   __s32 open_count; __u32 flags; __u32 event_nr; __u32 padding; __u64 dev;
#   char name[128]; char uuid[129]; char data[7];
STRUCT_DM_IOCTL = struct.Struct("=3I I I I i I I I Q 128s 129s 7s")
SIZEOF_DM_IOCTL = STRUCT_DM_IOCTL.size               # 312
assert SIZEOF_DM_IOCTL == 312

# Field offsets (checked against a ctypes oracle in the tests).
OFF_VERSION = 0
OFF_DATA_SIZE = 12
OFF_DATA_START = 16
OFF_TARGET_COUNT = 20
OFF_OPEN_COUNT = 24
OFF_FLAGS = 28
OFF_EVENT_NR = 32
OFF_PADDING = 36
OFF_DEV = 40
OFF_NAME = 48
OFF_UUID = OFF_NAME + DM_NAME_LEN                    # 176
OFF_DATA = OFF_UUID + DM_UUID_LEN                    # 305

# DM_MIN_DATA_SIZE is offsetof(struct dm_ioctl, data); DM_DATA_START, where the kernel
# puts every output payload, align8(sizeof(struct dm_ioctl)).
assert DM_MIN_DATA_SIZE == OFF_DATA
assert DM_DATA_START == (SIZEOF_DM_IOCTL + 7) & ~7

U32 = struct.Struct("=I")
S32 = struct.Struct("=i")
U64 = struct.Struct("=Q")
VERSION3 = struct.Struct("=3I")

# -- struct dm_target_spec ---------------------------------------------------------------
#   __u64 sector_start; __u64 length; __s32 status; __u32 next; char target_type[16];
STRUCT_DM_TARGET_SPEC = struct.Struct("=Q Q i I 16s")
SIZEOF_DM_TARGET_SPEC = STRUCT_DM_TARGET_SPEC.size   # 40
assert SIZEOF_DM_TARGET_SPEC == 40
SPEC_OFF_SECTOR_START = 0
SPEC_OFF_LENGTH = 8
SPEC_OFF_STATUS = 16
SPEC_OFF_NEXT = 20
SPEC_OFF_TARGET_TYPE = 24

# -- struct dm_target_deps { __u32 count; __u32 padding; __u64 dev[]; } -------------------
STRUCT_DM_TARGET_DEPS = struct.Struct("=I I")
SIZEOF_DM_TARGET_DEPS = 8

# -- struct dm_name_list { __u64 dev; __u32 next; char name[]; } --------------------------
# sizeof is 16 (tail padding to the u64 alignment) but the kernel sums offsetof(name) = 12.
STRUCT_DM_NAME_LIST = struct.Struct("=Q I")      # name at DM_NAME_LIST_NAME_OFFSET (12)
SIZEOF_DM_NAME_LIST = 16
# After the name's NUL, aligned to 8: __u32 event_nr; __u32 flags; then (DM_UUID_FLAG and
# the device has one) the uuid string, NUL-terminated, the record aligned to 8 again.
# The flags are DM_NAME_LIST_FLAG_*; DM_NAME_LIST_EXT_MINOR and DM_NAME_LIST_UUID_MINOR
# are the interface versions that brought the words and the uuids.
STRUCT_DM_NAME_LIST_EXT = struct.Struct("=I I")

# -- struct dm_target_versions { __u32 next; __u32 version[3]; char name[]; } -------------
STRUCT_DM_TARGET_VERSIONS = struct.Struct("=I 3I")
SIZEOF_DM_TARGET_VERSIONS = 16

# -- struct dm_target_msg { __u64 sector; char message[]; } -----------------------------
STRUCT_DM_TARGET_MSG = struct.Struct("=Q")
SIZEOF_DM_TARGET_MSG = 8

# -- flags (dm_ioctl.flags): strace's names ----------------------------------------------
FLAG_NAMES = (
    (DM_READONLY_FLAG, "DM_READONLY_FLAG"),
    (DM_SUSPEND_FLAG, "DM_SUSPEND_FLAG"),
    (DM_EXISTS_FLAG, "DM_EXISTS_FLAG"),
    (DM_PERSISTENT_DEV_FLAG, "DM_PERSISTENT_DEV_FLAG"),
    (DM_STATUS_TABLE_FLAG, "DM_STATUS_TABLE_FLAG"),
    (DM_ACTIVE_PRESENT_FLAG, "DM_ACTIVE_PRESENT_FLAG"),
    (DM_INACTIVE_PRESENT_FLAG, "DM_INACTIVE_PRESENT_FLAG"),
    (DM_BUFFER_FULL_FLAG, "DM_BUFFER_FULL_FLAG"),
    (DM_SKIP_BDGET_FLAG, "DM_SKIP_BDGET_FLAG"),
    (DM_SKIP_LOCKFS_FLAG, "DM_SKIP_LOCKFS_FLAG"),
    (DM_NOFLUSH_FLAG, "DM_NOFLUSH_FLAG"),
    (DM_QUERY_INACTIVE_TABLE_FLAG, "DM_QUERY_INACTIVE_TABLE_FLAG"),
    (DM_UEVENT_GENERATED_FLAG, "DM_UEVENT_GENERATED_FLAG"),
    (DM_UUID_FLAG, "DM_UUID_FLAG"),
    (DM_SECURE_DATA_FLAG, "DM_SECURE_DATA_FLAG"),
    (DM_DATA_OUT_FLAG, "DM_DATA_OUT_FLAG"),
    (DM_DEFERRED_REMOVE, "DM_DEFERRED_REMOVE"),
    (DM_INTERNAL_SUSPEND_FLAG, "DM_INTERNAL_SUSPEND_FLAG"),
    (DM_IMA_MEASUREMENT_FLAG, "DM_IMA_MEASUREMENT_FLAG"),
)


def flag_names(flags):
    """``0x24`` -> ``"DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG"`` (strace's spelling)."""
    names = [n for bit, n in FLAG_NAMES if flags & bit]
    rest = flags & ~sum(bit for bit, _ in FLAG_NAMES)
    if rest:
        names.append("%#x" % rest)
    return "|".join(names) or "0"


# -- ioctl request numbers: _IOWR(DM_IOCTL, nr, struct dm_ioctl) --------------------------
def request(nr):
    """The ioctl(2) request number of control command ``nr`` (0xC138FD00 | nr)."""
    return _IOWR(DM_IOCTL, nr, SIZEOF_DM_IOCTL)


# dmctl.constants spells the request numbers out; they must be these.
assert all(request(nr) == globals()[name] for nr, name in CMD_NAMES.items()
           if nr != DM_MPATH_PROBE_PATHS_CMD)
assert DM_MPATH_PROBE_PATHS == _IO(DM_IOCTL, DM_MPATH_PROBE_PATHS_CMD)
assert DM_VERSION == 0xC138FD00

# -- request versions as libdevmapper sends them (_cmd_data_v4[].version) -----------------
# The kernel accepts any 4.x with x <= its own minor; libdm sends the minimum each command
# needs, so an old kernel rejects a too-new command with EINVAL, not ENOTTY.
CMD_MIN_VERSION = {
    DM_VERSION_CMD: (4, 0, 0),
    DM_REMOVE_ALL_CMD: (4, 0, 0),
    DM_LIST_DEVICES_CMD: (4, 0, 0),
    DM_DEV_CREATE_CMD: (4, 0, 0),
    DM_DEV_REMOVE_CMD: (4, 0, 0),
    DM_DEV_RENAME_CMD: (4, 0, 0),
    DM_DEV_SUSPEND_CMD: (4, 0, 0),
    DM_DEV_STATUS_CMD: (4, 0, 0),
    DM_DEV_WAIT_CMD: (4, 0, 0),
    DM_TABLE_LOAD_CMD: (4, 0, 0),
    DM_TABLE_CLEAR_CMD: (4, 0, 0),
    DM_TABLE_DEPS_CMD: (4, 0, 0),
    DM_TABLE_STATUS_CMD: (4, 0, 0),
    DM_LIST_VERSIONS_CMD: (4, 1, 0),
    DM_TARGET_MSG_CMD: (4, 2, 0),
    DM_DEV_SET_GEOMETRY_CMD: (4, 6, 0),
    DM_DEV_ARM_POLL_CMD: (4, 36, 0),
    DM_GET_TARGET_VERSION_CMD: (4, 41, 0),
}


# -- device numbers -----------------------------------------------------------------------
def huge_encode_dev(major, minor):
    """Kernel ``huge_encode_dev`` (= ``new_encode_dev``) of (major, minor).

    Equal to glibc's ``makedev`` for major < 4096, which is what libdm puts in ``dev``.
    """
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def huge_decode_dev(dev):
    """Kernel ``huge_decode_dev``: the low 32 bits, ``new_decode_dev`` -> (major, minor)."""
    dev &= 0xFFFFFFFF
    return (dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)


def align8(n):
    return (n + 7) & ~7
