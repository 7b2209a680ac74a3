"""A fake ``/dev/mapper/control``: DM ioctl bytes in, DM ioctl bytes out, over any Mapper.

``SimControl(mapper)`` takes the request buffer apart with the kernel half of
``dmctl.ioctl.codec``, drives ``mapper`` (the simulator's SimMapper, or any other
``dmctl.backend.base.Mapper``), and writes the reply into the caller's buffer the way
``drivers/md/dm-ioctl.c`` does: version write-back (also on error), ENOTTY for unknown
commands, EINVAL for a bad ``data_size`` or name+uuid, ENXIO for lookups, only
``data_size`` bytes copied back and nothing at all on error, DM_BUFFER_FULL_FLAG when the
caller's buffer is too small, NO_PARAMS commands without payload.  DM_TARGET_MSG to a
device without a live table fails with EINVAL ("The device has no table.") as Debian's
6.1.192 does (checked in the VM); ``message_no_table_returns_2=True`` gives the older
mainline behaviour instead, where the handler's positive 2 is returned and nothing is
copied back.

So ``KernelMapper(control=SimControl(sim))`` runs the whole ioctl path without root.
It is a ControlDevice (``dmctl.ioctl.control``) like the real node, and stays in the ioctl
layer: it imports nothing above it, the mapper is handed in.
"""

import errno
import os

from dmctl.records import DevId
from dmctl.errors import DmError
from dmctl.ioctl import abi
from dmctl.ioctl import codec
from dmctl.ioctl.codec import KernelError, to_bytes, to_str
from dmctl.ioctl.control import ControlDevice


def _log(text):
    return "device-mapper: ioctl: " + text


class SimControl(ControlDevice):
    def __init__(self, mapper, poll_interval=0.01, message_no_table_returns_2=False):
        self.mapper = mapper
        self.poll_interval = poll_interval
        self.message_no_table_returns_2 = message_no_table_returns_2
        self.last_detail = None
        self.calls = []                 # (cmd_nr, request data_size) per ioctl, for tests
        self._kernel_version = None
        self._handlers = {
            abi.DM_REMOVE_ALL_CMD: self._remove_all,
            abi.DM_LIST_DEVICES_CMD: self._list_devices,
            abi.DM_DEV_CREATE_CMD: self._dev_create,
            abi.DM_DEV_REMOVE_CMD: self._dev_remove,
            abi.DM_DEV_RENAME_CMD: self._dev_rename,
            abi.DM_DEV_SUSPEND_CMD: self._dev_suspend,
            abi.DM_DEV_STATUS_CMD: self._dev_status,
            abi.DM_DEV_WAIT_CMD: self._dev_wait,
            abi.DM_TABLE_LOAD_CMD: self._table_load,
            abi.DM_TABLE_CLEAR_CMD: self._table_clear,
            abi.DM_TABLE_DEPS_CMD: self._table_deps,
            abi.DM_TABLE_STATUS_CMD: self._table_status,
            abi.DM_LIST_VERSIONS_CMD: self._list_versions,
            abi.DM_TARGET_MSG_CMD: self._target_message,
            abi.DM_DEV_SET_GEOMETRY_CMD: self._dev_set_geometry,
            abi.DM_DEV_ARM_POLL_CMD: self._dev_arm_poll,
            abi.DM_GET_TARGET_VERSION_CMD: self._get_target_version,
        }

    # -- the ControlDevice interface ---------------------------------------------------
    def ioctl(self, cmd_nr, buf):
        self.last_detail = None
        try:
            size = abi.U32.unpack_from(buf, abi.OFF_DATA_SIZE)[0]
        except Exception:
            size = None
        self.calls.append((cmd_nr, size))
        try:
            return self._ctl_ioctl(cmd_nr, buf)
        except KernelError as e:
            self.last_detail = e.log
            raise OSError(e.errno, os.strerror(e.errno)) from None
        except DmError as e:
            self.last_detail = e.detail
            raise OSError(e.errno, os.strerror(e.errno)) from None

    def poll(self, timeout):
        import time
        if timeout is None or timeout > self.poll_interval:
            timeout = self.poll_interval
        time.sleep(max(0.0, timeout))
        return False

    def close(self):
        pass

    def dm_major(self):
        """The mapper's own dm major (there is no /proc/devices entry behind a fake)."""
        return self.mapper.dm_major

    @property
    def kernel_version(self):
        if self._kernel_version is None:
            self._kernel_version = tuple(self.mapper.version())
        return self._kernel_version

    # -- ctl_ioctl -----------------------------------------------------------------------
    def _ctl_ioctl(self, nr, buf):
        if not 0 <= nr <= 0xFF:
            raise KernelError(errno.ENOTTY)
        if len(buf) < abi.VERSION3.size:
            raise KernelError(errno.EFAULT)
        codec.kernel_check_version(buf, self.kernel_version)
        if nr == abi.DM_VERSION_CMD:
            return 0
        handler = self._handlers.get(nr)
        if handler is None:
            raise KernelError(errno.ENOTTY, _log(
                "dm_ctl_ioctl: unknown command 0x%x" % abi.request(nr)))
        p, _input_size = codec.kernel_copy_in(buf, nr)
        r = handler(p)
        if r == 0:
            codec.kernel_copy_out(buf, p)
        return r

    # -- helpers -------------------------------------------------------------------------
    def _find(self, p):
        """__find_device_hash_cell(): the DevId to ask the mapper about, or ENXIO."""
        key, log = codec.kernel_lookup_key(p)
        if key is None:
            raise KernelError(errno.ENXIO, log)
        kind, val = key
        if kind == "uuid":
            return DevId(uuid=to_str(val))
        if kind == "name":
            return DevId(name=to_str(val))
        return DevId(major=val[0], minor=val[1])

    @staticmethod
    def _inactive(p):
        return bool(p.flags & abi.DM_QUERY_INACTIVE_TABLE_FLAG)

    @staticmethod
    def _status_reply(p, info, uevent=False):
        codec.kernel_found(p, info)
        codec.kernel_dev_status(p, info)
        if uevent and info.flags & abi.DM_UEVENT_GENERATED_FLAG:
            p.set_flag(abi.DM_UEVENT_GENERATED_FLAG)

    def _has_table(self, p, info):
        if self._inactive(p):
            return bool(info.flags & abi.DM_INACTIVE_PRESENT_FLAG)
        return bool(info.flags & abi.DM_ACTIVE_PRESENT_FLAG)

    # -- handlers (dm-ioctl.c names) -------------------------------------------------------
    def _remove_all(self, p):
        self.mapper.remove_all(deferred=bool(p.flags & abi.DM_DEFERRED_REMOVE))
        p.data_size = 0
        return 0

    def _list_devices(self, p):
        uuid_flag = bool(p.flags & abi.DM_UUID_FLAG)
        entries = self.mapper.list_devices(uuid=True)
        pfx_name = codec.cstring(p.buf, abi.OFF_NAME, abi.OFF_NAME + abi.DM_NAME_LEN)
        pfx_uuid = codec.cstring(p.buf, abi.OFF_UUID, abi.OFF_UUID + abi.DM_UUID_LEN)
        keep = []
        for e in sorted(entries, key=lambda e: to_bytes(e.name)):
            if not to_bytes(e.name).startswith(pfx_name):
                continue
            if not to_bytes(e.uuid or "").startswith(pfx_uuid):
                continue
            keep.append(e)
        codec.kernel_write_name_list(p, keep, uuid_flag)
        return 0

    def _dev_create(self, p):
        minor = None
        if p.flags & abi.DM_PERSISTENT_DEV_FLAG:
            minor = abi.huge_decode_dev(p.dev)[1]
        uuid = p.uuid
        info = self.mapper.create(to_str(p.name), to_str(uuid) if uuid else None, minor)
        p.set_flag(abi.DM_INACTIVE_PRESENT_FLAG, False)
        codec.kernel_dev_status(p, info)
        return 0

    def _dev_remove(self, p):
        dev = self._find(p)
        deferred = bool(p.flags & abi.DM_DEFERRED_REMOVE)
        info = self.mapper.remove(dev, deferred=deferred, cookie=p.event_nr)
        codec.kernel_found(p, info)
        if deferred and info.open_count > 0:
            return 0                      # marked for deferred removal, header untouched
        p.set_flag(abi.DM_DEFERRED_REMOVE, False)
        if info.flags & abi.DM_UEVENT_GENERATED_FLAG:
            p.set_flag(abi.DM_UEVENT_GENERATED_FLAG)
        return 0

    def _dev_rename(self, p):
        change_uuid = bool(p.flags & abi.DM_UUID_FLAG)
        new = codec.kernel_string_param(p, "rename")
        limit = abi.DM_UUID_LEN - 1 if change_uuid else abi.DM_NAME_LEN - 1
        if new is None or not new or len(new) > limit:
            raise KernelError(errno.EINVAL, _log(
                "Invalid new mapped device name or uuid string supplied."))
        if not p.name:
            # dm_hash_rename: "is new free?" first, then the old device by param->name
            # only (a uuid or dev in the request is not used)
            new_s = to_str(new)
            for e in self.mapper.list_devices(uuid=True):
                if (e.uuid if change_uuid else e.name) == new_s:
                    raise KernelError(errno.EBUSY, _log(
                        "Unable to change %s on mapped device %s to one that already "
                        "exists: %s" % ("uuid" if change_uuid else "name", "", new_s)))
            raise KernelError(errno.ENXIO, _log(
                "Unable to rename non-existent device, %s to %s%s"
                % ("", "uuid " if change_uuid else "", to_str(new))))
        info = self.mapper.rename(DevId(name=to_str(p.name)), to_str(new),
                                  set_uuid=change_uuid, cookie=p.event_nr)
        # __dev_status only: param->name/uuid keep what the caller sent
        codec.kernel_dev_status(p, info)
        if info.flags & abi.DM_UEVENT_GENERATED_FLAG:
            p.set_flag(abi.DM_UEVENT_GENERATED_FLAG)
        return 0

    def _dev_suspend(self, p):
        dev = self._find(p)
        noflush = bool(p.flags & abi.DM_NOFLUSH_FLAG)
        nolockfs = bool(p.flags & abi.DM_SKIP_LOCKFS_FLAG)
        if p.flags & abi.DM_SUSPEND_FLAG:
            info = self.mapper.suspend(dev, noflush=noflush, nolockfs=nolockfs)
            self._status_reply(p, info)
        else:
            info = self.mapper.resume(dev, noflush=noflush, nolockfs=nolockfs,
                                      cookie=p.event_nr)
            self._status_reply(p, info, uevent=True)
        return 0

    def _dev_status(self, p):
        dev = self._find(p)
        info = self.mapper.info(dev, inactive=self._inactive(p))
        self._status_reply(p, info)
        return 0

    def _table_status(self, p):
        dev = self._find(p)
        inactive = self._inactive(p)
        if p.flags & abi.DM_STATUS_TABLE_FLAG:
            info, lines = self.mapper.table(dev, inactive=inactive)
        elif p.flags & abi.DM_IMA_MEASUREMENT_FLAG:
            info, lines = self.mapper.measure(dev, inactive=inactive)
        else:
            info, lines = self.mapper.status(dev, inactive=inactive,
                                             noflush=bool(p.flags & abi.DM_NOFLUSH_FLAG))
        self._status_reply(p, info)
        if self._has_table(p, info):
            codec.kernel_write_status(p, lines)
        return 0

    def _dev_wait(self, p):
        dev = self._find(p)
        inactive = self._inactive(p)
        info, lines = self.mapper.wait_event(dev, event_nr=p.event_nr, inactive=inactive,
                                             noflush=bool(p.flags & abi.DM_NOFLUSH_FLAG))
        self._status_reply(p, info)
        if self._has_table(p, info):
            codec.kernel_write_status(p, lines)
        return 0

    def _table_load(self, p):
        dev = self._find(p)
        self.mapper.info(dev)                       # find_device() comes first: ENXIO
        lines = codec.kernel_parse_load(p)
        info = self.mapper.load(dev, lines, readonly=bool(p.flags & abi.DM_READONLY_FLAG))
        codec.kernel_found(p, info)
        p.set_flag(abi.DM_INACTIVE_PRESENT_FLAG)
        codec.kernel_dev_status(p, info)
        return 0

    def _table_clear(self, p):
        dev = self._find(p)
        info = self.mapper.clear(dev)
        codec.kernel_found(p, info)
        p.set_flag(abi.DM_INACTIVE_PRESENT_FLAG, False)
        codec.kernel_dev_status(p, info)
        return 0

    def _table_deps(self, p):
        dev = self._find(p)
        info, devs = self.mapper.deps(dev, inactive=self._inactive(p))
        self._status_reply(p, info)
        if self._has_table(p, info):
            codec.kernel_write_deps(p, devs)
        return 0

    def _list_versions(self, p):
        codec.kernel_write_versions(p, self.mapper.target_versions())
        return 0

    def _get_target_version(self, p):
        tv = self.mapper.target_version(to_str(p.name))
        codec.kernel_write_versions(p, [tv])
        return 0

    def _target_message(self, p):
        dev = self._find(p)
        tm = codec.kernel_target_msg(p)       # uses the caller's data_start
        _, maxlen = p.result_buffer()
        info = self.mapper.info(dev)          # find_device(): ENXIO first
        if tm is None:
            raise KernelError(errno.EINVAL, _log("Invalid target message parameters."))
        sector, msg = tm
        words = msg.split()
        if not words:
            raise KernelError(errno.EINVAL, _log("Empty message received."))
        if not words[0].startswith(b"@") and not info.flags & abi.DM_ACTIVE_PRESENT_FLAG:
            if self.message_no_table_returns_2:
                # old mainline: the handler's 2 goes out as is, nothing is copied back
                return 2
            raise KernelError(errno.EINVAL, _log("The device has no table."))
        result = self.mapper.message(dev, sector, to_str(msg))
        info = self.mapper.info(dev)
        self._status_reply(p, info)
        if result is not None:
            codec.kernel_write_message_result(p, result, maxlen)
        return 0

    def _dev_set_geometry(self, p):
        dev = self._find(p)
        self.mapper.info(dev)
        geo = codec.kernel_string_param(p, "geometry")
        if geo is None:
            raise KernelError(errno.EINVAL, _log("Invalid geometry supplied."))
        parts = geo.split(b" ", 3)
        if len(parts) != 4:
            raise KernelError(errno.EINVAL, _log("Unable to interpret geometry settings."))
        self.mapper.set_geometry(dev, *(to_str(x) for x in parts))
        p.data_size = 0
        return 0

    def _dev_arm_poll(self, p):
        return 0
