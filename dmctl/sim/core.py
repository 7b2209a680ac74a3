"""The simulated kernel's dm core (drivers/md/dm.c, dm-table.c): mapped devices, their
live and inactive tables, bio submission and splitting, background work, power cuts,
and the state saved between dmctl processes.

``SimEnv`` is one process's view of the kernel during one transaction of the store; it is
the environment every target is given (``Target.env``): targets reach devices, the kernel
log and the store only through it, never by importing this module.
What each ioctl does with it is ``dmctl.sim.dm_ioctl`` (``SimKernel``).

Arrows: dm_ioctl -> core -> targets (by name, through ``targets.base``'s registry), bio,
blockdev (backing files), store.
"""

import errno
import os

from dmctl.constants import DM_MAJOR, LOOP_MAJOR
from dmctl.errors import DmError, TargetError, errno_name


class _LazyBio:
    """dmctl.sim.bio, imported on first use (queries never need it)."""

    def __getattr__(self, name):
        from dmctl.sim import bio
        globals()['B'] = bio
        return getattr(bio, name)


B = _LazyBio()

# background work done as part of every command (bounded), as kernel worker threads
# would make progress while the user types the next command
WORK_PER_COMMAND = 64


def _kernel_name(devno):
    if devno[0] == DM_MAJOR:
        return "dm-%d" % devno[1]
    if devno[0] == LOOP_MAJOR:
        return "loop%d" % devno[1]
    return "%d:%d" % devno


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
                if not env.device_takes_discards(env.device_by_devno(devno)):
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
        self.by_uuid = {}
        self.backing = {}       # minor -> BackingFile
        self.backing_by_path = {}
        self.dirty_devices = set()
        self.dirty_backing = set()
        self.deleted = set()
        self.log = []           # kernel log lines produced in this transaction
        self.work_targets = []
        self.idle = set()       # devices run_work found without background work
        self._floor = None      # every minor below it is in use (free_minor)
        self._floor_saved = None

    # -- kernel log -----------------------------------------------------------------
    def klog(self, line):
        self.log.append(line)

    # -- devices --------------------------------------------------------------------
    # Devices are found through the table's indexes (minor is the primary key, name and
    # uuid are unique): a command loads the rows it names, and a table is unpickled
    # only when it is used (SimDevice.get_live).  A row loaded here may have been
    # renamed, removed or replaced in this transaction: lookups check the loaded device.
    _COLS = ("minor, name, uuid, suspended, deferred, open_count, event_nr, ro, "
             "read_ahead, geometry, size, live, inactive")

    def _load_row(self, row):
        md = self.devices.get(row[0])
        if md is not None:
            return md
        md = SimDevice(self, row)
        self.devices[md.minor] = md
        self.by_name[md.name] = md
        if md.uuid:
            self.by_uuid[md.uuid] = md
        return md

    def add_device(self, md):
        """A device created in this transaction."""
        self.devices[md.minor] = md
        self.by_name[md.name] = md
        if md.uuid:
            self.by_uuid[md.uuid] = md
        self.deleted.discard(md.minor)
        self.mark(md)

    def set_name(self, md, name):
        self.by_name.pop(md.name, None)
        md.name = name
        self.by_name[name] = md

    def set_uuid(self, md, uuid):
        if md.uuid:
            self.by_uuid.pop(md.uuid, None)
        md.uuid = uuid
        if uuid:
            self.by_uuid[uuid] = md

    def _minor_floor(self):
        if self._floor is None:
            v = self.store.get_meta("minor_floor")
            self._floor = self._floor_saved = v if isinstance(v, int) and v >= 0 else 0
        return self._floor

    def free_minor(self):
        """The lowest minor no device has (idr_alloc from 0), by index lookups: minors
        below the floor (kept in meta ``minor_floor``) are known to be in use, so
        creating many devices does not search from 0 each time."""
        db = self.db
        m = self._minor_floor()
        while True:
            md = self.devices.get(m)
            if md is not None and not md.removed:
                m += 1
                continue
            if md is not None or m in self.deleted:
                break
            if db.execute("SELECT 1 FROM devices WHERE minor=?", (m,)).fetchone() is None:
                break
            # the next hole in the table after m
            m = db.execute("SELECT d.minor + 1 FROM devices d WHERE d.minor >= ? AND NOT EXISTS"
                           " (SELECT 1 FROM devices e WHERE e.minor = d.minor + 1)"
                           " ORDER BY d.minor LIMIT 1", (m,)).fetchone()[0]
        if self.deleted:
            # a device removed in this transaction frees its minor (its row goes at save)
            m = min(m, min(self.deleted))
        self._floor = m
        return m

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
        return md if not md.removed and md.name == name else None

    def device_by_uuid(self, uuid):
        md = self.by_uuid.get(uuid)
        if md is not None and not md.removed and md.uuid == uuid:
            return md
        row = self.db.execute("SELECT %s FROM devices WHERE uuid=?" % self._COLS,
                              (uuid,)).fetchone()
        if row is None:
            return None
        md = self._load_row(row)
        return md if not md.removed and md.uuid == uuid else None

    def all_devices(self):
        """Every device, by name (loads every row; tables stay pickled until used)."""
        rows = self.db.execute("SELECT %s FROM devices" % self._COLS).fetchall()
        out = {}
        for r in rows:
            md = self._load_row(r)
            if not md.removed:
                out[md.minor] = md
        for md in self.devices.values():
            if not md.removed:
                out.setdefault(md.minor, md)
        out = list(out.values())
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
        if maj == LOOP_MAJOR:
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

    def device_takes_discards(self, dev):
        """bdev_max_discard_sectors(dev) != 0: a backing file always (holes are punched),
        a dm device when its live table takes discards."""
        if not dev.is_dm:
            return True
        lt = dev.get_live()
        return lt is not None and lt.supports_discards(self)

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
        if self.by_name.get(md.name) is md:
            del self.by_name[md.name]
        if md.uuid and self.by_uuid.get(md.uuid) is md:
            del self.by_uuid[md.uuid]
        self._floor = min(self._minor_floor(), md.minor)

    # -- events ---------------------------------------------------------------------------
    def table_event(self, md):
        md.event_nr += 1
        self.mark(md)

    def io_while_suspended(self, md, bio):
        # The kernel queues I/O to a suspended device until resume; a dmctl process
        # cannot sleep until another process resumes it, so the I/O fails with EAGAIN
        # and the caller is told why.
        B.bio_endio(bio, errno.EAGAIN)

    # -- power cut --------------------------------------------------------------------------
    def power_cut(self, rng=None):
        """The host loses power: every device and all in-core target state vanish; every
        backing file keeps its durable contents (with ``rng``: a random subset of the
        non-durable blocks survives); the host's log daemon dies with it (its node leaves
        the cluster).  Returns {path: (reverted, survived)}."""
        result = {}
        for bf in sorted(self.all_backing(), key=lambda b: b.minor):
            result[bf.path] = bf.cache.crash(bf.fd, rng)
            self.note_cache(bf)
        for md in self.all_devices():
            self.destroy_device(md)
        # the kernel side of the userspace dirty log holds the connector to the log
        # daemon (dmctl.sim.targets.dirty_log.userspace): the daemon learns that this
        # host went away, if a userspace log was ever made here
        from dmctl.sim.targets.dirty_log import userspace
        if self.store.get_meta(userspace.META_LUID) is not None:
            userspace.host_crashed(self)
        return result

    # -- background work ------------------------------------------------------------------
    # Only devices that may have work are visited: those the table's ``work`` index
    # names (a target had work, or may get some from outside, when it was last saved)
    # and those changed in this transaction.  An idle device costs nothing.
    def _work_candidates(self, flagged):
        cands = {md.minor: md for md in flagged if not md.removed}
        for md in self.dirty_devices:
            if not md.removed:
                cands.setdefault(md.minor, md)
        return sorted(cands.values(), key=lambda m: m.name.encode("utf-8", "surrogateescape"))

    def flagged_devices(self):
        """The devices the work index names (rows loaded, tables not unpickled)."""
        rows = self.db.execute("SELECT %s FROM devices WHERE work <> 0" % self._COLS).fetchall()
        out = []
        for r in rows:
            md = self._load_row(r)
            if not md.removed:
                out.append(md)
        return out

    def run_work(self, budget=None):
        """Run targets' background work: ``budget`` steps, or until idle (None)."""
        total = 0
        self.idle = set()
        flagged = self.flagged_devices()
        while True:
            did = 0
            idle = set()
            for md in self._work_candidates(flagged):
                lt = md.get_live()
                busy = False
                if lt is not None:
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
                            busy = True
                            self.mark(md)
                        else:
                            pending = getattr(t, "work_pending", None)
                            if pending is not None and pending():
                                busy = True
                if not busy:
                    idle.add(md)
            if not did:
                # a whole pass found nothing to do: these devices are idle
                self.idle = idle
                return total

    def regions_to_resync(self):
        """Regions the mirrors of the devices with background work have still to
        recover: nr_regions less the dirty log's sync count (what their status shows)."""
        left = 0
        for md in self._work_candidates(self.flagged_devices()):
            lt = md.get_live()
            for t in lt.targets if lt is not None else ():
                log = getattr(t, "log", None)
                regions = getattr(t, "nr_regions", None)
                if regions is not None and log is not None:
                    left += max(0, regions - log.get_sync_count())
        return left

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
            # the size of a table not unpickled in this transaction is the stored one
            size = md.live.size if md.live is not None else (
                (md._size or 0) if live is not None else 0)
            db.execute("INSERT OR REPLACE INTO devices(%s, work) "
                       "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)" % self._COLS,
                       (md.minor, md.name, md.uuid or None, int(md.suspended),
                        int(md.deferred), md.open_count, md.event_nr, int(md.ro),
                        md.read_ahead, md.geometry, size, live, inactive,
                        0 if md in self.idle else 1))
        for md in self.idle:
            if md not in self.dirty_devices and not md.removed:
                db.execute("UPDATE devices SET work=0 WHERE minor=? AND work<>0", (md.minor,))
        if self._floor is not None and self._floor != self._floor_saved:
            self.store.set_meta("minor_floor", self._floor)
            self._floor_saved = self._floor
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
