"""log-writes (drivers/md/dm-log-writes.c, v1.1.0) in the simulator.

Ordering rules, as the kernel's map/end_io/kthread implement them:
* a write's payload is copied at map time; the block is logged when it completes;
* plain writes and discards wait on the "unflushed" list (in completion order);
* an empty flush takes over the unflushed list at *map* time (the writes that had
  completed before it was issued); when the flush completes, those writes and then
  the flush entry go to the logging queue;
* FUA writes go to the logging queue at completion; marks go there at once;
* the logging thread writes queued entries to the log device (dmctl.formats.log_writes
  lays them out); the super is rewritten only after FUA or MARK entries;
* the destructor moves unflushed writes to the queue, logs "dm-log-writes-end" and
  waits until everything is written;
* running out of log space or a log write error disables logging.
The logging thread is the target's background work: it runs in bounded steps as
part of every dmctl command, to completion on ``dmctl sim settle`` and on removal.
"""

import errno

from dmctl.errors import TargetError
from dmctl.sim import bio as B
from dmctl.sim.targets.base import STATUSTYPE_INFO, STATUSTYPE_TABLE, Target

LOG_FLUSH = 1
LOG_FUA = 2
LOG_DISCARD = 4
LOG_MARK = 8
LOG_METADATA = 16
PREFIX = "device-mapper: log-writes: "


class LogWrites(Target):
    name = "log-writes"
    discards_supported = True      # log_writes_ctr: ti->discards_supported = true
    # its logging kthread knows nothing of suspend: a mark sent to a suspended device
    # is logged at once
    works_while_suspended = True
    version = (1, 1, 0)
    transient = Target.transient + ("writer",)

    @classmethod
    def ctr(cls, env, ti, argv):
        t = cls(env, ti)
        if len(argv) < 2:           # extra arguments are ignored, as the kernel does
            raise TargetError(errno.EINVAL, "Invalid argument count")
        dev = t.get_device(argv[0], "Device lookup failed")
        t.dev_devno = dev.devno
        logdev = t.get_device(argv[1], "Log device lookup failed")
        t.logdev_devno = logdev.devno
        t.sectorsize = dev.logical_block_size
        t.unflushed = []            # blocks (dicts) in completion order
        t.logging = []              # the logging queue
        t.next_sector = t.sectorsize >> 9
        t.end_sector = logdev.size
        t.logged_entries = 0
        t.logging_enabled = True
        # log_writes_ctr: discards the data device cannot take are logged and then
        # completed here instead of being passed down
        t.device_supports_discard = env.device_takes_discards(dev)
        ti.num_flush_bios = 1
        ti.num_discard_bios = 1
        t.attach()
        return t

    def attach(self):
        from dmctl.formats.log_writes import LogWriter
        w = LogWriter(self.sectorsize, self._log_write, self.end_sector, dmerr=self._dmerr)
        w.next_sector = self.next_sector
        w.logged_entries = self.logged_entries
        w.logging_enabled = self.logging_enabled
        self.writer = w

    def save(self):
        w = self.writer
        self.next_sector = w.next_sector
        self.logged_entries = w.logged_entries
        self.logging_enabled = w.logging_enabled
        return Target.save(self)

    def _dmerr(self, text):
        self.env.klog(PREFIX + text)

    def _log_write(self, offset, data):
        dev = self.env.device_by_devno(self.logdev_devno)
        data = bytes(data)
        if len(data) % 512:
            data += bytes(512 - len(data) % 512)
        b = B.Bio(B.WRITE, offset >> 9, len(data) >> 9, data)
        dev.submit(b)
        if b.error:
            raise OSError(b.error, "log write failed")

    def device_areas(self):
        return [(self.dev_devno, 0, self.ti.len)]

    # -- I/O ----------------------------------------------------------------------------
    def _to_dev(self, sectors):
        return sectors >> ((self.sectorsize.bit_length() - 1) - 9)

    def map(self, bio):
        bio.per_io = None
        w = self.writer
        bio.dev = self.env.device_by_devno(self.dev_devno)
        if not w.logging_enabled or bio.op == B.READ:
            return B.DM_MAPIO_REMAPPED
        flush = bool(bio.flags & B.PREFLUSH)
        if not bio.nr_sectors and not flush:
            return B.DM_MAPIO_REMAPPED
        block = {"flags": 0, "sector": self._to_dev(bio.sector),
                 "nr_sectors": self._to_dev(bio.nr_sectors), "data": None, "list": None}
        if flush:
            block["flags"] |= LOG_FLUSH
        if bio.flags & B.FUA:
            block["flags"] |= LOG_FUA
        if bio.op == B.DISCARD:
            block["flags"] |= LOG_DISCARD
        if bio.flags & B.META:
            block["flags"] |= LOG_METADATA
        bio.per_io = block
        if bio.op == B.DISCARD:
            if self.device_supports_discard:
                return B.DM_MAPIO_REMAPPED
            B.bio_endio(bio, 0)
            return B.DM_MAPIO_SUBMITTED
        if flush and not bio.nr_sectors:
            block["list"] = self.unflushed
            self.unflushed = []
            return B.DM_MAPIO_REMAPPED
        block["data"] = bytes(bio.data[:bio.nr_sectors << 9])
        if flush:
            block["list"] = self.unflushed
            self.unflushed = []
        return B.DM_MAPIO_REMAPPED

    def end_io(self, bio, error):
        block = bio.per_io
        if bio.op != B.READ and block is not None:
            bio.per_io = None
            if block["flags"] & LOG_FLUSH:
                self.logging.extend(block["list"] or [])
                block["list"] = None
                self.logging.append(block)
            elif block["flags"] & LOG_FUA:
                self.logging.append(block)
            else:
                self.unflushed.append(block)
        return B.DM_ENDIO_DONE

    # -- the logging thread ------------------------------------------------------------
    def work(self, budget):
        n = 0
        w = self.writer
        while self.logging and n < budget:
            block = self.logging.pop(0)
            n += 1
            if not w.logging_enabled:
                continue
            if block["flags"] & LOG_MARK:
                w.log_block(0, 0, LOG_MARK, mark=block["data"])
            else:
                w.log_block(block["sector"], block["nr_sectors"], block["flags"],
                            block["data"] or b"")
        return n

    def _log_mark(self, text):
        from dmctl.formats.log_writes import truncate_mark
        self.logging.append({"flags": LOG_MARK, "sector": 0, "nr_sectors": 0,
                             "data": truncate_mark(text, self.sectorsize), "list": None})

    def dtr(self):
        self.logging.extend(self.unflushed)
        self.unflushed = []
        self._log_mark("dm-log-writes-end")
        while self.logging:
            self.work(1 << 30)

    # -- status and messages -----------------------------------------------------------
    def status(self, type_, noflush=False):
        if type_ == STATUSTYPE_INFO:
            return self.writer.status_info()
        if type_ == STATUSTYPE_TABLE:
            return "%d:%d %d:%d" % (self.dev_devno + self.logdev_devno)
        return ""

    has_message = True

    def message(self, argv):
        if len(argv) != 2:
            text = "Invalid log-writes message arguments, expect 2 arguments, got %d" % len(argv)
            raise TargetError(errno.EINVAL, text, log=PREFIX + text)
        if argv[0].lower() != "mark":
            text = "Unrecognised log writes target message received: %s" % argv[0]
            raise TargetError(errno.EINVAL, text, log=PREFIX + text)
        self._log_mark(argv[1])
        return None
