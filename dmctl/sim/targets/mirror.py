"""mirror (drivers/md/dm-raid1.c, v1.14.0) in the simulator, with its region hash
(dm-region-hash.c) and dirty logs (dmctl.sim.targets.dirty_log: core, disk, userspace).

Table: ``mirror <log_type> <#log_args> <log_args>... <#mirrors> <dev> <offset>...
[<#features> handle_errors [keep_log]]``.

What is reproduced from the kernel:

* the constructor's checks in the kernel's order, with its ti->error texts, errnos
  and the dirty log's DMWARN lines; status INFO/TABLE/IMA byte for byte; no message
  method; the kernel's device order (deps: legs reversed, log device last);
* kmirrord's ``do_mirror`` pass (update region states, recovery, reads, writes,
  failures) with the region hash's states CLEAN/DIRTY/NOSYNC/RECOVERING: a write
  marks its region dirty in the log and the log is flushed before the legs are
  written; the region is cleaned (lazily, without a log flush) once every leg
  completed; NOSYNC regions are written to the default leg only; writes to a region
  being recovered wait for the recovery; reads of in-sync regions go to the default
  leg (or the next healthy one) and are retried on another leg after an error;
* recovery (kcopyd) copies one out-of-sync region at a time from the default leg to
  the others.  Starting the recovery of a region is the simulator's *background
  work* step (``work()``: one region per step, run by every dmctl command and by
  ``dmctl sim settle``); the event on the first full sync, ``reset_ms_flags``, the
  ``handle_errors`` decision on failed recoveries;
* leg failures (health letters F/D/S/R), events on the first error of each kind
  with handle_errors, the move of the default leg, and do_failures' decision
  (error / hold until suspend / pretend success) by handle_errors and keep_log.

The dm core splits bios at ``max_io_len`` (the region size) and runs a PREFLUSH
with data as an empty flush followed by the data; the simulator's core does
neither, so this target does both itself before mapping.

Held bios: a write held by do_failures cannot block a dmctl process.  Inside one
transaction (an I/O script, a batch) the bio simply stays incomplete and is ended at
suspend (EIO; EAGAIN, the simulator's "requeue", on a noflush suspend), as the
kernel's presuspend does.  When the transaction ends first, the writer is told the
I/O did not complete; the held write keeps its region's pending count (so the
region is neither cleaned nor recovered) until the next suspend drops it.
"""

import errno

from dmctl.constants import (
    DM_KCOPYD_MAX_REGIONS, DM_RAID1_FLUSH_ERROR, DM_RAID1_HANDLE_ERRORS, DM_RAID1_KEEP_LOG,
    DM_RAID1_READ_ERROR, DM_RAID1_SYNC_ERROR, DM_RAID1_WRITE_ERROR, DM_RH_CLEAN,
    DM_RH_DIRTY, DM_RH_NOSYNC, DM_RH_RECOVERING)
from dmctl.errors import TargetError
from dmctl.numbers import kernel_sscanf_u
from dmctl.sim import bio as B
from dmctl.sim.targets.base import STATUSTYPE_IMA, STATUSTYPE_INFO, STATUSTYPE_TABLE, Target
from dmctl.sim.targets.dirty_log import create as create_dirty_log
from dmctl.sim.targets.dirty_log.base import LogError

PREFIX = "device-mapper: raid1: "
MAX_RECOVERY = 1
MAX_NR_MIRRORS = DM_KCOPYD_MAX_REGIONS + 1

# kcopyd copies in sub-jobs of this many sectors
KCOPYD_CHUNK = 1024
# the simulator's "requeue" status for a bio ended by a noflush suspend
REQUEUE_ERRNO = errno.EAGAIN


class Region:
    """struct dm_region (the hash entry); ``lst`` names the list it is on."""
    __slots__ = ("key", "state", "pending", "lst")

    def __init__(self, key, state):
        self.key = key
        self.state = state
        self.pending = 0
        self.lst = None

    def __getstate__(self):
        return (self.key, self.state, self.pending, self.lst)

    def __setstate__(self, st):
        self.key, self.state, self.pending, self.lst = st


class _Rec:
    """Per-piece record (struct dm_raid1_bio_record plus the piece's parent)."""
    __slots__ = ("parent", "region", "m", "saved", "sector", "dev", "rw")

    def __init__(self, parent, region, rw):
        self.parent = parent
        self.region = region
        self.m = None
        self.saved = False
        self.sector = None
        self.rw = rw


class Mirror(Target):
    name = "mirror"
    version = (1, 14, 0)
    transient = Target.transient + ("_reads", "_writes", "_failures", "_holds", "_delayed",
                                    "_running", "_again", "_tokens", "_spins", "_copybuf")

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def ctr(cls, env, ti, argv):
        ms = cls(env, ti)
        ms._init_transient()
        ms._live = False
        argc = len(argv)
        # create_dirty_log()
        if argc < 2:
            raise TargetError(errno.EINVAL, "Insufficient mirror log arguments")
        param_count = kernel_sscanf_u(argv[1])
        if param_count is None:
            raise TargetError(errno.EINVAL, "Invalid mirror log argument count")
        if param_count > argc - 2:
            raise TargetError(errno.EINVAL, "Insufficient mirror log arguments")
        args_used = 2 + param_count
        try:
            ms.log = create_dirty_log(argv[0], ms, argv[2:2 + param_count])
        except LogError as e:
            raise TargetError(errno.EINVAL, "Error creating mirror dirty log", log=e.lines or None)
        try:
            ms._ctr_rest(argv[args_used:])
        except TargetError:
            ms.log.dtr()            # dm_dirty_log_destroy (a userspace log tells its server)
            raise
        ms.wakeup()
        return ms

    def _ctr_rest(self, argv):
        """mirror_ctr after the dirty log exists."""
        ms, env, ti = self, self.env, self.ti
        nr = kernel_sscanf_u(argv[0]) if argv else None
        if nr is None or nr < 2 or nr > MAX_NR_MIRRORS:
            raise TargetError(errno.EINVAL, "Invalid number of mirrors")
        argv = argv[1:]
        if len(argv) < nr * 2:
            raise TargetError(errno.EINVAL, "Too few mirror arguments")
        # alloc_context()
        region_size = ms.log.get_region_size()
        ms.nr_mirrors = nr
        ms.region_size = region_size
        ms.region_shift = (region_size & -region_size).bit_length() - 1
        ms.nr_regions = -(-ti.len // region_size)
        ms.features = 0
        ms.in_sync = 0
        ms.log_failure = 0
        ms.leg_failure = 0
        ms.suspend = 0
        ms.noflush = False
        ms.default_mirror = 0
        ms.legs = []
        # region hash
        ms.regions = {}
        ms.rh_lists = {"clean": [], "quiesced": [], "recovered": [], "failed": []}
        ms.flush_failure = 0
        ms.recovery_in_flight = 0
        ms.recovery_count = 0           # the semaphore; up'ed at resume
        ms.held_regions = []            # regions of held writes that outlived their process
        ms.ratelimit = {}
        for m in range(nr):
            offset = kernel_sscanf_u(argv[1], 64)
            if offset is None:
                raise TargetError(errno.EINVAL, "Invalid offset")
            try:
                dev = env.lookup_device(argv[0])
            except OSError as e:
                raise TargetError(e.errno, "Device lookup failure")
            ms.devs.append(dev.devno)
            env.get_ref(dev, ms)
            ms.legs.append({"devno": dev.devno, "offset": offset, "error_count": 0,
                            "error_type": 0})
            argv = argv[2:]
        # dm_set_target_max_io_len(region_size) cannot fail for a u32
        ti.num_flush_bios = 1
        ti.num_discard_bios = 1
        # parse_features()
        if argv:
            nf = kernel_sscanf_u(argv[0])
            if nf is None:
                raise TargetError(errno.EINVAL, "Invalid number of features")
            argv = argv[1:]
            if nf > len(argv):
                raise TargetError(errno.EINVAL, "Not enough arguments to support feature count")
            for _ in range(nf):
                if argv[0] == "handle_errors":
                    ms.features |= DM_RAID1_HANDLE_ERRORS
                elif argv[0] == "keep_log":
                    ms.features |= DM_RAID1_KEEP_LOG
                else:
                    raise TargetError(errno.EINVAL, "Unrecognised feature requested")
                argv = argv[1:]
            if not ms.errors_handled and ms.keep_log:
                raise TargetError(errno.EINVAL, "keep_log feature requires the handle_errors feature")
        if argv:
            raise TargetError(errno.EINVAL, "Too many mirror arguments")

    def _init_transient(self):
        self._reads = []
        self._writes = []
        self._failures = []
        self._holds = []
        self._delayed = {}
        self._running = False
        self._again = False
        self._tokens = 0
        self._spins = 0
        self._copybuf = None

    @property
    def errors_handled(self):
        return bool(self.features & DM_RAID1_HANDLE_ERRORS)

    @property
    def keep_log(self):
        return bool(self.features & DM_RAID1_KEEP_LOG)

    # -- persistence --------------------------------------------------------------------------
    def save(self):
        st = Target.save(self)
        # held bios cannot outlive this process: keep what they hold (their regions'
        # pending counts) until the next suspend ends them
        st["held_regions"] = list(self.held_regions) + [b.per_io.region for b in self._holds]
        return st

    def attach(self):
        self._init_transient()
        self.log.attach(self)

    def dtr(self):
        self.log.dtr()

    def device_areas(self):
        return [(leg["devno"], leg["offset"], self.ti.len) for leg in self.legs]

    def iterate_devices(self):
        return [leg["devno"] for leg in self.legs]

    # -- helpers ------------------------------------------------------------------------------
    def leg_name(self, i):
        return "%d:%d" % self.legs[i]["devno"]

    def leg_dev(self, i):
        return self.env.device_by_devno(self.legs[i]["devno"])

    def table_event(self):
        """dm_table_event(ti->table): only a bound (live) table has an event callback."""
        if self._live and self.md is not None:
            self.env.table_event(self.md)

    def klog(self, line):
        self.env.klog(PREFIX + line)

    def klog_limit(self, func, line):
        """DMERR_LIMIT/DMWARN_LIMIT: printk_ratelimited (burst 10 per 5 s per call site)."""
        import time
        now = time.time()
        st = self.ratelimit.get(func)
        if st is None:
            st = self.ratelimit[func] = [now, 0, 0]
        if now >= st[0] + 5:
            if st[2]:
                self.env.klog("%s: %d callbacks suppressed" % (func, st[2]))
                st[2] = 0
            st[0] = now
            st[1] = 0
        if st[1] < 10:
            st[1] += 1
            self.klog(line)
        else:
            st[2] += 1

    def region_of(self, sector):
        return (sector - self.ti.begin) >> self.region_shift

    # -- the region hash (dm-region-hash.c) ------------------------------------------------------
    def _list_del(self, reg):
        if reg.lst is not None:
            try:
                self.rh_lists[reg.lst].remove(reg.key)
            except ValueError:  # pragma: no cover
                pass
            reg.lst = None

    def _list_add(self, reg, name, tail=False):
        self._list_del(reg)
        lst = self.rh_lists[name]
        if tail:
            lst.append(reg.key)
        else:
            lst.insert(0, reg.key)
        reg.lst = name

    def rh_find(self, key):
        reg = self.regions.get(key)
        if reg is None:
            reg = Region(key, DM_RH_CLEAN if self.log.in_sync(key, 1) == 1 else DM_RH_NOSYNC)
            self.regions[key] = reg
            if reg.state == DM_RH_CLEAN:
                self._list_add(reg, "clean")
        return reg

    def rh_get_state(self, key, may_block):
        reg = self.regions.get(key)
        if reg is not None:
            return reg.state
        return DM_RH_CLEAN if self.log.in_sync(key, may_block) == 1 else DM_RH_NOSYNC

    def complete_resync_work(self, reg, success):
        self.log.set_region_sync(reg.key, success)
        for bio in self._delayed.pop(reg.key, []):
            self.queue_bio(bio, B.WRITE)
        self.recovery_in_flight -= 1
        self.recovery_count += 1

    def rh_mark_nosync(self, bio):
        if bio.flags & B.PREFLUSH:
            self.flush_failure = 1
            return
        if bio.op == B.DISCARD:
            return
        region = bio.per_io.region
        self.log.set_region_sync(region, 0)
        reg = self.rh_find(region)
        recovering = reg.state == DM_RH_RECOVERING
        reg.state = DM_RH_NOSYNC
        if recovering:
            self.complete_resync_work(reg, 0)

    def rh_update_states(self, errors_handled):
        grabbed = {}
        for name in ("clean", "recovered", "failed"):
            keys = self.rh_lists[name]
            self.rh_lists[name] = []
            regs = []
            for k in keys:
                reg = self.regions.pop(k, None)
                if reg is not None:
                    reg.lst = None
                    regs.append(reg)
            grabbed[name] = regs
        for reg in grabbed["recovered"]:
            self.log.clear_region(reg.key)
            self.complete_resync_work(reg, 1)
        for reg in grabbed["failed"]:
            self.complete_resync_work(reg, 0 if errors_handled else 1)
        for reg in grabbed["clean"]:
            self.log.clear_region(reg.key)
        self.log.flush()

    def rh_inc(self, key):
        reg = self.rh_find(key)
        reg.pending += 1
        if reg.state == DM_RH_CLEAN:
            reg.state = DM_RH_DIRTY
            self._list_del(reg)
            self.log.mark_region(reg.key)

    def rh_inc_pending(self, bios):
        for bio in bios:
            if bio.flags & B.PREFLUSH or bio.op == B.DISCARD:
                continue
            self.rh_inc(bio.per_io.region)

    def rh_dec(self, key):
        reg = self.regions.get(key)
        if reg is None:  # pragma: no cover - cannot happen with pending I/O
            return
        reg.pending -= 1
        if reg.pending == 0:
            if self.flush_failure:
                reg.state = DM_RH_NOSYNC
            elif reg.state == DM_RH_RECOVERING:
                self._list_add(reg, "quiesced", tail=True)
            elif reg.state == DM_RH_DIRTY:
                reg.state = DM_RH_CLEAN
                self._list_add(reg, "clean")
            self.wakeup()

    def _rh_recovery_prepare_one(self):
        r, region = self.log.get_resync_work()
        if r <= 0:
            return r
        reg = self.rh_find(region)
        reg.state = DM_RH_RECOVERING
        if reg.pending:
            self._list_del(reg)
        else:
            self._list_add(reg, "quiesced")
        return 1

    def rh_recovery_prepare(self):
        self.recovery_in_flight += 1
        while self.recovery_count > 0:
            if self._tokens <= 0 and self.log.has_resync_work():
                # starting a region's recovery is the simulator's background step; a
                # log with nothing to recover is asked at once, as kmirrord would
                break
            self.recovery_count -= 1
            self.recovery_in_flight += 1
            if self._rh_recovery_prepare_one() <= 0:
                self.recovery_in_flight -= 1
                self.recovery_count += 1
                break
            self._tokens = max(0, self._tokens - 1)
        self.recovery_in_flight -= 1

    def rh_recovery_start(self):
        q = self.rh_lists["quiesced"]
        if not q:
            return None
        key = q.pop(0)
        reg = self.regions[key]
        reg.lst = None
        return reg

    def rh_recovery_end(self, reg, success):
        self._list_add(reg, "recovered" if success else "failed")
        self.wakeup()

    def rh_delay(self, bio):
        self.rh_find(bio.per_io.region)
        self._delayed.setdefault(bio.per_io.region, []).append(bio)

    # -- kmirrord ------------------------------------------------------------------------------
    def wakeup(self):
        """wakeup_mirrord: run do_mirror now (again, if it is running)."""
        if self._running:
            self._again = True
            return
        self._running = True
        self._spins = 0
        try:
            self._again = True
            while self._again:
                self._again = False
                self.do_mirror()
        finally:
            self._running = False

    def queue_bio(self, bio, rw):
        (self._writes if rw == B.WRITE else self._reads).append(bio)
        self.wakeup()

    def do_mirror(self):
        reads, self._reads = self._reads, []
        writes, self._writes = self._writes, []
        failures, self._failures = self._failures, []
        self.rh_update_states(self.errors_handled)
        self.do_recovery()
        self.do_reads(reads)
        self.do_writes(writes)
        self.do_failures(failures)

    # -- legs ------------------------------------------------------------------------------------
    def get_valid_mirror(self):
        for i, leg in enumerate(self.legs):
            if not leg["error_count"]:
                return i
        return None

    def fail_mirror(self, i, error_type):
        leg = self.legs[i]
        self.leg_failure = 1
        leg["error_count"] += 1
        if leg["error_type"] & (1 << error_type):
            return
        leg["error_type"] |= 1 << error_type
        if not self.errors_handled:
            return
        if i == self.default_mirror:
            if not self.in_sync and not self.keep_log:
                self.klog("Primary mirror (%s) failed while out-of-sync: Reads may fail."
                          % self.leg_name(i))
            else:
                new = self.get_valid_mirror()
                if new is not None:
                    self.default_mirror = new
                else:
                    self.env.klog("device-mapper: raid1: All sides of mirror have failed.")
        self.table_event()

    def reset_ms_flags(self):
        self.leg_failure = 0
        for leg in self.legs:
            leg["error_count"] = 0
            leg["error_type"] = 0

    def _dm_io(self, op, flags, regions, data, root, callback):
        """dm_io to several (leg, sector, count) regions; ``callback(error_bits)`` once
        all completed (bit i set when region i failed)."""
        state = {"left": len(regions), "bits": 0}

        def done_one(i):
            def cb(b):
                if b.error:
                    state["bits"] |= 1 << i
                state["left"] -= 1
                if state["left"] == 0:
                    callback(state["bits"])
            return cb

        if not regions:
            callback(0)
            return
        for i, (leg, sector, count) in enumerate(regions):
            b = B.Bio(op, sector, count, data if count else None, flags)
            b.root = root
            b.end_io = done_one(i)
            self._submit_leaf(leg, b)

    def mirror_flush(self):
        """The log's flush callback: an empty PREFLUSH to every leg (synchronous)."""
        res = {}
        self._dm_io(B.WRITE, B.PREFLUSH,
                    [(i, 0, 0) for i in range(self.nr_mirrors)], None, None,
                    lambda bits: res.setdefault("bits", bits))
        bits = res.get("bits", 0)
        if bits:
            for i in range(self.nr_mirrors):
                if bits & (1 << i):
                    self.fail_mirror(i, DM_RAID1_FLUSH_ERROR)
            return -errno.EIO
        return 0

    # -- recovery --------------------------------------------------------------------------------
    def recovery_complete(self, reg, read_err, write_err):
        if read_err:
            self.klog_limit("recovery_complete", "Unable to read primary mirror during recovery")
            self.fail_mirror(self.default_mirror, DM_RAID1_SYNC_ERROR)
        if write_err:
            self.klog_limit("recovery_complete",
                            "Write error during recovery (error = 0x%x)" % write_err)
            bit = 0
            for m in range(self.nr_mirrors):
                if m == self.default_mirror:
                    continue
                if write_err & (1 << bit):
                    self.fail_mirror(m, DM_RAID1_SYNC_ERROR)
                bit += 1
        self.rh_recovery_end(reg, not (read_err or write_err))

    def recover(self, reg):
        """kcopyd: copy the region from the default leg to the others."""
        key = reg.key
        src = self.default_mirror
        count = self.region_size
        if key == self.nr_regions - 1:
            count = self.ti.len & (self.region_size - 1) or self.region_size
        dests = [m for m in range(self.nr_mirrors) if m != src]
        ignore_error = not self.errors_handled
        base = key << self.region_shift
        read_err = 0
        write_err = 0
        done = 0
        # kcopyd's pages: one buffer per target, reused, when every destination is a
        # backing file (it takes the data at submission); a stacked device may keep
        # a queued write's data, so it gets a copy of its own
        try:
            direct = not any(self.leg_dev(m).is_dm for m in dests)
        except OSError:
            direct = False
        if self._copybuf is None:
            self._copybuf = bytearray(KCOPYD_CHUNK << 9)
        while done < count:
            n = min(KCOPYD_CHUNK, count - done)
            buf = memoryview(self._copybuf)[:n << 9]
            rb = B.Bio(B.READ, self.legs[src]["offset"] + base + done, n, buf)
            try:
                self.leg_dev(src).submit(rb)
                rerr = rb.error if rb.done else errno.EIO
            except OSError:
                rerr = errno.EIO
            if rerr:
                read_err = 1
                if not ignore_error:
                    break
            res = {}
            self._dm_io(B.WRITE, 0,
                        [(m, self.legs[m]["offset"] + base + done, n) for m in dests],
                        buf if direct else bytes(buf), None,
                        lambda bits: res.setdefault("bits", bits))
            bits = res.get("bits", 0)
            if bits:
                write_err |= bits
                if not ignore_error:
                    break
            done += n
        self.recovery_complete(reg, read_err, write_err)

    def do_recovery(self):
        self.rh_recovery_prepare()
        while True:
            reg = self.rh_recovery_start()
            if reg is None:
                break
            self.recover(reg)
        if not self.in_sync and self.log.get_sync_count() == self.nr_regions:
            self.table_event()
            self.in_sync = 1
            self.reset_ms_flags()

    # -- reads -------------------------------------------------------------------------------------
    def choose_mirror(self):
        m = self.default_mirror
        while True:
            if not self.legs[m]["error_count"]:
                return m
            m = m - 1 if m > 0 else self.nr_mirrors - 1
            if m == self.default_mirror:
                return None

    def default_ok(self):
        return not self.legs[self.default_mirror]["error_count"]

    def mirror_available(self, bio):
        if self.log.in_sync(bio.per_io.region, 0) == 1:
            return self.choose_mirror() is not None
        return False

    def _leaf(self, m, bio):
        """A bio for leg ``m`` covering ``bio`` (map_region/map_bio)."""
        sector = 0
        if bio.nr_sectors:
            sector = self.legs[m]["offset"] + (bio.sector - self.ti.begin)
        lb = B.Bio(bio.op, sector, bio.nr_sectors, bio.data, bio.flags)
        lb.root = bio.root
        return lb

    def _submit_leaf(self, m, lb):
        try:
            dev = self.leg_dev(m)
        except OSError:
            B.bio_endio(lb, errno.EIO)
            return
        dev.submit(lb)

    def read_async_bio(self, m, bio):
        lb = self._leaf(m, bio)
        lb.end_io = lambda b: self.read_callback(m, bio, b.error)
        self._submit_leaf(m, lb)

    def read_callback(self, m, bio, error):
        if not error:
            self.piece_endio(bio, 0)
            return
        self.fail_mirror(m, DM_RAID1_READ_ERROR)
        if self.default_ok() or self.mirror_available(bio):
            self.klog_limit("read_callback", "Read failure on mirror device %s.  "
                            "Trying alternative device." % self.leg_name(m))
            self.queue_bio(bio, B.READ)
            return
        self.klog_limit("read_callback", "Read failure on mirror device %s.  Failing I/O."
                        % self.leg_name(m))
        self.piece_endio(bio, errno.EIO)

    def region_in_sync(self, region, may_block):
        return self.rh_get_state(region, may_block) in (DM_RH_CLEAN, DM_RH_DIRTY)

    def do_reads(self, reads):
        for bio in reads:
            region = bio.per_io.region
            m = self.default_mirror
            if self.region_in_sync(region, 1):
                m = self.choose_mirror()
            elif self.legs[m]["error_count"]:
                m = None
            if m is not None:
                self.read_async_bio(m, bio)
            else:
                self.piece_endio(bio, errno.EIO)

    def _map_read(self, bio):
        """mirror_map for a read piece."""
        r = self.log.in_sync(bio.per_io.region, 0)
        if r < 0 and r != -errno.EWOULDBLOCK:
            self.piece_endio(bio, errno.EIO)
            return
        if not r or r == -errno.EWOULDBLOCK:
            self.queue_bio(bio, B.READ)
            return
        m = self.choose_mirror()
        if m is None:
            self.piece_endio(bio, errno.EIO)
            return
        rec = bio.per_io
        rec.saved = True
        rec.m = m
        lb = self._leaf(m, bio)
        lb.end_io = lambda b: self._remapped_read_done(bio, b.error)
        self._submit_leaf(m, lb)

    def _remapped_read_done(self, bio, error):
        """mirror_end_io for a read that map() sent straight to a leg."""
        rec = bio.per_io
        if error and error != errno.EOPNOTSUPP:
            if not rec.saved:
                self.klog_limit("mirror_end_io", "Mirror read failed.")
                self.piece_endio(bio, error)
                return
            m = rec.m
            self.klog("Mirror read failed from %s. Trying alternative device." % self.leg_name(m))
            self.fail_mirror(m, DM_RAID1_READ_ERROR)
            if self.default_ok() or self.mirror_available(bio):
                rec.saved = False
                self.queue_bio(bio, B.READ)
                return
            self.klog("All replicated volumes dead, failing I/O")
        rec.saved = False
        self.piece_endio(bio, error)

    # -- writes ------------------------------------------------------------------------------------
    def write_callback(self, bio, error_bits):
        if not error_bits:
            self.piece_endio(bio, 0)
            return
        if bio.op == B.DISCARD:
            self.piece_endio(bio, errno.EOPNOTSUPP)
            return
        for i in range(self.nr_mirrors):
            if error_bits & (1 << i):
                self.fail_mirror(i, DM_RAID1_WRITE_ERROR)
        self._failures.append(bio)
        self.wakeup()

    def do_write(self, bio):
        op = B.DISCARD if bio.op == B.DISCARD else B.WRITE
        flags = bio.flags & (B.FUA | B.PREFLUSH)
        regions = []
        for m in range(self.nr_mirrors):
            sector = self.legs[m]["offset"] + (bio.sector - self.ti.begin) if bio.nr_sectors else 0
            regions.append((m, sector, bio.nr_sectors))
        data = None if op == B.DISCARD else bio.data
        self._dm_io(op, flags, regions, data, bio.root,
                    lambda bits: self.write_callback(bio, bits))

    def do_writes(self, writes):
        if not writes:
            return
        sync, nosync, recover, requeue = [], [], [], []
        for bio in writes:
            if bio.flags & B.PREFLUSH or bio.op == B.DISCARD:
                sync.append(bio)
                continue
            region = bio.per_io.region
            if self.log.has_is_remote_recovering and self.log.is_remote_recovering(region):
                requeue.append(bio)
                continue
            state = self.rh_get_state(region, 1)
            if state in (DM_RH_CLEAN, DM_RH_DIRTY):
                sync.append(bio)
            elif state == DM_RH_NOSYNC:
                nosync.append(bio)
            else:
                recover.append(bio)
        if requeue:
            # delayed_wake (HZ/5): meanwhile the cluster recovers the region (cmirrord
            # puts it first in line), so retry with one region of recovery allowed
            self._writes.extend(requeue)
            self._spins += 1
            if self._spins <= 2 * self.nr_regions + 8:
                self._tokens = max(self._tokens, 1)
                self._again = True
        self.rh_inc_pending(sync)
        self.rh_inc_pending(nosync)
        if self.log.flush():
            self.log_failure = 1
        if self.log_failure and self.errors_handled:
            self._failures.extend(sync)
            if sync:
                self.wakeup()
        else:
            for bio in sync:
                self.do_write(bio)
        for bio in recover:
            self.rh_delay(bio)
        for bio in nosync:
            if self.leg_failure and self.errors_handled and not self.keep_log:
                self._failures.append(bio)
                self.wakeup()
            else:
                m = self.default_mirror
                lb = self._leaf(m, bio)
                lb.end_io = lambda b, bio=bio: self.piece_endio(bio, b.error)
                self._submit_leaf(m, lb)

    def do_failures(self, failures):
        for bio in failures:
            if not self.log_failure:
                self.in_sync = 0
                self.rh_mark_nosync(bio)
            if self.get_valid_mirror() is None or (self.keep_log and self.log_failure):
                self.piece_endio(bio, errno.EIO)
            elif self.errors_handled and not self.keep_log:
                self.hold_bio(bio)
            else:
                self.piece_endio(bio, 0)

    def hold_bio(self, bio):
        if self.suspend:
            self.piece_endio(bio, REQUEUE_ERRNO if self.noflush else errno.EIO)
            return
        self._holds.append(bio)

    # -- map / end_io --------------------------------------------------------------------------
    def map(self, bio):
        rw = B.READ if bio.op == B.READ else B.WRITE
        bio.per_io = None
        if self.md is not None:
            # every bio may change the region hash, the log or the legs' health
            self.env.mark(self.md)
        if rw == B.WRITE and bio.flags & B.PREFLUSH and bio.nr_sectors:
            # dm core: the preflush first (an empty flush), then the data without it
            def after_flush(err):
                if err:
                    B.bio_endio(bio, err)
                    return
                self._submit_pieces(bio, rw, bio.flags & ~B.PREFLUSH)
            self._submit_pieces(bio, rw, bio.flags & ~B.FUA, only_flush=True, then=after_flush)
            return B.DM_MAPIO_SUBMITTED
        self._submit_pieces(bio, rw, bio.flags)
        return B.DM_MAPIO_SUBMITTED

    def _submit_pieces(self, bio, rw, flags, only_flush=False, then=None):
        """Split ``bio`` at region boundaries (max_io_len) and map each piece."""
        pieces = []
        if only_flush or not bio.nr_sectors:
            p = B.Bio(bio.op if not only_flush else B.WRITE, self.ti.begin if only_flush else bio.sector,
                      0, None, flags)
            pieces.append(p)
        else:
            sector = bio.sector
            end = bio.sector + bio.nr_sectors
            mv = memoryview(bio.data) if bio.data is not None else None
            while sector < end:
                boundary = self.ti.begin + (((sector - self.ti.begin) >> self.region_shift) + 1) \
                    * self.region_size
                n = min(end, boundary) - sector
                d = None
                if mv is not None:
                    off = (sector - bio.sector) << 9
                    d = mv[off:off + (n << 9)]
                pieces.append(B.Bio(bio.op, sector, n, d, flags))
                sector += n
        agg = {"left": len(pieces), "err": 0}

        def piece_done(p):
            if p.error and not agg["err"]:
                agg["err"] = p.error
            agg["left"] -= 1
            if agg["left"] == 0:
                if then is not None:
                    then(agg["err"])
                else:
                    B.bio_endio(bio, agg["err"])

        for p in pieces:
            p.root = bio.root if bio.root is not None else bio
            p.end_io = piece_done
            p.per_io = _Rec(bio, self.region_of(p.sector), rw)
        if rw == B.WRITE:
            # the pieces reach kmirrord's queue together, as the dm core submits them
            self._writes.extend(pieces)
            self.wakeup()
        else:
            for p in pieces:
                self._map_read(p)

    def piece_endio(self, bio, error):
        """mirror_end_io's write part (dm_rh_dec), then the piece completes."""
        rec = bio.per_io
        if rec.rw == B.WRITE and not (bio.flags & B.PREFLUSH) and bio.op != B.DISCARD:
            self.rh_dec(rec.region)
        bio.error = 0
        B.bio_endio(bio, error)

    def end_io(self, bio, error):
        return B.DM_ENDIO_DONE

    # -- lifecycle ---------------------------------------------------------------------------------
    def presuspend(self, noflush=False):
        self.suspend = 1
        self.noflush = bool(noflush)
        holds, self._holds = self._holds, []
        for bio in holds:
            self.hold_bio(bio)
        # writes held by an earlier process: end them (their writer is gone)
        held, self.held_regions = self.held_regions, []
        for region in held:
            self.rh_dec(region)
        # dm_rh_stop_recovery: recovery in the simulator never stays in flight
        for _ in range(MAX_RECOVERY):
            if self.recovery_count > 0:
                self.recovery_count -= 1
        if self.log.presuspend():
            self.klog("log presuspend failed")
        self.wakeup()

    def postsuspend(self):
        if self.log.postsuspend():
            self.klog("log postsuspend failed")

    def resume(self):
        self._live = True
        self.suspend = 0
        self.noflush = False
        if self.log.resume():
            self.klog("log resume failed")
        self.recovery_count += MAX_RECOVERY
        self.wakeup()

    # -- background work: recovery, one region per step ------------------------------------------
    def work(self, budget):
        if self.suspend or not self._live:
            return 0
        n = 0
        while n < budget:
            if self.recovery_count <= 0 or not self.log.has_resync_work():
                break
            self._tokens = 1
            try:
                self.wakeup()
            finally:
                used = self._tokens == 0
                self._tokens = 0
            if not used:
                break
            n += 1
        return n

    def work_pending(self):
        """Whether ``work`` may find a region to recover later without this device
        being touched (a userspace log's server hands out work): the simulator keeps
        such a device in its index of devices with background work."""
        return (not self.suspend and self._live and self.recovery_count > 0
                and self.log.has_resync_work())

    # -- status ------------------------------------------------------------------------------------
    def device_status_char(self, i):
        leg = self.legs[i]
        if not leg["error_count"]:
            return "A"
        t = leg["error_type"]
        if t & (1 << DM_RAID1_FLUSH_ERROR):
            return "F"
        if t & (1 << DM_RAID1_WRITE_ERROR):
            return "D"
        if t & (1 << DM_RAID1_SYNC_ERROR):
            return "S"
        if t & (1 << DM_RAID1_READ_ERROR):
            return "R"
        return "U"

    def status(self, type_, noflush=False):
        nr = self.nr_mirrors
        if type_ == STATUSTYPE_INFO:
            s = "%d " % nr
            s += "".join("%s " % self.leg_name(m) for m in range(nr))
            health = "".join(self.device_status_char(m) for m in range(nr))
            s += "%d/%d 1 %s " % (self.log.get_sync_count(), self.nr_regions, health)
            return s + self.log.status(type_)
        if type_ == STATUSTYPE_TABLE:
            s = self.log.status(type_)
            s += "%d" % nr
            for m in range(nr):
                s += " %s %d" % (self.leg_name(m), self.legs[m]["offset"])
            nf = int(self.errors_handled) + int(self.keep_log)
            if nf:
                s += " %d" % nf
                if self.errors_handled:
                    s += " handle_errors"
                if self.keep_log:
                    s += " keep_log"
            return s
        s = "target_name=%s,target_version=%d.%d.%d" % ((self.name,) + self.version)
        s += ",nr_mirrors=%d" % nr
        for m in range(nr):
            s += ",mirror_device_%d=%s" % (m, self.leg_name(m))
            s += ",mirror_device_%d_status=%s" % (m, self.device_status_char(m))
        s += ",handle_errors=%s" % ("y" if self.errors_handled else "n")
        s += ",keep_log=%s" % ("y" if self.keep_log else "n")
        s += ",log_type_status=" + self.log.status(STATUSTYPE_IMA) + ";"
        return s
