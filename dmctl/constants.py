"""The device-mapper ABI's constants, each defined once.

Every ``DM_*`` value dmctl uses is assigned here and nowhere else (checked by
tests/unit/test_architecture.py), grouped by the header or source file it comes from:

* <linux/dm-ioctl.h>: the control node, name/uuid lengths, the interface version, the
  command and ioctl request numbers, ``struct dm_ioctl`` flags;
* <linux/kdev_t.h> and the dm major;
* libdevmapper (libdevmapper.h, libdm-common.c, libdm-iface.c): udev cookie flags and
  magic, the ioctl retry rule;
* <linux/dm-log-userspace.h> and <linux/connector.h>: the userspace dirty log's requests;
* the kernel's own headers and targets (device-mapper.h, dm-raid1.c, dm-region-hash.h,
  dm-kcopyd.h, dm-stripe.c, dm-era-target.c, dm-space-map-metadata.h), for the simulator.

Modules that used to define these re-export them (``from dmctl.constants import ...``)
so that ``module.DM_X`` keeps working.  Struct layouts (``struct.Struct``) are in
``dmctl.ioctl.abi``.

Plain assignments and no imports: every layer (the CLI's start-up path included) may
import this module for free.
"""

# ======================================================================================
# <linux/dm-ioctl.h>, interface version 4
# ======================================================================================

DM_DIR = "mapper"                          # under /dev
DM_CONTROL_NODE = "control"
DM_CONTROL_PATH = "/dev/mapper/control"
DM_MAX_TYPE_NAME = 16
DM_NAME_LEN = 128                          # including the NUL
DM_UUID_LEN = 129                          # including the NUL

DM_IOCTL = 0xFD                            # the ioctl "type" byte

DM_VERSION_MAJOR = 4
DM_VERSION_MINOR = 50                      # newest interface known (2025-04-28)
DM_VERSION_PATCHLEVEL = 0
DM_VERSION_EXTRA = "-ioctl (2025-04-28)"

# -- command numbers (the enum) ----------------------------------------------------------
DM_VERSION_CMD = 0
DM_REMOVE_ALL_CMD = 1
DM_LIST_DEVICES_CMD = 2
DM_DEV_CREATE_CMD = 3
DM_DEV_REMOVE_CMD = 4
DM_DEV_RENAME_CMD = 5
DM_DEV_SUSPEND_CMD = 6
DM_DEV_STATUS_CMD = 7
DM_DEV_WAIT_CMD = 8
DM_TABLE_LOAD_CMD = 9
DM_TABLE_CLEAR_CMD = 10
DM_TABLE_DEPS_CMD = 11
DM_TABLE_STATUS_CMD = 12
DM_LIST_VERSIONS_CMD = 13
DM_TARGET_MSG_CMD = 14
DM_DEV_SET_GEOMETRY_CMD = 15
DM_DEV_ARM_POLL_CMD = 16
DM_GET_TARGET_VERSION_CMD = 17
# 4.50+: a *block-device* ioctl on multipath devices (_IO, no argument struct).  On the
# control node its table entry has no handler, so the kernel answers -ENOTTY.
DM_MPATH_PROBE_PATHS_CMD = 18

# -- ioctl(2) request numbers: _IOWR(DM_IOCTL, nr, struct dm_ioctl) ----------------------
# (_IOC_READ|_IOC_WRITE) << 30 | sizeof(struct dm_ioctl) (312) << 16 | DM_IOCTL << 8 | nr;
# dmctl.ioctl.abi checks these against its _IOWR() and struct layout.
_DM_IOWR = (3 << 30) | (312 << 16) | (DM_IOCTL << 8)      # 0xC138FD00
DM_VERSION = _DM_IOWR | DM_VERSION_CMD
DM_REMOVE_ALL = _DM_IOWR | DM_REMOVE_ALL_CMD
DM_LIST_DEVICES = _DM_IOWR | DM_LIST_DEVICES_CMD
DM_DEV_CREATE = _DM_IOWR | DM_DEV_CREATE_CMD
DM_DEV_REMOVE = _DM_IOWR | DM_DEV_REMOVE_CMD
DM_DEV_RENAME = _DM_IOWR | DM_DEV_RENAME_CMD
DM_DEV_SUSPEND = _DM_IOWR | DM_DEV_SUSPEND_CMD
DM_DEV_STATUS = _DM_IOWR | DM_DEV_STATUS_CMD
DM_DEV_WAIT = _DM_IOWR | DM_DEV_WAIT_CMD
DM_TABLE_LOAD = _DM_IOWR | DM_TABLE_LOAD_CMD
DM_TABLE_CLEAR = _DM_IOWR | DM_TABLE_CLEAR_CMD
DM_TABLE_DEPS = _DM_IOWR | DM_TABLE_DEPS_CMD
DM_TABLE_STATUS = _DM_IOWR | DM_TABLE_STATUS_CMD
DM_LIST_VERSIONS = _DM_IOWR | DM_LIST_VERSIONS_CMD
DM_TARGET_MSG = _DM_IOWR | DM_TARGET_MSG_CMD
DM_DEV_SET_GEOMETRY = _DM_IOWR | DM_DEV_SET_GEOMETRY_CMD
DM_DEV_ARM_POLL = _DM_IOWR | DM_DEV_ARM_POLL_CMD
DM_GET_TARGET_VERSION = _DM_IOWR | DM_GET_TARGET_VERSION_CMD
DM_MPATH_PROBE_PATHS = (DM_IOCTL << 8) | DM_MPATH_PROBE_PATHS_CMD    # _IO: 0x0000fd12

# -- struct dm_ioctl flags ----------------------------------------------------------------
DM_READONLY_FLAG = 1 << 0
DM_SUSPEND_FLAG = 1 << 1
DM_EXISTS_FLAG = 1 << 2          # libdevmapper-internal, set on every request it sends
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

# validate_params() (dm-ioctl.c) clears these on every request before the handler runs.
DM_OUTPUT_ONLY_FLAGS = (DM_BUFFER_FULL_FLAG | DM_UEVENT_GENERATED_FLAG
                        | DM_SECURE_DATA_FLAG | DM_DATA_OUT_FLAG)

# -- payload geometry ----------------------------------------------------------------------
# offsetof(struct dm_ioctl, data): the kernel's "minimum data size"; NO_PARAMS commands
# and replies without payload report data_size == 305.
DM_MIN_DATA_SIZE = 305
# Where the kernel puts every output payload: align8(sizeof(struct dm_ioctl)).
DM_DATA_START = 312

# struct dm_name_list { __u64 dev; __u32 next; char name[]; }: sizeof is 16 (tail padding)
# but the kernel sums offsetof(name) = 12.
DM_NAME_LIST_NAME_OFFSET = 12
# The flags word after the name (4.37+).
DM_NAME_LIST_FLAG_HAS_UUID = 1
DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID = 2
DM_NAME_LIST_FLAG_DOES_NOT_HAVE_UUID = 2   # lvm2's spelling, same value
# First interface version whose name list carries the event_nr/flags words (4.36 had
# them at a misaligned offset, fixed in 4.37); uuids (DM_UUID_FLAG) came with 4.45.
DM_NAME_LIST_EXT_MINOR = 37
DM_NAME_LIST_UUID_MINOR = 45

# ======================================================================================
# device numbers: <linux/kdev_t.h>, the dm major
# ======================================================================================

MINORBITS = 20
# The major the kernel usually hands device-mapper (dynamic: the first free one from 254
# down); the simulator's.  The kernel backend reads the real one from /proc/devices.
DM_MAJOR = 254
# <linux/major.h>: loop devices' fixed major (the simulator's backing files are 7:N)
LOOP_MAJOR = 7

# ======================================================================================
# libdevmapper (libdevmapper.h, libdm-common.c, libdm-iface.c 1.02.185)
# ======================================================================================

# A cookie's semaphore has the IPC key DM_COOKIE_MAGIC << 16 | base (libdm-common.c).
DM_COOKIE_MAGIC = 0x0D4D
DM_UDEV_FLAGS_SHIFT = 16
DM_UDEV_FLAGS_MASK = 0xFFFF0000

# udev flags, the upper 16 bits of a cookie (libdevmapper.h)
DM_UDEV_DISABLE_DM_RULES_FLAG = 0x0001
DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG = 0x0002
DM_UDEV_DISABLE_DISK_RULES_FLAG = 0x0004
DM_UDEV_DISABLE_OTHER_RULES_FLAG = 0x0008
DM_UDEV_LOW_PRIORITY_FLAG = 0x0010
DM_UDEV_DISABLE_LIBRARY_FALLBACK = 0x0020
DM_UDEV_PRIMARY_SOURCE_FLAG = 0x0040
DM_SUBSYSTEM_UDEV_FLAG0 = 0x0100
DM_SUBSYSTEM_UDEV_FLAG1 = 0x0200
DM_SUBSYSTEM_UDEV_FLAG2 = 0x0400
DM_SUBSYSTEM_UDEV_FLAG3 = 0x0800
DM_SUBSYSTEM_UDEV_FLAG4 = 0x1000
DM_SUBSYSTEM_UDEV_FLAG5 = 0x2000
DM_SUBSYSTEM_UDEV_FLAG6 = 0x4000
DM_SUBSYSTEM_UDEV_FLAG7 = 0x8000

# libdm-iface.c: an EBUSY remove is retried this many times, this far apart
# (DM_RETRY_USLEEP_DELAY 200000 us).
DM_IOCTL_RETRIES = 25
DM_RETRY_DELAY = 0.2                       # seconds

# ======================================================================================
# <linux/dm-log-userspace.h>, <linux/connector.h>: the userspace dirty log's protocol
# ======================================================================================

DM_ULOG_REQUEST_VERSION = 3
DM_ULOG_REQUEST_MASK = 0xFF                # DM_ULOG_REQUEST_TYPE(request_type)

# request types
DM_ULOG_CTR = 1
DM_ULOG_DTR = 2
DM_ULOG_PRESUSPEND = 3
DM_ULOG_POSTSUSPEND = 4
DM_ULOG_RESUME = 5
DM_ULOG_GET_REGION_SIZE = 6
DM_ULOG_IS_CLEAN = 7
DM_ULOG_IN_SYNC = 8
DM_ULOG_FLUSH = 9
DM_ULOG_MARK_REGION = 10
DM_ULOG_CLEAR_REGION = 11
DM_ULOG_GET_RESYNC_WORK = 12
DM_ULOG_SET_REGION_SYNC = 13
DM_ULOG_GET_SYNC_COUNT = 14
DM_ULOG_STATUS_INFO = 15
DM_ULOG_STATUS_TABLE = 16
DM_ULOG_IS_REMOTE_RECOVERING = 17

# dm-log-userspace-transfer.c: the one preallocated message buffer (cn_msg + request +
# payload) of the kernel side.
DM_ULOG_PREALLOCED_SIZE = 512
# lvm2 daemons/cmirrord/cluster.h: the bit cmirrord sets in a reply's request_type.
DM_ULOG_RESPONSE = 0x1000

# <linux/connector.h>: the connector channel of the userspace log
CN_IDX_DM = 0x7
CN_VAL_DM_USERSPACE_LOG = 0x1

# ======================================================================================
# The kernel's internal headers and targets (for the simulator)
# ======================================================================================

# include/linux/device-mapper.h: map() results
DM_MAPIO_SUBMITTED = 0
DM_MAPIO_REMAPPED = 1
DM_MAPIO_REQUEUE = 0x200
DM_MAPIO_DELAY_REQUEUE = 0x201
DM_MAPIO_KILL = 4
# ... and end_io() results
DM_ENDIO_DONE = 0
DM_ENDIO_INCOMPLETE = 1
DM_ENDIO_REQUEUE = 2

# include/linux/dm-kcopyd.h
DM_KCOPYD_MAX_REGIONS = 8

# drivers/md/dm-raid1.c: features, and enum dm_raid1_error (bit numbers in error_type)
DM_RAID1_HANDLE_ERRORS = 0x01
DM_RAID1_KEEP_LOG = 0x02
DM_RAID1_WRITE_ERROR = 0
DM_RAID1_FLUSH_ERROR = 1
DM_RAID1_SYNC_ERROR = 2
DM_RAID1_READ_ERROR = 3

# include/linux/dm-region-hash.h: region states
DM_RH_CLEAN = 0x01
DM_RH_DIRTY = 0x02
DM_RH_NOSYNC = 0x04
DM_RH_RECOVERING = 0x08

# drivers/md/dm-stripe.c: a leg's I/O errors before the target raises an event
DM_IO_ERROR_THRESHOLD = 15

# drivers/md/dm-era-target.c
DM_ERA_METADATA_BLOCK_SIZE = 4096

# drivers/md/persistent-data/dm-space-map-metadata.h: 255 bitmap blocks of
# (4096 - 16) * 4 entries each
DM_SM_METADATA_MAX_BLOCKS = 255 * ((1 << 14) - 64)
