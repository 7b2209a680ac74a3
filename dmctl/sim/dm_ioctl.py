"""The simulated kernel's control interface (drivers/md/dm-ioctl.c): what the kernel
does for each DM ioctl, one transaction of the store per call.

Lifecycle rules follow dm-ioctl.c (see targets.md §1.6): live and inactive table slots,
table load constructs targets while the old table stays live, resume suspends if needed,
swaps, runs preresume (a failure leaves the device suspended with the new table bound)
and resume, then destroys the old table; clear drops the inactive table; remove refuses
open devices unless deferred; names and uuids are unique (EBUSY); the lowest free minor
is taken; the errno of each failure is the kernel's, and the kernel's log lines are
carried in DmError.detail.

``dmctl.backend.sim.SimMapper`` presents ``SimKernel`` as a Mapper.  Arrows: this module
-> ``dmctl.sim.core`` (devices, tables, background work) -> targets, bios, the store.
"""

import errno

from dmctl import constants as base
from dmctl.constants import DM_MAJOR, DM_NAME_LEN, DM_UUID_LEN, MINORBITS
from dmctl.records import DevId, DeviceEntry, DeviceInfo, TargetLine, TargetVersion
from dmctl.errors import DmError, TargetError
from dmctl.numbers import kernel_sscanf_us
from dmctl.sim.core import WORK_PER_COMMAND, SimDevice, SimEnv

DRIVER_VERSION = (4, 47, 0)
DEFAULT_READ_AHEAD = 256


def _huge_dev(dev):
    """huge_encode_dev of a DevId's major:minor (0 when none)."""
    if dev.major is None:
        return 0
    mi = dev.minor or 0
    return (mi & 0xff) | (dev.major << 8) | ((mi & ~0xff) << 12)


class SimKernel:
    """The simulated kernel's control interface: what dm-ioctl.c does for each ioctl,
    one transaction of the store per call.  ``dmctl.backend.sim.SimMapper`` presents it
    as a ``Mapper``."""

    def __init__(self, sim_dir=None):
        self._sim_dir = sim_dir
        self._store = None
        self.env = None
        self._batch_depth = 0

    @property
    def store(self):
        """The state store, opened on first use: a call that needs no state (the driver
        version) neither imports sqlite3 nor opens the database."""
        if self._store is None:
            from dmctl.sim.store import Store
            self._store = Store(self._sim_dir)
        return self._store

    # -- transactions ---------------------------------------------------------------
    def _begin(self):
        try:
            self.store.begin()
        except self.store.db_error as e:
            # locked past DMCTL_SIM_LOCK_TIMEOUT, not writable...
            raise self.store.state_error(e) from None
        if self.env is None:
            self.env = SimEnv(self.store)

    def _abort(self):
        if self.env is not None:
            self.env.close()
        self.env = None
        self.store.rollback()

    def _end(self, ok):
        if not self.store.in_transaction:
            # rolled back already (a database error inside a batch)
            self.env = None
            return
        if not ok:
            self._abort()
            return
        if self.store._depth == 1:
            env = self.env
            try:
                try:
                    env.run_work(WORK_PER_COMMAND)
                except Exception:
                    pass
                env.save()
                self.store.commit()
            except self.store.db_error as e:
                # disk full, I/O error...: nothing of the command is kept
                self._abort()
                raise self.store.state_error(e) from None
            env.close()
            self.env = None
        else:
            self.store.commit()

    def _txn(self, fn, *a, **kw):
        """Run ``fn(env)`` as one step of the simulated kernel.  A failure the kernel
        reports (DmError, a failed bio) still keeps what happened before it, exactly as
        a failed ioctl leaves the kernel's state (a failed preresume leaves the device
        suspended with the new table; an RPC that failed still committed metadata);
        anything else is a bug, and the step is rolled back."""
        from dmctl.errors import IOFailure
        self._begin()
        try:
            r = fn(self.env, *a, **kw)
        except (DmError, IOFailure) as e:
            detail = getattr(e, "detail", None)
            if detail and self.env is not None:
                self.env.log.extend(str(detail).splitlines())   # the kernel logs it too
            self._end(True)
            raise
        except self.store.db_error as e:
            self._abort()
            raise self.store.state_error(e) from None
        except BaseException:
            self._end(False)
            raise
        self._end(True)
        return r

    def peek(self, fn):
        """``fn(env)`` on the current state, read only: not a step of the kernel (no
        background work, nothing saved).  For what sysfs answers on a real kernel, such
        as a device's name."""
        if self.env is not None:            # inside a batch: its state so far
            return fn(self.env)
        try:
            self.store.begin()
        except self.store.db_error as e:
            raise self.store.state_error(e) from None
        env = SimEnv(self.store)
        try:
            return fn(env)
        except self.store.db_error as e:
            raise self.store.state_error(e) from None
        finally:
            env.close()
            self.store.rollback()

    def batch(self):
        mapper = self

        class _Batch:
            def __enter__(self_):
                mapper._begin()
                return mapper

            def __exit__(self_, et, ev, tb):
                from dmctl.errors import IOFailure
                mapper._end(et is None or issubclass(et, (DmError, IOFailure)))
                return False
        return _Batch()

    def close(self):
        if self._store is not None:
            self._store.close()

    # -- helpers ----------------------------------------------------------------------
    def _find(self, env, dev, op):
        """__find_device_hash_cell."""
        dev = DevId.coerce(dev)
        md = None
        if dev.uuid:
            if dev.name or dev.major is not None:
                env.klog("device-mapper: ioctl: Invalid ioctl structure: uuid %s, name %s, dev %x"
                         % (dev.uuid, dev.name or "", _huge_dev(dev)))
                md = None
            else:
                md = env.device_by_uuid(dev.uuid)
        elif dev.name:
            if dev.major is not None:
                env.klog("device-mapper: ioctl: Invalid ioctl structure: name %s, dev %x"
                         % (dev.name, _huge_dev(dev)))
            else:
                md = env.device_by_name(dev.name)
        elif dev.major is not None:
            if dev.major == DM_MAJOR:
                md = env.device_by_minor(dev.minor)
        if md is None:
            raise DmError(errno.ENXIO, op=op, name=dev.name or "", uuid=dev.uuid or "",
                          major=dev.major, minor=dev.minor)
        return md

    def _status(self, md, flags_in=0, inactive=False):
        """__dev_status."""
        flags = flags_in & ~(base.DM_SUSPEND_FLAG | base.DM_READONLY_FLAG |
                             base.DM_ACTIVE_PRESENT_FLAG | base.DM_INTERNAL_SUSPEND_FLAG |
                             base.DM_INACTIVE_PRESENT_FLAG)
        if md.suspended:
            flags |= base.DM_SUSPEND_FLAG
        if md.deferred:
            flags |= base.DM_DEFERRED_REMOVE
        target_count = 0
        if md.has_live:
            flags |= base.DM_ACTIVE_PRESENT_FLAG
            if not inactive:
                if md.ro:
                    flags |= base.DM_READONLY_FLAG
                target_count = len(md.get_live().lines)
        if md.has_inactive:
            flags |= base.DM_INACTIVE_PRESENT_FLAG
            if inactive:
                it = md.get_inactive()
                if it.ro:
                    flags |= base.DM_READONLY_FLAG
                target_count = len(it.lines)
        return DeviceInfo(md.name, md.uuid or "", DM_MAJOR, md.minor, flags,
                          md.open_count, md.event_nr, target_count)

    # -- driver -----------------------------------------------------------------------
    def version(self):
        return DRIVER_VERSION

    def list_devices(self, uuid=False):
        def fn(env):
            if not env.devices:
                rows = env.db.execute(
                    "SELECT name, minor, event_nr, uuid FROM devices").fetchall()
                rows.sort(key=lambda r: r[0].encode("utf-8", "surrogateescape"))
                return [DeviceEntry(r[0], DM_MAJOR, r[1], r[2],
                                    (r[3] or "") if uuid else None) for r in rows]
            return [DeviceEntry(md.name, DM_MAJOR, md.minor, md.event_nr,
                                (md.uuid or "") if uuid else None)
                    for md in env.all_devices()]
        return self._txn(fn)

    def target_versions(self):
        from dmctl.sim.targets.base import available
        return [TargetVersion(n, v) for n, v in available()]

    def target_version(self, name):
        from dmctl.sim.targets.base import available
        for n, v in available():
            if n == name:
                return TargetVersion(n, v)
        raise DmError(errno.EINVAL, op="target-version", name=name)

    def remove_all(self, deferred=False):
        def fn(env):
            left = 0
            # repeat: removing a device closes the devices below it
            progress = True
            while progress:
                progress = False
                for md in env.all_devices():
                    if md.open_count > 0:
                        continue
                    self._do_remove(env, md)
                    progress = True
            for md in env.all_devices():
                left += 1
                if deferred:
                    md.deferred = True
                    env.mark(md)
            if left:
                env.klog("device-mapper: ioctl: remove_all left %d open device(s)" % left)
            return None
        return self._txn(fn)

    # -- lifecycle --------------------------------------------------------------------
    def create(self, name, uuid=None, minor=None, readonly=False):
        def fn(env):
            if not name:
                raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "",
                              detail="device-mapper: ioctl: name not supplied when creating device")
            if len(name.encode()) >= DM_NAME_LEN:
                raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "")
            if "/" in name:
                raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "",
                              detail="device-mapper: ioctl: device name cannot contain '/'")
            if name in ("control", ".", ".."):
                raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "",
                              detail='device-mapper: ioctl: device name cannot be "control", ".", or ".."')
            u = uuid or None
            if u is not None:
                u = u.encode()[:DM_UUID_LEN - 1].decode("utf-8", "ignore")
            if minor is not None:
                if minor >= (1 << MINORBITS) or minor < 0:
                    raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "")
                if env.device_by_minor(minor) is not None:
                    raise DmError(errno.EBUSY, op="create", name=name, uuid=uuid or "")
                m = minor
            else:
                m = env.free_minor()
            if env.device_by_name(name) is not None:
                raise DmError(errno.EBUSY, op="create", name=name, uuid=uuid or "")
            if u and env.device_by_uuid(u) is not None:
                raise DmError(errno.EBUSY, op="create", name=name, uuid=uuid or "")
            md = SimDevice(env)
            md.minor, md.name, md.uuid = m, name, u
            md.suspended = False
            md.deferred = False
            md.open_count = 0
            md.event_nr = 0
            md.ro = bool(readonly)
            md.read_ahead = None
            md.geometry = None
            md._size = 0
            env.add_device(md)
            return self._status(md)
        return self._txn(fn)

    def load(self, dev, lines, readonly=False):
        def fn(env):
            md = self._find(env, dev, "reload")
            first_load = not md.has_live and not md.has_inactive and md.read_ahead is None
            lines_ = [(l.start, l.length, l.target_type, l.params) for l in lines]
            try:
                table = env.build_table(md, lines_, bool(readonly))
                try:
                    env.check_device_areas(md, table, first_load)
                except DmError:
                    env.destroy_table(md, table)
                    raise
            except DmError as e:
                d = DevId.coerce(dev)
                raise e.with_context(op="reload", name=d.name or "", uuid=d.uuid or "")
            env.table_refs(table, +1)
            old = md.get_inactive()
            md.inactive = table
            md._inactive_blob = None
            if old is not None:
                env.destroy_table(md, old)
            if md.read_ahead is None:
                md.read_ahead = DEFAULT_READ_AHEAD
            env.mark(md)
            return self._status(md)
        return self._txn(fn)

    def _suspend_md(self, env, md, noflush=False):
        lt = md.get_live()
        if lt is not None:
            for t in lt.targets:
                t.presuspend(noflush)
            # dm_suspend flushes outstanding I/O (unless noflush): nothing is in flight
            for t in lt.targets:
                t.postsuspend()
        md.suspended = True
        env.mark(md)

    def suspend(self, dev, noflush=False, nolockfs=False):
        def fn(env):
            md = self._find(env, dev, "suspend")
            if not md.suspended:
                self._suspend_md(env, md, noflush)
            return self._status(md)
        return self._txn(fn)

    def resume(self, dev, noflush=False, nolockfs=False, cookie=0, readonly=False):
        def fn(env):
            md = self._find(env, dev, "resume")
            new = md.get_inactive()
            md.inactive = None
            md._inactive_blob = None
            old = None
            env.mark(md)
            if new is not None:
                if not md.suspended:
                    self._suspend_md(env, md, noflush)
                old = md.get_live()
                # dm_swap_table -> dm_calculate_queue_limits
                try:
                    if old is None or new.devs:
                        env.check_device_areas(md, new, False)
                except DmError as e:
                    env.destroy_table(md, new)
                    raise e.with_context(op="resume", name=md.name, uuid=md.uuid or "")
                md.live = new
                md._live_blob = None
                md.ro = new.ro
            flags = 0
            if md.suspended:
                lt = md.get_live()
                if lt is None or lt.size == 0:
                    if old is not None:
                        env.destroy_table(md, old)
                    raise DmError(errno.EINVAL, op="resume", name=md.name, uuid=md.uuid or "")
                for t in lt.targets:
                    try:
                        t.preresume()
                    except TargetError as e:
                        if old is not None:
                            env.destroy_table(md, old)
                        detail = "device-mapper: ioctl: %d:%d: %s: preresume failed, error = %d" % (
                            DM_MAJOR, md.minor, t.name, -e.errno)
                        if e.log:
                            detail = "\n".join((e.log if isinstance(e.log, list) else [e.log]) + [detail])
                        raise DmError(e.errno, op="resume", name=md.name, uuid=md.uuid or "",
                                      detail=detail)
                for t in lt.targets:
                    t.resume()
                md.suspended = False
                # dm_resume sends a KOBJ_CHANGE uevent (dm_kobject_uevent)
                flags |= base.DM_UEVENT_GENERATED_FLAG
            if old is not None:
                env.destroy_table(md, old)
            return self._status(md, flags)
        return self._txn(fn)

    def clear(self, dev):
        def fn(env):
            md = self._find(env, dev, "clear")
            old = md.get_inactive()
            md.inactive = None
            md._inactive_blob = None
            if old is not None:
                env.destroy_table(md, old)
            env.mark(md)
            return self._status(md)
        return self._txn(fn)

    def _do_remove(self, env, md):
        info = self._status(md)
        it = md.get_inactive()
        if it is not None:
            env.destroy_table(md, it)
        lt = md.get_live()
        if lt is not None:
            if not md.suspended:
                self._suspend_md(env, md)
            env.destroy_table(md, lt)
        md.live = md.inactive = None
        env.destroy_device(md)
        return info

    def remove(self, dev, deferred=False, cookie=0):
        def fn(env):
            md = self._find(env, dev, "remove")
            if md.open_count > 0:
                if deferred:
                    md.deferred = True
                    env.mark(md)
                    return self._status(md)
                raise DmError(errno.EBUSY, op="remove", name=md.name, uuid=md.uuid or "")
            info = self._do_remove(env, md)
            info.flags &= ~base.DM_DEFERRED_REMOVE
            return info
        return self._txn(fn)

    def rename(self, dev, new, set_uuid=False, cookie=0):
        def fn(env):
            d = DevId.coerce(dev)
            what = "uuid" if set_uuid else "name"
            limit = DM_UUID_LEN - 1 if set_uuid else DM_NAME_LEN - 1
            if not new or len(new.encode()) > limit:
                raise DmError(errno.EINVAL, op="rename", name=d.name or "",
                              detail="device-mapper: ioctl: Invalid new mapped device name or uuid string supplied.")
            if not set_uuid:
                if "/" in new:
                    raise DmError(errno.EINVAL, op="rename", name=d.name or "",
                                  detail="device-mapper: ioctl: device name cannot contain '/'")
                if new in ("control", ".", ".."):
                    raise DmError(errno.EINVAL, op="rename", name=d.name or "",
                                  detail='device-mapper: ioctl: device name cannot be "control", ".", or ".."')
            exists = env.device_by_uuid(new) if set_uuid else env.device_by_name(new)
            if exists is not None:
                raise DmError(errno.EBUSY, op="rename", name=d.name or "",
                              detail="device-mapper: ioctl: Unable to change %s on mapped device %s to one that already exists: %s"
                              % (what, d.name or "", new))
            md = env.device_by_name(d.name) if d.name else None
            if md is None:
                raise DmError(errno.ENXIO, op="rename", name=d.name or "",
                              detail="device-mapper: ioctl: Unable to rename non-existent device, %s to %s%s"
                              % (d.name or "", "uuid " if set_uuid else "", new))
            if set_uuid:
                if md.uuid:
                    raise DmError(errno.EINVAL, op="rename", name=d.name or "",
                                  detail="device-mapper: ioctl: Unable to change uuid of mapped device %s to %s because uuid is already set to %s"
                                  % (md.name, new, md.uuid))
                env.set_uuid(md, new)
            else:
                env.set_name(md, new)
            if md.has_live:
                env.table_event(md)
            env.mark(md)
            return self._status(md, base.DM_UEVENT_GENERATED_FLAG if cookie else 0)
        return self._txn(fn)

    def set_geometry(self, dev, cylinders, heads, sectors, start):
        def fn(env):
            md = self._find(env, dev, "setgeometry")
            # libdm sends "%s %s %s %s"; dev_set_geometry reads it with
            # sscanf(geostr, "%lu %lu %lu %lu%c", ...) == 4
            vals = kernel_sscanf_us("%s %s %s %s" % (cylinders, heads, sectors, start), 4)
            if vals is None:
                raise DmError(errno.EINVAL, op="setgeometry", name=md.name,
                              detail="device-mapper: ioctl: Unable to interpret geometry settings.")
            if vals[0] > 65535 or vals[1] > 255 or vals[2] > 255:
                raise DmError(errno.EINVAL, op="setgeometry", name=md.name,
                              detail="device-mapper: ioctl: Geometry exceeds range limits.")
            md.geometry = "%d %d %d %d" % tuple(vals)
            env.mark(md)
            return None
        return self._txn(fn)

    # -- queries ----------------------------------------------------------------------
    def info(self, dev, inactive=False):
        return self._txn(lambda env: self._status(self._find(env, dev, "info"),
                                                  inactive=inactive))

    def _lines(self, env, md, type_, inactive, noflush=False):
        from dmctl.sim.targets.base import STATUSTYPE_TABLE
        table = md.get_inactive() if inactive else md.get_live()
        if table is None:
            return []
        env.mark(md)
        out = []
        for (start, length, ttype, params), t in zip(table.lines, table.targets):
            if type_ == STATUSTYPE_TABLE and t.name in ("zero", "error"):
                s = ""
            else:
                s = t.status(type_, noflush)
            out.append(TargetLine(start, length, ttype, s))
        return out

    def table(self, dev, inactive=False):
        from dmctl.sim.targets.base import STATUSTYPE_TABLE

        def fn(env):
            md = self._find(env, dev, "table")
            return self._status(md, inactive=inactive), self._lines(env, md, STATUSTYPE_TABLE, inactive)
        return self._txn(fn)

    def status(self, dev, inactive=False, noflush=False):
        from dmctl.sim.targets.base import STATUSTYPE_INFO

        def fn(env):
            md = self._find(env, dev, "status")
            return (self._status(md, inactive=inactive),
                    self._lines(env, md, STATUSTYPE_INFO, inactive, noflush))
        return self._txn(fn)

    def measure(self, dev, inactive=False):
        from dmctl.sim.targets.base import STATUSTYPE_IMA

        def fn(env):
            md = self._find(env, dev, "status")
            return self._status(md, inactive=inactive), self._lines(env, md, STATUSTYPE_IMA, inactive)
        return self._txn(fn)

    def deps(self, dev, inactive=False):
        def fn(env):
            md = self._find(env, dev, "deps")
            table = md.get_inactive() if inactive else md.get_live()
            return self._status(md, inactive=inactive), list(table.devs) if table else []
        return self._txn(fn)

    def message(self, dev, sector, message):
        def fn(env):
            md = self._find(env, dev, "message")
            from dmctl.sim.targets.base import split_args
            argv = split_args(message)
            if not argv:
                raise DmError(errno.EINVAL, op="message", name=md.name,
                              detail="device-mapper: ioctl: Empty message received.")
            if argv[0].startswith("@"):
                if argv[0] == "@cancel_deferred_remove":
                    if len(argv) != 1:
                        raise DmError(errno.EINVAL, op="message", name=md.name,
                                      detail="device-mapper: ioctl: Invalid arguments for @cancel_deferred_remove")
                    if not md.deferred:
                        raise DmError(errno.ENXIO, op="message", name=md.name)
                    md.deferred = False
                    env.mark(md)
                    return None
                raise DmError(errno.EINVAL, op="message", name=md.name,
                              detail="device-mapper: ioctl: Unsupported message sent to DM core: %s" % argv[0])
            lt = md.get_live()
            if lt is None:
                # the kernel's quirk: the ioctl returns 2 and copies nothing back
                return None
            if sector >= lt.size:
                raise DmError(errno.EINVAL, op="message", name=md.name,
                              detail="device-mapper: ioctl: Target message sector outside device.")
            t = lt.find_target(sector)
            env.mark(md)        # the target's state may change even when it fails
            try:
                r = t.message(argv)
            except TargetError as e:
                raise DmError(e.errno, op="message", name=md.name, detail=e.log or e.text)
            env.mark(md)
            return r
        return self._txn(fn)

    def wait_event(self, dev, event_nr=0, inactive=False, noflush=False, timeout=None):
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        # the kernel looks the device up once: a rename while waiting does not lose it
        info = self.info(dev)
        dev = DevId(major=info.major, minor=info.minor)
        while True:
            info, lines = self.status(dev, inactive=inactive, noflush=noflush)
            if info.event_nr != event_nr:
                return info, lines
            if deadline is not None and time.monotonic() >= deadline:
                raise DmError(errno.ETIME, op="waitevent", name=info.name)
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def read_ahead(self, info):
        def fn(env):
            md = env.device_by_minor(info.minor)
            return None if md is None else md.read_ahead
        return self._txn(fn)

    def set_read_ahead(self, info, sectors, minimum=False):
        def fn(env):
            md = env.device_by_minor(info.minor)
            if md is None:
                return
            if minimum and (md.read_ahead or 0) >= sectors:
                return
            md.read_ahead = sectors
            env.mark(md)
        return self._txn(fn)

    # -- simulator-only operations (dmctl sim ...) ----------------------------------------
    def run(self, fn, *a, **kw):
        """Run ``fn(env, ...)`` in one transaction (for the I/O API and sim commands)."""
        return self._txn(fn, *a, **kw)
