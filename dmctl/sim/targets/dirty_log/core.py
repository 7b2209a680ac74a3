"""The ``core`` dirty log (dm-log.c): bitsets in memory only.

``core <#params 1|2> <region_size> [sync|nosync]``.  Without ``nosync`` every
region starts out of sync, so a core-logged mirror resyncs completely each time
its table is loaded.
"""

import errno

from dmctl.formats import mirror_log as F
from dmctl.numbers import UINT_MAX, kernel_sscanf_u
from dmctl.sim.targets.base import STATUSTYPE_INFO, STATUSTYPE_TABLE
from dmctl.sim.targets.dirty_log.base import PREFIX, DirtyLog, LogError

DEFAULTSYNC, NOSYNC, FORCESYNC = 0, 1, 2


class CoreLog(DirtyLog):
    name = "core"
    has_resume = True

    @classmethod
    def ctr(cls, ms, argv):
        log = cls(ms)
        log.create_log_context(argv, None)
        return log

    def create_log_context(self, argv, dev):
        """create_log_context(): argument checks, then the in-core bitsets."""
        ti = self.ms.ti
        argc = len(argv)
        sync = DEFAULTSYNC
        if argc < 1 or argc > 2:
            raise LogError(errno.EINVAL, [PREFIX + "wrong number of arguments to dirty region log"])
        if argc > 1:
            if argv[1] == "sync":
                sync = FORCESYNC
            elif argv[1] == "nosync":
                sync = NOSYNC
            else:
                raise LogError(errno.EINVAL, [PREFIX + "unrecognised sync argument to dirty region log: %s" % argv[1]])
        region_size = kernel_sscanf_u(argv[0])
        if region_size is None or not _check_region_size(ti.len, region_size):
            raise LogError(errno.EINVAL, [PREFIX + "invalid region size %s" % argv[0]])
        region_count = F.region_count(ti.len, region_size)
        if region_count > UINT_MAX:
            raise LogError(errno.EINVAL, [PREFIX + "region count exceeds limit of %u" % UINT_MAX])
        self.touched_dirtied = 0
        self.touched_cleaned = 0
        self.flush_failed = 0
        self.region_size = region_size
        self.region_count = region_count
        self.sync = sync
        self.bitset_size = F.bitset_size(region_count)
        self.clean_bits = bytearray(b"\xff" * self.bitset_size)
        self.sync_bits = bytearray((b"\xff" if sync == NOSYNC else b"\x00") * self.bitset_size)
        self.sync_count = region_count if sync == NOSYNC else 0
        self.recovering_bits = bytearray(self.bitset_size)
        self.sync_search = 0

    # bit helpers that note what changed ("touched"), as log_set_bit/log_clear_bit
    def _set(self, bits, i):
        F.set_bit(bits, i)
        self.touched_cleaned = 1

    def _clear(self, bits, i):
        F.clear_bit(bits, i)
        self.touched_dirtied = 1

    # -- operations -------------------------------------------------------------------------
    def get_region_size(self):
        return self.region_size

    def resume(self):
        self.sync_search = 0
        return 0

    def is_clean(self, region):
        return F.test_bit(self.clean_bits, region)

    def in_sync(self, region, can_block):
        return F.test_bit(self.sync_bits, region)

    def flush(self):
        return 0

    def mark_region(self, region):
        self._clear(self.clean_bits, region)

    def clear_region(self, region):
        if not self.flush_failed:
            self._set(self.clean_bits, region)

    def get_resync_work(self):
        if self.sync_search >= self.region_count:
            return 0, None
        while True:
            region = F.find_next_zero_bit(self.sync_bits, self.region_count, self.sync_search)
            self.sync_search = region + 1
            if region >= self.region_count:
                return 0, None
            if not F.test_bit(self.recovering_bits, region):
                break
        self._set(self.recovering_bits, region)
        return 1, region

    def has_resync_work(self):
        if self.sync_search >= self.region_count:
            return False
        i = self.sync_search
        while True:
            i = F.find_next_zero_bit(self.sync_bits, self.region_count, i)
            if i >= self.region_count:
                return False
            if not F.test_bit(self.recovering_bits, i):
                return True
            i += 1

    def set_region_sync(self, region, in_sync):
        self._clear(self.recovering_bits, region)
        if in_sync:
            self._set(self.sync_bits, region)
            self.sync_count += 1
        elif F.test_bit(self.sync_bits, region):
            self.sync_count -= 1
            self._clear(self.sync_bits, region)

    def get_sync_count(self):
        return self.sync_count

    def _sync_word(self):
        if self.sync != DEFAULTSYNC:
            return "%ssync " % ("no" if self.sync == NOSYNC else "")
        return ""

    def status(self, type_):
        if type_ == STATUSTYPE_INFO:
            return "1 %s" % self.name
        if type_ == STATUSTYPE_TABLE:
            return "%s %u %u %s" % (self.name, 1 if self.sync == DEFAULTSYNC else 2,
                                    self.region_size, self._sync_word())
        return ""


def _check_region_size(ti_len, region_size):
    if region_size < 2 or region_size > ti_len:
        return False
    return region_size & (region_size - 1) == 0
