"""The ``disk`` dirty log (dm-log.c): the core log's bitsets plus a persistent copy
of the clean bits on a log device, in the kernel's format (dmctl.formats.mirror_log).

``disk <#params 2|3> <log_dev> <region_size> [sync|nosync]``.

All log device I/O goes through simulated bios, so the device's volatile write cache
and ``dmctl sim crash`` apply: a region marked dirty is written *and flushed* before
the mirror writes to it; a region cleaned later is written without a flush (the
kernel's order), so after a power cut exactly the regions of the last durable mark
are resynced.
"""

import errno

from dmctl.formats import mirror_log as F
from dmctl.sim import bio as B
from dmctl.sim.targets.base import STATUSTYPE_INFO, STATUSTYPE_TABLE
from dmctl.sim.targets.dirty_log.base import PREFIX, LogError
from dmctl.sim.targets.dirty_log.core import DEFAULTSYNC, NOSYNC, CoreLog


class DiskLog(CoreLog):
    name = "disk"
    has_postsuspend = True
    has_resume = True

    @classmethod
    def ctr(cls, ms, argv):
        log = cls(ms)
        if len(argv) < 2 or len(argv) > 3:
            raise LogError(errno.EINVAL, [PREFIX + "wrong number of arguments to disk dirty region log"])
        env = ms.env
        try:
            dev = env.lookup_device(argv[0])
        except OSError as e:
            # disk_ctr returns dm_get_device's error without a message
            raise LogError(e.errno, [])
        ms.devs.append(dev.devno)
        env.get_ref(dev, ms)
        log.log_devno = dev.devno
        log.create_log_context(argv[1:], dev)
        lbs = getattr(dev, "logical_block_size", 512)
        log.buf_size = F.buf_size(log.region_count, lbs)
        if log.buf_size > dev.size * 512:
            raise LogError(errno.EINVAL, [PREFIX + "log device %d:%d too small: need %d bytes"
                                          % (dev.devno[0], dev.devno[1], log.buf_size)])
        log.header_count = log.buf_size >> 9
        log.log_dev_failed = 0
        log.log_dev_flush_failed = 0
        log.buf = bytearray(log.buf_size)   # lc->disk_header (its clean bits kept apart)
        log.hdr_magic = 0
        log.hdr_version = 0
        log.hdr_nr_regions = 0
        return log

    @property
    def devname(self):
        return "%d:%d" % self.log_devno

    # -- header I/O through bios ------------------------------------------------------------
    def _io(self, op, nr, data=None, flags=0):
        try:
            dev = self.ms.env.device_by_devno(self.log_devno)
        except OSError:
            return errno.EIO
        b = B.Bio(op, 0, nr, data, flags)
        dev.submit(b)
        if not b.done:
            return errno.EIO
        return b.error

    def _rw_header_read(self):
        data = bytearray(self.buf_size)
        err = self._io(B.READ, self.header_count, data)
        if err:
            return err
        self.buf = data
        self.clean_bits = F.clean_bits(data, self.region_count)
        return 0

    def _rw_header_write(self):
        # the buffer as last read, with the in-core header and clean bits (the
        # kernel's clean_bits point into this buffer)
        data = bytearray(self.buf)
        data[0:16] = F.pack_header(self.hdr_nr_regions, self.hdr_magic, self.hdr_version)
        data[F.BITS_OFFSET:F.BITS_OFFSET + self.bitset_size] = self.clean_bits
        self.buf = data
        return self._io(B.WRITE, self.header_count, bytes(data))

    def _flush_header(self):
        return self._io(B.WRITE, 0, None, B.PREFLUSH)

    def _read_header(self):
        err = self._rw_header_read()
        if err:
            return err
        self.hdr_magic, self.hdr_version, self.hdr_nr_regions = F.unpack_header(self.buf)
        if self.sync != DEFAULTSYNC or self.hdr_magic != F.MIRROR_MAGIC:
            self.hdr_magic = F.MIRROR_MAGIC
            self.hdr_version = F.MIRROR_DISK_VERSION
            self.hdr_nr_regions = 0
        if self.hdr_version == 1:       # little-endian host
            self.hdr_version = 2
        if self.hdr_version != F.MIRROR_DISK_VERSION:
            self.klog(PREFIX + "incompatible disk log version")
            return errno.EINVAL
        return 0

    def _fail_log_device(self):
        if self.log_dev_failed:
            return
        self.log_dev_failed = 1
        self.table_event()

    # -- operations -------------------------------------------------------------------------
    def resume(self):
        r = self._read_header()
        if r:
            self.klog(PREFIX + "%s: Failed to read header on dirty region log device" % self.devname)
            self._fail_log_device()
            self.hdr_nr_regions = 0
            self.hdr_magic = F.MIRROR_MAGIC
            self.hdr_version = F.MIRROR_DISK_VERSION
        start = min(self.hdr_nr_regions, self.region_count)
        for i in range(start, self.region_count):
            if self.sync == NOSYNC:
                self._set(self.clean_bits, i)
            else:
                self._clear(self.clean_bits, i)
        i = self.region_count
        while i % F.BITS_PER_LONG:
            self._clear(self.clean_bits, i)
            i += 1
        self.sync_bits = bytearray(self.clean_bits)
        self.sync_count = F.weight(self.clean_bits)
        self.sync_search = 0
        self.hdr_nr_regions = self.region_count
        r = self._rw_header_write()
        if not r:
            r = self._flush_header()
            if r:
                self.log_dev_flush_failed = 1
        if r:
            self.klog(PREFIX + "%s: Failed to write header on dirty region log device" % self.devname)
            self._fail_log_device()
        return r

    def flush(self):
        if not self.touched_cleaned and not self.touched_dirtied:
            return 0
        if self.touched_cleaned and self.ms is not None and self.ms.mirror_flush():
            # which regions are clean is unknown now: mark them all dirty
            self.flush_failed = 1
            for i in range(self.region_count):
                self._clear(self.clean_bits, i)
        r = self._rw_header_write()
        if r:
            self._fail_log_device()
        else:
            if self.touched_dirtied:
                r = self._flush_header()
                if r:
                    self.log_dev_flush_failed = 1
                    self._fail_log_device()
                else:
                    self.touched_dirtied = 0
            self.touched_cleaned = 0
        return r

    def postsuspend(self):
        return self.flush()

    def status(self, type_):
        if type_ == STATUSTYPE_INFO:
            return "3 %s %s %s" % (self.name, self.devname,
                                   "F" if self.log_dev_flush_failed else
                                   "D" if self.log_dev_failed else "A")
        if type_ == STATUSTYPE_TABLE:
            return "%s %u %s %u %s" % (self.name, 2 if self.sync == DEFAULTSYNC else 3,
                                       self.devname, self.region_size, self._sync_word())
        return ""
