"""The Mapper over the DM ioctl interface (``/dev/mapper/control``), like libdevmapper.

Behaviour copied from libdm (``libdm-iface.c``) as dmsetup 1.02.185 shows it under
strace (``golden/strace-*.stderr.txt``):

* one DM_VERSION (4.0.0) before the first other ioctl of the process (``dm_check_version``);
* every request carries DM_EXISTS_FLAG, ``data_start`` 312, the per-command minimum
  version, and a buffer of at least 16 KiB (``data_size`` = the buffer size);
* a device named by major:minor is sent as ``dev`` with DM_PERSISTENT_DEV_FLAG;
* on DM_BUFFER_FULL_FLAG the buffer doubles and the ioctl is repeated; the doubling
  factor is kept (process-global in libdm: here per mapper) and capped at 16;
* DM_TARGET_MSG returning the positive value 2 (no live table, older mainline kernels;
  Debian 6.1.192 answers EINVAL "The device has no table." instead) is success without
  output, as for libdm (``ioctl() >= 0``).

Only struct/fcntl/os are imported at module import time (CLI start-up is measured).
"""

import errno
import os
import struct

from dmctl.backend import base
from dmctl.errors import DmError
from dmctl.ioctl import abi
from dmctl.ioctl import codec

# libdm's _cmd_data_v4[].name, used in "device-mapper: %s ioctl on ... failed".
OP_NAMES = {
    abi.DM_VERSION_CMD: "version",
    abi.DM_REMOVE_ALL_CMD: "remove_all",
    abi.DM_LIST_DEVICES_CMD: "names",
    abi.DM_DEV_CREATE_CMD: "create",
    abi.DM_DEV_REMOVE_CMD: "remove",
    abi.DM_DEV_RENAME_CMD: "rename",
    abi.DM_DEV_SUSPEND_CMD: "resume",          # "suspend" when DM_SUSPEND_FLAG is sent
    abi.DM_DEV_STATUS_CMD: "info",
    abi.DM_DEV_WAIT_CMD: "waitevent",
    abi.DM_TABLE_LOAD_CMD: "reload",
    abi.DM_TABLE_CLEAR_CMD: "clear",
    abi.DM_TABLE_DEPS_CMD: "deps",
    abi.DM_TABLE_STATUS_CMD: "status",         # "table" with DM_STATUS_TABLE_FLAG
    abi.DM_LIST_VERSIONS_CMD: "versions",
    abi.DM_TARGET_MSG_CMD: "message",
    abi.DM_DEV_SET_GEOMETRY_CMD: "setgeometry",
    abi.DM_DEV_ARM_POLL_CMD: "armpoll",
    abi.DM_GET_TARGET_VERSION_CMD: "target-version",
}

# Commands that may answer DM_BUFFER_FULL_FLAG and are repeated with a bigger buffer.
RETRY_ON_FULL = frozenset((abi.DM_LIST_VERSIONS_CMD, abi.DM_LIST_DEVICES_CMD,
                           abi.DM_TABLE_DEPS_CMD, abi.DM_TABLE_STATUS_CMD,
                           abi.DM_DEV_WAIT_CMD, abi.DM_TARGET_MSG_CMD,
                           abi.DM_GET_TARGET_VERSION_CMD))

# Commands whose failure reason is worth fetching from the kernel log.
MUTATING = frozenset((abi.DM_REMOVE_ALL_CMD, abi.DM_DEV_CREATE_CMD, abi.DM_DEV_REMOVE_CMD,
                      abi.DM_DEV_RENAME_CMD, abi.DM_DEV_SUSPEND_CMD, abi.DM_TABLE_LOAD_CMD,
                      abi.DM_TABLE_CLEAR_CMD, abi.DM_TARGET_MSG_CMD,
                      abi.DM_DEV_SET_GEOMETRY_CMD))

_BLKRASET = 0x1262              # _IO(0x12, 98): set read-ahead (sectors, by value)
_BLKRAGET = 0x1263              # _IO(0x12, 99): get read-ahead (long *)

MAX_DOUBLE_FACTOR = 16          # 16 KiB << 16 = 1 GiB
BUFFER_MAX_TEXT = "Ioctl buffer maximum reached (16KB << %u = %d bytes), giving up."


class KernelMapper(base.Mapper):
    """The kernel's device mapper through ``/dev/mapper/control`` (kind "kernel"): its
    ioctls send uevents, its devices are block device nodes, sysfs names them."""

    kind = "kernel"
    emits_uevents = True
    has_device_nodes = True

    def __init__(self, control=None, kmsg=None):
        """``control``: a ControlDevice (default: open /dev/mapper/control on first use).
        ``kmsg``: an object with mark()/since_mark() (default: a /dev/kmsg reader for the
        real control node; none for other control devices).  ``False`` disables it."""
        self._control = control
        self._kmsg = kmsg
        self._kernel_version = None
        self.double_factor = 0
        self.min_buffer = codec.MIN_BUFFER_SIZE
        self._dm_major = None
        self.read_ahead_error = None

    # -- plumbing --------------------------------------------------------------------
    @property
    def control(self):
        if self._control is None:
            from dmctl.ioctl.control import KernelControl
            try:
                self._control = KernelControl()
            except OSError as e:
                raise DmError(e.errno, op="control",
                              detail="%s: open failed: %s" % (abi.DM_CONTROL_PATH,
                                                              os.strerror(e.errno)))
            if self._kmsg is None:
                self._kmsg = True       # a /dev/kmsg reader, made when first needed (_raw)
        return self._control

    def close(self):
        c, self._control = self._control, None
        if c is not None and hasattr(c, "close"):
            c.close()
        if self._kmsg and hasattr(self._kmsg, "close"):
            self._kmsg.close()

    def _check_version(self):
        """libdm's dm_check_version(): one DM_VERSION before anything else."""
        if self._kernel_version is None:
            self._kernel_version = self._dm_version()
        return self._kernel_version

    def _dm_version(self):
        buf = codec.encode_request(abi.DM_VERSION_CMD,
                                   codec.request_length(min_size=self.min_buffer),
                                   flags=abi.DM_EXISTS_FLAG)
        self._raw(abi.DM_VERSION_CMD, buf, "version", base.DevId())
        return tuple(abi.VERSION3.unpack_from(buf, 0))

    @property
    def kernel_version(self):
        return self._check_version()

    def _raw(self, nr, buf, op, dev, detail_on_error=True):
        control = self.control
        kmsg = self._kmsg if (detail_on_error and nr in MUTATING) else None
        if kmsg is True:                # queries never import the kernel log reader
            from dmctl.backend.kmsg import KmsgReader
            kmsg = self._kmsg = KmsgReader()
        if kmsg:
            kmsg.mark()
        try:
            return control.ioctl(nr, buf)
        except OSError as e:
            detail = None
            if kmsg:
                lines = kmsg.since_mark()
                if lines:
                    detail = "\n".join(lines)
            if detail is None:
                detail = getattr(control, "last_detail", None)
            raise self._error(e.errno, op, dev, detail)

    @staticmethod
    def _error(err, op, dev, detail=None):
        return DmError(err, op=op, name=dev.name, uuid=dev.uuid, major=dev.major,
                       minor=dev.minor, detail=detail)

    def _id_fields(self, dev):
        """(DevId, name, uuid, dev_t, extra flags) the way libdm addresses a device."""
        d = base.DevId.coerce(dev)
        if d.major is not None and not d.name and not d.uuid:
            return d, None, None, abi.huge_encode_dev(d.major, d.minor), \
                abi.DM_PERSISTENT_DEV_FLAG
        return d, d.name, d.uuid, 0, 0

    def _run(self, nr, dev=None, flags=0, event_nr=0, targets=(), newname=None,
             message=None, geometry=None, op=None):
        """Issue one command, growing the buffer on DM_BUFFER_FULL_FLAG.

        Returns ``(buf, ret)``; ``ret`` is the ioctl's return value (0, or 2 for the
        DM_TARGET_MSG quirk, in which case ``buf`` is the untouched request).
        """
        if op is None:
            op = OP_NAMES[nr]
        if dev is None:
            d, name, uuid, devt, extra = base.DevId(), None, None, 0, 0
        else:
            d, name, uuid, devt, extra = self._id_fields(dev)
        self._check_version()
        length = codec.request_length(targets, newname, message, geometry, self.min_buffer)
        while True:
            size = length << self.double_factor
            try:
                buf = codec.encode_request(nr, size, flags=flags | extra | abi.DM_EXISTS_FLAG,
                                           name=name, uuid=uuid, dev=devt,
                                           event_nr=event_nr, targets=targets,
                                           newname=newname, message=message,
                                           geometry=geometry)
            except ValueError as e:
                raise self._error(errno.EINVAL, op, d, str(e))
            ret = self._raw(nr, buf, op, d)
            if ret == 0 and nr in RETRY_ON_FULL and \
                    abi.U32.unpack_from(buf, abi.OFF_FLAGS)[0] & abi.DM_BUFFER_FULL_FLAG:
                if self.double_factor >= MAX_DOUBLE_FACTOR:
                    raise self._error(errno.ENOBUFS, op, d, BUFFER_MAX_TEXT % (
                        self.double_factor, codec.MIN_BUFFER_SIZE << self.double_factor))
                self.double_factor += 1
                continue
            return buf, ret

    def _info(self, buf):
        return codec.decode_info(buf)

    # -- driver ----------------------------------------------------------------------
    def version(self):
        # The first DM_VERSION of a mapper is libdm's version check and answers this too;
        # later calls issue their own (dmsetup version: check + command = two ioctls).
        if self._kernel_version is None:
            return self._check_version()
        return self._dm_version()

    def list_devices(self, uuid=False):
        buf, _ = self._run(abi.DM_LIST_DEVICES_CMD, flags=abi.DM_UUID_FLAG if uuid else 0)
        kv = self._kernel_version
        has_ext = None if kv is None else kv[1] >= abi.DM_NAME_LIST_EXT_MINOR
        return codec.decode_name_list(buf, uuid=uuid, has_ext=has_ext)

    def target_versions(self):
        buf, _ = self._run(abi.DM_LIST_VERSIONS_CMD)
        return codec.decode_versions(buf)

    def target_version(self, name):
        buf, _ = self._run(abi.DM_GET_TARGET_VERSION_CMD, dev=base.DevId(name=name))
        vs = codec.decode_versions(buf)
        if not vs:
            raise self._error(errno.EINVAL, "target-version", base.DevId(name=name))
        return vs[0]

    def remove_all(self, deferred=False):
        self._run(abi.DM_REMOVE_ALL_CMD, flags=abi.DM_DEFERRED_REMOVE if deferred else 0)

    # -- device lifecycle ------------------------------------------------------------
    def create(self, name, uuid=None, minor=None, readonly=False):
        # libdm's DM_DEVICE_CREATE task does not carry read_only (that goes on the
        # load and the resume); a persistent minor goes in ``dev``.
        flags = 0
        devt = 0
        if minor is not None:
            flags |= abi.DM_PERSISTENT_DEV_FLAG
            devt = abi.huge_encode_dev(self.dm_major, minor)
        d = base.DevId(name=name, uuid=uuid or None)
        self._check_version()
        try:
            buf = codec.encode_request(abi.DM_DEV_CREATE_CMD, self.min_buffer,
                                       flags=flags | abi.DM_EXISTS_FLAG, name=name,
                                       uuid=uuid, dev=devt)
        except ValueError as e:
            raise self._error(errno.EINVAL, "create", d, str(e))
        self._raw(abi.DM_DEV_CREATE_CMD, buf, "create", d)
        return self._info(buf)

    @property
    def dm_major(self):
        """The "device-mapper" block major (libdm's ``_dm_device_major``), as the control
        device knows it: ``/proc/devices`` for the real node (0 when it lists none; the
        kernel uses only the minor of a persistent dev, libdm sends makedev(major,
        minor)).  Read once."""
        if self._dm_major is None:
            self._dm_major = self.control.dm_major()
        return self._dm_major

    @dm_major.setter
    def dm_major(self, value):
        self._dm_major = value

    def load(self, dev, lines, readonly=False):
        buf, _ = self._run(abi.DM_TABLE_LOAD_CMD, dev,
                           flags=abi.DM_READONLY_FLAG if readonly else 0,
                           targets=list(lines))
        return self._info(buf)

    @staticmethod
    def _suspend_flags(noflush, nolockfs):
        return (abi.DM_NOFLUSH_FLAG if noflush else 0) | \
            (abi.DM_SKIP_LOCKFS_FLAG if nolockfs else 0)

    def resume(self, dev, noflush=False, nolockfs=False, cookie=0, readonly=False):
        # ``readonly``: dmsetup -r also puts DM_READONLY_FLAG on the resume (the kernel
        # ignores it there); an optional extra of this backend.
        buf, _ = self._run(abi.DM_DEV_SUSPEND_CMD, dev,
                           flags=self._suspend_flags(noflush, nolockfs)
                           | (abi.DM_READONLY_FLAG if readonly else 0),
                           event_nr=cookie, op="resume")
        return self._info(buf)

    def suspend(self, dev, noflush=False, nolockfs=False):
        buf, _ = self._run(abi.DM_DEV_SUSPEND_CMD, dev,
                           flags=abi.DM_SUSPEND_FLAG | self._suspend_flags(noflush, nolockfs),
                           op="suspend")
        return self._info(buf)

    def clear(self, dev):
        buf, _ = self._run(abi.DM_TABLE_CLEAR_CMD, dev)
        return self._info(buf)

    def remove(self, dev, deferred=False, cookie=0):
        buf, _ = self._run(abi.DM_DEV_REMOVE_CMD, dev,
                           flags=abi.DM_DEFERRED_REMOVE if deferred else 0, event_nr=cookie)
        return self._info(buf)

    def rename(self, dev, new, set_uuid=False, cookie=0):
        buf, _ = self._run(abi.DM_DEV_RENAME_CMD, dev,
                           flags=abi.DM_UUID_FLAG if set_uuid else 0, event_nr=cookie,
                           newname=new)
        return self._info(buf)

    def set_geometry(self, dev, cylinders, heads, sectors, start):
        self._run(abi.DM_DEV_SET_GEOMETRY_CMD, dev,
                  geometry="%s %s %s %s" % (cylinders, heads, sectors, start))

    # -- queries ---------------------------------------------------------------------
    @staticmethod
    def _query_flags(inactive, noflush=False):
        return (abi.DM_QUERY_INACTIVE_TABLE_FLAG if inactive else 0) | \
            (abi.DM_NOFLUSH_FLAG if noflush else 0)

    def info(self, dev, inactive=False):
        buf, _ = self._run(abi.DM_DEV_STATUS_CMD, dev, flags=self._query_flags(inactive))
        return self._info(buf)

    def _table_status(self, dev, flags, op):
        buf, _ = self._run(abi.DM_TABLE_STATUS_CMD, dev, flags=flags, op=op)
        return self._info(buf), codec.decode_target_specs(buf)

    def table(self, dev, inactive=False):
        return self._table_status(dev, abi.DM_STATUS_TABLE_FLAG | self._query_flags(inactive),
                                  "table")

    def status(self, dev, inactive=False, noflush=False):
        return self._table_status(dev, self._query_flags(inactive, noflush), "status")

    def measure(self, dev, inactive=False):
        return self._table_status(dev, abi.DM_IMA_MEASUREMENT_FLAG
                                  | self._query_flags(inactive), "status")

    def deps(self, dev, inactive=False):
        buf, _ = self._run(abi.DM_TABLE_DEPS_CMD, dev, flags=self._query_flags(inactive))
        return self._info(buf), codec.decode_deps(buf)

    def message(self, dev, sector, message):
        buf, ret = self._run(abi.DM_TARGET_MSG_CMD, dev, message=(sector, message))
        if ret != 0:
            # dm-ioctl.c quirk: no live table -> the handler's 2 is returned as is and
            # nothing is copied back; libdm (ioctl() >= 0) takes it as success.
            return None
        return codec.decode_message(buf)

    # -- read-ahead (libdm-common.c get/set_dev_node_read_ahead) ---------------------
    sysfs_dir = "/sys/"

    def _read_ahead_path(self, info):
        return self._sysfs_block(info.major, info.minor) + "/bdi/read_ahead_kb"

    @staticmethod
    def _node_path(info):
        d = os.environ.get("DM_DEV_DIR") or "/dev"
        return "%s/%s/%s" % (d.rstrip("/"), abi.DM_DIR, info.name)

    # -- device names (libdm's dm_device_get_name: sysfs) -----------------------------
    def _sysfs_block(self, major, minor):
        return "%sdev/block/%d:%d" % (self.sysfs_dir, major, minor)

    def blkdev_name(self, major, minor):
        """The kernel's name: the basename of /sys/dev/block/MAJ:MIN's target."""
        base_ = self._sysfs_block(major, minor)
        try:
            return os.path.basename(os.path.realpath(base_)) if os.path.exists(base_) else None
        except OSError:
            return None

    def dm_name(self, major, minor):
        """/sys/dev/block/MAJ:MIN/dm/name, None when it is no mapped device."""
        try:
            with open(self._sysfs_block(major, minor) + "/dm/name") as f:
                return f.read().rstrip("\n")
        except OSError:
            return None

    def read_ahead(self, info):
        """dm_task_get_read_ahead: sysfs ``bdi/read_ahead_kb`` * 2, else BLKRAGET on
        ``$DM_DEV_DIR/mapper/NAME``.  None when neither works; what libdm would log then
        (``/dev/mapper/empty1: open failed: No such file or directory`` for a device that
        never had a table, which has no bdi yet) is left in ``read_ahead_error``."""
        self.read_ahead_error = None
        if info.major:
            try:
                with open(self._read_ahead_path(info), "rb") as f:
                    data = f.read(23)
                try:
                    return int(data.split()[0]) * 2 if data.split() else 0
                except ValueError:
                    return 0
            except OSError:
                pass
        if not info.name:
            self.read_ahead_error = "Empty device name passed to BLKRAGET"
            return None
        buf = bytearray(8)
        if not self._node_ioctl(info, _BLKRAGET, "BLKRAGET", buf):
            return None
        return struct.unpack("=q", buf)[0] & 0xFFFFFFFF

    def _node_ioctl(self, info, req, what, arg):
        """ioctl(req, arg) on ``$DM_DEV_DIR/mapper/NAME``; False (and the reason in
        ``read_ahead_error``, as libdm logs it) when the node cannot be used."""
        path = self._node_path(info)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            self.read_ahead_error = "%s: open failed: %s" % (path, os.strerror(e.errno))
            return False
        try:
            import fcntl
            if isinstance(arg, bytearray):
                fcntl.ioctl(fd, req, arg, True)
            else:
                fcntl.ioctl(fd, req, arg)
            return True
        except OSError as e:
            self.read_ahead_error = "%s: %s failed: %s" % (path, what, os.strerror(e.errno))
            return False
        finally:
            os.close(fd)

    def set_read_ahead(self, info, sectors, minimum=False):
        """_set_dev_node_read_ahead: with ``minimum`` only raise it; sysfs gets
        ``(sectors + 1) / 2`` kB, else BLKRASET on the node."""
        self.read_ahead_error = None
        if minimum:
            cur = self.read_ahead(info)
            if cur is None:
                return None
            if cur >= sectors:
                return None
        if info.major:
            try:
                with open(self._read_ahead_path(info), "w") as f:
                    f.write("%d" % ((sectors + 1) // 2))
                return None
            except OSError:
                pass
        self._node_ioctl(info, _BLKRASET, "BLKRASET", sectors)
        return None

    def arm_poll(self):
        """DM_DEV_ARM_POLL (interface 4.36+)."""
        self._run(abi.DM_DEV_ARM_POLL_CMD)

    def wait_event(self, dev, event_nr=0, inactive=False, noflush=False, timeout=None):
        flags = self._query_flags(inactive, noflush)
        if timeout is not None and hasattr(self.control, "poll"):
            self._wait_with_timeout(dev, event_nr, inactive, timeout)
        buf, _ = self._run(abi.DM_DEV_WAIT_CMD, dev, flags=flags, event_nr=event_nr)
        return self._info(buf), codec.decode_target_specs(buf)

    def _wait_with_timeout(self, dev, event_nr, inactive, timeout):
        """Return once the device's event counter differs from ``event_nr`` (so that the
        DEV_WAIT that follows does not block), or raise ETIME.  Uses DM_DEV_ARM_POLL and
        poll() on the control fd: every dm table event also raises the global event."""
        import time
        deadline = time.monotonic() + timeout
        armed = True
        while True:
            if armed:
                try:
                    self.arm_poll()
                except DmError as e:
                    if e.errno not in (errno.ENOTTY, errno.EINVAL):
                        raise
                    armed = False          # old kernel: plain blocking DEV_WAIT
                    return
            info = self.info(dev, inactive)
            if (info.event_nr & 0xFFFFFFFF) != (event_nr & 0xFFFFFFFF):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                d = base.DevId.coerce(dev)
                raise self._error(errno.ETIME, "waitevent", d)
            self.control.poll(remaining)
