"""The simulated kernel's dm core: devices, tables, lifecycle, background work.

Lifecycle rules follow drivers/md/dm-ioctl.c (see targets.md §1.6): live and inactive
table slots, table load constructs targets while the old table stays live, resume
suspends if needed, swaps, runs preresume (a failure leaves the device suspended with
the new table bound) and resume, then destroys the old table; clear drops the
inactive table; remove refuses open devices unless deferred; names and uuids are
unique (EBUSY); the lowest free minor is taken; the errno of each failure is the
kernel's, and the kernel's log lines are carried in DmError.detail.
"""

import errno
import os

from dmctl import constants as base
from dmctl.records import DevId, DeviceEntry, DeviceInfo, TargetLine, TargetVersion
from dmctl.errors import DmError, TargetError, errno_name
from dmctl.sim.store import Store


class _LazyBio:
    """dmctl.sim.bio, imported on first use (queries never need it)."""

    def __getattr__(self, name):
        from dmctl.sim import bio
        globals()['B'] = bio
        return getattr(bio, name)


B = _LazyBio()

DM_MAJOR = 254
DRIVER_VERSION = (4, 47, 0)
MINORBITS = 20
DEFAULT_READ_AHEAD = 256
NAME_LEN = 128
UUID_LEN = 129
# background work done as part of every command (bounded), as kernel worker threads
# would make progress while the user types the next command
WORK_PER_COMMAND = 64


def _huge_dev(dev):
    """huge_encode_dev of a DevId's major:minor (0 when none)."""
    if dev.major is None:
        return 0
    mi = dev.minor or 0
    return (mi & 0xff) | (dev.major << 8) | ((mi & ~0xff) << 12)


def _kernel_name(devno):
    if devno[0] == DM_MAJOR:
        return "dm-%d" % devno[1]
    if devno[0] == 7:
        return "loop%d" % devno[1]
    return "%d:%d" % devno


def device_takes_discards(env, dev):
    """bdev_max_discard_sectors(dev) != 0: a backing file always (holes are punched),
    a dm device when its live table takes discards."""
    if not dev.is_dm:
        return True
    lt = dev.get_live()
    return lt is not None and lt.supports_discards(env)


class Table:
    """A constructed table (dm_table): lines, targets, its device list."""

    def __init__(self, lines, targets, ro, devs):
        self.lines = lines          # [(start, length, type, params)]
        self.targets = targets      # [Target]
        self.ro = ro
        self.devs = devs            # [(maj, min)] in the kernel's deps order

    @property
    def size(self):
        if not self.lines:
            return 0
        s, l = self.lines[-1][0], self.lines[-1][1]
        return s + l

    def supports_discards(self, env):
        """dm_table_supports_discards: every target takes discard bios and either
        handles them itself (``discards_supported``) or has an iterate_devices whose
        devices all take discards.  Otherwise the device's queue has no discard limit
        and BLKDISCARD fails with EOPNOTSUPP before any bio is built."""
        for t in self.targets:
            if not t.ti.num_discard_bios:
                return False
            if t.discards_supported:
                continue
            if not t.has_iterate_devices:
                return False
            for devno in t.iterate_devices():
                if not device_takes_discards(env, env.device_by_devno(devno)):
                    return False
        return True

    def find_target(self, sector):
        # few targets per table: a linear scan is fine and cheap
        for t in self.targets:
            ti = t.ti
            if ti.begin <= sector < ti.begin + ti.len:
                return t
        return None


class SimDevice:
    """A mapped device (struct mapped_device + its hash cell)."""

    is_dm = True
    major = DM_MAJOR
    logical_block_size = 512

    def __init__(self, env, row=None):
        self.env = env
        self.live = None
        self.inactive = None
        self._live_blob = None
        self._inactive_blob = None
        if row is not None:
            (self.minor, self.name, self.uuid, susp, deferred, self.open_count,
             self.event_nr, ro, self.read_ahead, self.geometry, self._size,
             self._live_blob, self._inactive_blob) = row
            self.suspended = bool(susp)
            self.deferred = bool(deferred)
            self.ro = bool(ro)
        self.removed = False

    @property
    def devno(self):
        return (DM_MAJOR, self.minor)

    @property
    def size(self):
        lt = self.get_live()
        return lt.size if lt is not None else 0

    def get_live(self):
        if self.live is None and self._live_blob is not None:
            self.live = self.env.restore_table(self, self._live_blob)
            self._live_blob = None
        return self.live

    def get_inactive(self):
        if self.inactive is None and self._inactive_blob is not None:
            self.inactive = self.env.restore_table(self, self._inactive_blob)
            self._inactive_blob = None
        return self.inactive

    @property
    def has_live(self):
        return self.live is not None or self._live_blob is not None

    @property
    def has_inactive(self):
        return self.inactive is not None or self._inactive_blob is not None

    # -- I/O (dm.c: __split_and_process_bio) ------------------------------------------
    def submit(self, bio):
        # targets' in-core state may change (era marks, log-writes lists, mirror
        # health after a failed read...)
        self.env.dirty_devices.add(self)
        if self.suspended:
            self.env.io_while_suspended(self, bio)
            return
        table = self.get_live()
        if table is None or not table.targets:
            B.bio_endio(bio, errno.EIO)
            return
        if bio.op == B.DISCARD and not table.supports_discards(self.env):
            B.bio_endio(bio, errno.EOPNOTSUPP)
            return
        if bio.op != B.READ and self.ro:
            B.bio_endio(bio, errno.EIO)
            return
        if bio.flags & B.PREFLUSH and bio.nr_sectors and bio.op != B.READ:
            # dm core: an empty flush goes to every target first, then the data
            # without PREFLUSH (targets never see a flush that carries data)
            self._flush_then_data(bio)
            return
        if bio.is_empty_flush:
            clones = []
            for t in table.targets:
                for i in range(t.ti.num_flush_bios):
                    # __send_empty_flush: clones of an on-stack flush bio at sector 0,
                    # except the first, which is the dm_io's embedded clone of the
                    # submitted bio and keeps its sector
                    c = bio.clone(sector=0 if clones else bio.sector, nr_sectors=0,
                                  data=None)
                    c.target_bio_nr = i
                    clones.append((t, c))
            if not clones:
                B.bio_endio(bio, 0)
                return
            self._fan_out(bio, clones)
            return
        end = bio.sector + bio.nr_sectors
        if end > table.size:
            B.bio_endio(bio, errno.EIO)
            return
        if len(table.targets) == 1 and bio.op != B.DISCARD:
            t = table.targets[0]
            mx = t.ti.max_io_len
            if not mx or (bio.sector - t.ti.begin) // mx == (end - 1 - t.ti.begin) // mx:
                self._fan_out(bio, [(t, bio.clone())])
                return
        # __split_and_process_bio: pieces at target boundaries and at each target's
        # max_io_len; a discard goes to each target as num_discard_bios clones
        clones = []
        sector = bio.sector
        data = bio.data
        flags = bio.flags
        while sector < end:
            t = table.find_target(sector)
            ti = t.ti
            limit = ti.begin + ti.len
            if ti.max_io_len and bio.op != B.DISCARD:
                rel = sector - ti.begin
                limit = min(limit, ti.begin + (rel // ti.max_io_len + 1) * ti.max_io_len)
            n = min(end, limit) - sector
            if bio.op == B.DISCARD:
                if not ti.num_discard_bios:
                    c = bio.clone(sector=sector, nr_sectors=n, data=None)
                    c.error = errno.EOPNOTSUPP
                    clones.append((t, c))
                for i in range(ti.num_discard_bios):
                    c = bio.clone(sector=sector, nr_sectors=n, data=None)
                    c.target_bio_nr = i
                    clones.append((t, c))
            else:
                if data is not None:
                    off = (sector - bio.sector) << 9
                    d = memoryview(data)[off:off + (n << 9)]
                else:
                    d = None
                clones.append((t, bio.clone(sector=sector, nr_sectors=n, data=d)))
            sector += n
        self._fan_out(bio, clones)

    def _flush_then_data(self, bio):
        fl = bio.clone(sector=0, nr_sectors=0, data=None)
        fl.flags = B.PREFLUSH
        data = bio.clone()
        data.flags = bio.flags & ~B.PREFLUSH

        def data_done(db):
            B.bio_endio(bio, db.error)

        def flush_done(fb):
            if fb.error:
                B.bio_endio(bio, fb.error)
                return
            data.end_io = data_done
            self.submit(data)
        fl.end_io = flush_done
        self.submit(fl)

    def _fan_out(self, parent, clones):
        parent.remaining = len(clones)
        for t, c in clones:
            c.parent = parent
            c.target = t
            c.end_io = _clone_endio
            if c.error:
                err = c.error
                c.error = 0
                B.bio_endio(c, err)
                continue
            r = t.map(c)
            if r == B.DM_MAPIO_REMAPPED:
                submit_bio(c.dev, c)
            elif r == B.DM_MAPIO_KILL:
                B.bio_endio(c, errno.EIO)
            elif r in (B.DM_MAPIO_REQUEUE, B.DM_MAPIO_DELAY_REQUEUE):
                B.bio_endio(c, errno.EAGAIN)
            # SUBMITTED: the target completes it


def _clone_endio(clone):
    t = clone.target
    err = clone.error
    if t is not None:
        r = t.end_io(clone, err)
        if r == B.DM_ENDIO_INCOMPLETE:
            # the target took the bio back; it will complete it again
            clone.done = False
            return
        err = clone.error
    parent = clone.parent
    if err and not parent.error:
        parent.error = err
    parent.remaining -= 1
    if parent.remaining == 0:
        B.bio_endio(parent, parent.error)


def submit_bio(dev, bio):
    """Hand a bio to a block device (a mapped device or a backing file)."""
    dev.submit(bio)


class SimEnv:
    """One process's view of the simulated kernel during a transaction."""

    def __init__(self, store):
        self.store = store
        self.db = store.db
        self.devices = {}       # minor -> SimDevice (loaded)
        self.by_name = {}
        self.backing = {}       # minor -> BackingFile
        self.backing_by_path = {}
        self.dirty_devices = set()
        self.dirty_backing = set()
        self.deleted = set()
        self.log = []           # kernel log lines produced in this transaction
        self.work_targets = []

    # -- kernel log -----------------------------------------------------------------
    def klog(self, line):
        self.log.append(line)

    # -- devices --------------------------------------------------------------------
    _COLS = ("minor, name, uuid, suspended, deferred, open_count, event_nr, ro, "
             "read_ahead, geometry, size, live, inactive")

    def _load_row(self, row):
        md = self.devices.get(row[0])
        if md is not None:
            return md
        md = SimDevice(self, row)
        self.devices[md.minor] = md
        self.by_name[md.name] = md
        return md

    def device_by_minor(self, minor):
        md = self.devices.get(minor)
        if md is not None:
            return None if md.removed else md
        row = self.db.execute("SELECT %s FROM devices WHERE minor=?" % self._COLS,
                              (minor,)).fetchone()
        return self._load_row(row) if row else None

    def device_by_name(self, name):
        md = self.by_name.get(name)
        if md is not None and not md.removed and md.name == name:
            return md
        row = self.db.execute("SELECT %s FROM devices WHERE name=?" % self._COLS,
                              (name,)).fetchone()
        if row is None:
            return None
        md = self._load_row(row)
        return None if md.removed else md

    def device_by_uuid(self, uuid):
        for md in self.devices.values():
            if md.uuid == uuid and not md.removed:
                return md
        row = self.db.execute("SELECT %s FROM devices WHERE uuid=?" % self._COLS,
                              (uuid,)).fetchone()
        return self._load_row(row) if row else None

    def all_devices(self):
        rows = self.db.execute("SELECT %s FROM devices" % self._COLS).fetchall()
        out = [self._load_row(r) for r in rows]
        out = [md for md in out if not md.removed]
        for md in self.devices.values():
            if not md.removed and md not in out:
                out.append(md)
        out.sort(key=lambda m: m.name.encode("utf-8", "surrogateescape"))
        return out

    def mark(self, md):
        self.dirty_devices.add(md)

    # -- block device lookup (dm_get_device) ------------------------------------------
    def lookup_device(self, path):
        """Resolve a table's device string; OSError(errno) when not found."""
        if ":" in path and "/" not in path:
            a, _, b = path.partition(":")
            if a.isdigit() and b.isdigit():
                return self.device_by_devno((int(a), int(b)), strict=True)
        if path.startswith("/dev/mapper/"):
            md = self.device_by_name(path[len("/dev/mapper/"):])
            if md is None:
                raise OSError(errno.ENODEV, path)
            return md
        if path.startswith("/dev/dm-") and path[8:].isdigit():
            md = self.device_by_minor(int(path[8:]))
            if md is None:
                raise OSError(errno.ENODEV, path)
            return md
        return self.backing_file(path)

    def device_by_devno(self, devno, strict=False):
        maj, mnr = devno
        if maj == DM_MAJOR:
            md = self.device_by_minor(mnr)
            if md is None:
                raise OSError(errno.ENXIO, "%d:%d" % devno)
            return md
        if maj == 7:
            bf = self.backing.get(mnr)
            if bf is not None:
                return bf
            row = self.db.execute("SELECT minor, path, cache, faults FROM backing WHERE minor=?",
                                  (mnr,)).fetchone()
            if row is None or not os.path.isfile(row[1]):
                raise OSError(errno.ENXIO, "%d:%d" % devno)
            return self._backing_from_row(row)
        raise OSError(errno.ENXIO, "%d:%d" % devno)

    def _backing_from_row(self, row):
        from dmctl.sim.blockdev import BackingFile
        bf = BackingFile(self, row[0], row[1], row[2], row[3])
        self.backing[bf.minor] = bf
        self.backing_by_path[bf.path] = bf
        return bf

    def backing_file(self, path, create=True):
        """The simulated loop device of a regular file (stable number per file)."""
        ap = os.path.abspath(path)
        bf = self.backing_by_path.get(ap)
        if bf is not None:
            return bf
        try:
            st = os.stat(ap)
        except OSError:
            raise OSError(errno.ENODEV, path)
        import stat as _stat
        if not _stat.S_ISREG(st.st_mode):
            raise OSError(errno.ENOTBLK, path)
        row = self.db.execute("SELECT minor, path, cache, faults FROM backing WHERE path=?",
                              (ap,)).fetchone()
        if row is None:
            if not create:
                raise OSError(errno.ENODEV, path)
            m = self.db.execute("SELECT COALESCE(MAX(minor)+1, 0) FROM backing").fetchone()[0]
            self.db.execute("INSERT INTO backing(minor, path, st_dev, st_ino) VALUES(?,?,?,?)",
                            (m, ap, st.st_dev, st.st_ino))
            row = (m, ap, None, None)
        return self._backing_from_row(row)

    def all_backing(self):
        for row in self.db.execute("SELECT minor, path, cache, faults FROM backing").fetchall():
            if row[0] not in self.backing:
                if os.path.isfile(row[1]):
                    self._backing_from_row(row)
        return list(self.backing.values())

    def note_cache(self, bf):
        self.dirty_backing.add(bf)

    def get_ref(self, dev, target):
        pass

    # -- tables -------------------------------------------------------------------------
    def build_table(self, md, lines, ro):
        """populate_table + dm_table_complete: construct every target or none.
        Raises DmError with the kernel's log lines."""
        from dmctl.sim.targets.base import TargetInfo, get_class, split_args
        devname = "%d:%d" % (DM_MAJOR, md.minor)
        if not lines:
            raise DmError(errno.EINVAL, detail="device-mapper: ioctl: populate_table: no targets specified")
        targets = []
        next_start = 0
        try:
            for (start, length, ttype, params) in lines:
                if length == 0:
                    raise DmError(errno.EINVAL, detail="device-mapper: table: %s: zero-length target" % devname)
                cls = get_class(ttype)
                if cls is None:
                    raise DmError(errno.EINVAL, detail=(
                        "device-mapper: table: %s: %s: unknown target type\n"
                        "device-mapper: ioctl: error adding target to table") % (devname, ttype))
                if start != next_start:
                    raise DmError(errno.EINVAL, detail=(
                        "device-mapper: table: %s: %s: Gap in table (-EINVAL)\n"
                        "device-mapper: ioctl: error adding target to table") % (devname, ttype))
                ti = TargetInfo(start, length, ro)
                argv = split_args(params)
                try:
                    t = cls.ctr(self, ti, argv)
                except TargetError as e:
                    lines_ = []
                    if e.log:
                        lines_.extend(e.log if isinstance(e.log, list) else [e.log])
                    lines_.append("device-mapper: table: %s: %s: %s (-%s)" % (
                        devname, ttype, e.text, errno_name(e.errno)))
                    lines_.append("device-mapper: ioctl: error adding target to table")
                    raise DmError(e.errno, detail="\n".join(lines_))
                t.md = md
                targets.append(t)
                next_start = start + length
        except BaseException:
            for t in reversed(targets):
                try:
                    t.dtr()
                except Exception:
                    pass
            raise
        devs = []
        for t in targets:
            for d in t.devs:
                if d not in devs:
                    devs.insert(0, d)
        table = Table(list(lines), targets, ro, devs)
        return table

    def check_device_areas(self, md, table, first_load):
        """dm_calculate_queue_limits' device_area_is_invalid: every data device must
        cover the area the target maps onto it."""
        for t in table.targets:
            for devno, start, length in getattr(t, "device_areas", lambda: [])():
                try:
                    dev = self.device_by_devno(devno)
                except OSError:
                    continue
                size = dev.size
                if start + length > size or start > size:
                    lines = ["device-mapper: table: %d:%d: %s too small for target: start=%d, len=%d, dev_size=%d"
                             % (DM_MAJOR, md.minor, _kernel_name(devno), start, length, size)]
                    if first_load:
                        lines.append("device-mapper: core: Cannot calculate initial queue limits")
                        lines.append("device-mapper: ioctl: unable to set up device queue for new table.")
                    raise DmError(errno.EINVAL, detail="\n".join(lines))

    def table_refs(self, table, delta):
        """Open (delta=+1) or close (-1) the dm devices a table uses."""
        for devno in table.devs:
            if devno[0] == DM_MAJOR:
                md = self.device_by_minor(devno[1])
                if md is not None:
                    md.open_count += delta
                    self.mark(md)
                    if delta < 0 and md.open_count <= 0 and md.deferred:
                        self.destroy_device(md)

    def destroy_table(self, md, table):
        if table is None:
            return
        for t in reversed(table.targets):
            try:
                t.dtr()
            except Exception as e:  # pragma: no cover
                self.klog("device-mapper: table: dtr failed: %r" % (e,))
        self.table_refs(table, -1)

    def save_table(self, table):
        if table is None:
            return None
        states = []
        for t in table.targets:
            states.append((t.name, t.ti.begin, t.ti.len, t.ti.num_flush_bios,
                           t.ti.num_discard_bios, t.save(), t.ti.max_io_len))
        import pickle
        return pickle.dumps((table.lines, table.ro, table.devs, states), protocol=4)

    def restore_table(self, md, blob):
        from dmctl.sim.targets.base import TargetInfo, get_class
        from dmctl.sim.store import loads
        lines, ro, devs, states = loads(blob)
        targets = []
        for rec in states:
            name, begin, length, nf, nd, st = rec[:6]
            ti = TargetInfo(begin, length, ro)
            ti.num_flush_bios = nf
            ti.num_discard_bios = nd
            ti.max_io_len = rec[6] if len(rec) > 6 else 0
            cls = get_class(name)
            t = cls.restore(self, ti, st)
            t.md = md
            targets.append(t)
        return Table(lines, targets, ro, devs)

    def destroy_device(self, md):
        md.removed = True
        self.deleted.add(md.minor)
        self.dirty_devices.discard(md)
        self.by_name.pop(md.name, None)

    # -- events ---------------------------------------------------------------------------
    def table_event(self, md):
        md.event_nr += 1
        self.mark(md)

    def io_while_suspended(self, md, bio):
        # The kernel queues I/O to a suspended device until resume; a dmctl process
        # cannot sleep until another process resumes it, so the I/O fails with EAGAIN
        # and the caller is told why.
        B.bio_endio(bio, errno.EAGAIN)

    # -- background work ------------------------------------------------------------------
    def run_work(self, budget=None):
        """Run targets' background work: ``budget`` steps, or until idle (None)."""
        total = 0
        while True:
            did = 0
            for md in self.all_devices():
                lt = md.get_live()
                if lt is None:
                    continue
                for t in lt.targets:
                    if md.suspended and not t.works_while_suspended:
                        continue
                    b = None if budget is None else max(0, budget - total)
                    if b == 0:
                        return total
                    n = t.work(b if b is not None else 1 << 30)
                    if n:
                        did += n
                        total += n
                        self.mark(md)
            if not did:
                return total

    # -- persistence ----------------------------------------------------------------------
    def save(self):
        db = self.db
        for minor in self.deleted:
            db.execute("DELETE FROM devices WHERE minor=?", (minor,))
        for md in list(self.dirty_devices):
            if md.removed:
                continue
            live = self.save_table(md.live) if md.live is not None else md._live_blob
            inactive = (self.save_table(md.inactive) if md.inactive is not None
                        else md._inactive_blob)
            db.execute("INSERT OR REPLACE INTO devices(%s) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
                       % self._COLS,
                       (md.minor, md.name, md.uuid or None, int(md.suspended),
                        int(md.deferred), md.open_count, md.event_nr, int(md.ro),
                        md.read_ahead, md.geometry, md.size, live, inactive))
        for bf in self.dirty_backing:
            db.execute("UPDATE backing SET cache=?, faults=? WHERE minor=?",
                       (bf.cache.state(), bf.faults.state(), bf.minor))
        if self.log:
            self.store.append_klog(self.log)
            self.log = []
        self.dirty_devices.clear()
        self.dirty_backing.clear()
        self.deleted.clear()

    def close(self):
        for bf in self.backing.values():
            bf.close()


class SimKernel:
    """The simulated kernel's control interface: what dm-ioctl.c does for each ioctl,
    one transaction of the store per call.  ``dmctl.backend.sim.SimMapper`` presents it
    as a ``Mapper``."""

    def __init__(self, sim_dir=None):
        self.store = Store(sim_dir)
        self.env = None
        self._batch_depth = 0

    # -- transactions ---------------------------------------------------------------
    def _begin(self):
        if self.env is None:
            self.store.begin()
            self.env = SimEnv(self.store)
        else:
            self.store.begin()

    def _end(self, ok):
        if not ok:
            if self.env is not None:
                self.env.close()
            self.env = None
            self.store.rollback()
            return
        if self.store._depth == 1:
            env = self.env
            try:
                env.run_work(WORK_PER_COMMAND)
            except Exception:
                pass
            env.save()
            self.store.commit()
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
        except BaseException:
            self._end(False)
            raise
        self._end(True)
        return r

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
        self.store.close()

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
            if len(name.encode()) >= NAME_LEN:
                raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "")
            if "/" in name:
                raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "",
                              detail="device-mapper: ioctl: device name cannot contain '/'")
            if name in ("control", ".", ".."):
                raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "",
                              detail='device-mapper: ioctl: device name cannot be "control", ".", or ".."')
            u = uuid or None
            if u is not None:
                u = u.encode()[:UUID_LEN - 1].decode("utf-8", "ignore")
            if minor is not None:
                if minor >= (1 << MINORBITS) or minor < 0:
                    raise DmError(errno.EINVAL, op="create", name=name, uuid=uuid or "")
                if env.device_by_minor(minor) is not None:
                    raise DmError(errno.EBUSY, op="create", name=name, uuid=uuid or "")
                m = minor
            else:
                used = {r[0] for r in env.db.execute("SELECT minor FROM devices")}
                used |= {md.minor for md in env.devices.values() if not md.removed}
                used -= env.deleted
                m = 0
                while m in used:
                    m += 1
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
            env.devices[m] = md
            env.by_name[name] = md
            env.deleted.discard(m)
            env.mark(md)
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
            limit = UUID_LEN - 1 if set_uuid else NAME_LEN - 1
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
                md.uuid = new
            else:
                env.by_name.pop(md.name, None)
                md.name = new
                env.by_name[new] = md
            if md.has_live:
                env.table_event(md)
            env.mark(md)
            return self._status(md, base.DM_UEVENT_GENERATED_FLAG if cookie else 0)
        return self._txn(fn)

    def set_geometry(self, dev, cylinders, heads, sectors, start):
        def fn(env):
            md = self._find(env, dev, "setgeometry")
            vals = []
            for s in (cylinders, heads, sectors, start):
                s = str(s)
                if not s.isdigit():
                    raise DmError(errno.EINVAL, op="setgeometry", name=md.name,
                                  detail="device-mapper: ioctl: Unable to interpret geometry settings.")
                vals.append(int(s))
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
