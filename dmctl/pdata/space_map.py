"""The metadata space map (dm-space-map-common.c, dm-space-map-metadata.c).

Reference counts are 2 bits per block in bitmap blocks (0 free, 1, 2, 3 = "look in the
ref-count btree"), 16320 entries per bitmap.  The metadata index block lists up to 255
bitmaps (``disk_index_entry``: blocknr, nr_free, none_free_before) and is kept in core,
written (shadowed) at commit.  The space map stores its own blocks, so operations it causes
while it is already working (allocating a shadow of a bitmap, say) are queued as *bops*
and applied when the outermost operation ends, exactly as the kernel does.

Allocation: a block must be free both now and in the last committed state, searched from a
cursor that is not reset at commit (it wraps at the end of the device).
"""

import errno
import struct
from collections import deque

from dmctl.constants import DM_SM_METADATA_MAX_BLOCKS

from .btree import BtreeInfo
from .checksum import BITMAP_CSUM_XOR, INDEX_CSUM_XOR, BlockValidator
from .errors import PDataError

ENTRIES_PER_BLOCK = (4096 - 16) * 4          # 16320
MAX_METADATA_BITMAPS = 255
assert DM_SM_METADATA_MAX_BLOCKS == MAX_METADATA_BITMAPS * ENTRIES_PER_BLOCK
SM_ROOT_SIZE = 32

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_IE = struct.Struct("<QII")
_ROOT = struct.Struct("<QQQQ")

BOP_INC = 0
BOP_DEC = 1

# For each byte of a bitmap (4 entries): index of its first free (00) entry, 4 if none.
_FIRST_FREE = bytes(next((k for k in range(4) if not (v >> (2 * k)) & 3), 4) for v in range(256))
_HAS_FREE = bytes(1 if f < 4 else 0 for f in _FIRST_FREE)


index_validator = BlockValidator("index", INDEX_CSUM_XOR, 8)
bitmap_validator = BlockValidator("sm_bitmap", BITMAP_CSUM_XOR, 8, what="bitmap check")


def bitmap_lookup(data, bit):
    byte = data[16 + (bit >> 2)]
    s = 2 * (bit & 3)
    return (((byte >> s) & 1) << 1) | ((byte >> (s + 1)) & 1)


def bitmap_set(buf, bit, value):
    off = 16 + (bit >> 2)
    s = 2 * (bit & 3)
    byte = buf[off] & ~(3 << s)
    byte |= ((value >> 1) & 1) << s
    byte |= (value & 1) << (s + 1)
    buf[off] = byte


def bitmap_find_free(data, begin, end):
    """First entry in [begin, end) whose count is 0, or None."""
    if begin >= end:
        return None
    start = 16 + (begin >> 2)
    stop = 16 + ((end + 3) >> 2)
    # the first byte may hold entries before ``begin``
    bit = begin
    while bit < end and bit & 3:
        if bitmap_lookup(data, bit) == 0:
            return bit
        bit += 1
    if bit >= end:
        return None
    start = 16 + (bit >> 2)
    flags = bytes(data[start:stop]).translate(_HAS_FREE)
    pos = flags.find(1)
    if pos < 0:
        return None
    found = ((start - 16 + pos) << 2) + _FIRST_FREE[data[start + pos]]
    return found if found < end else None


class LLDisk:
    """struct ll_disk for the metadata space map (in-core index copy ``mi``)."""

    __slots__ = ("nr_blocks", "nr_allocated", "bitmap_root", "ref_count_root", "mi",
                 "changed")

    def __init__(self):
        self.nr_blocks = 0
        self.nr_allocated = 0
        self.bitmap_root = 0
        self.ref_count_root = 0
        self.mi = bytearray(4096)
        self.changed = False

    def copy(self):
        c = LLDisk()
        c.nr_blocks = self.nr_blocks
        c.nr_allocated = self.nr_allocated
        c.bitmap_root = self.bitmap_root
        c.ref_count_root = self.ref_count_root
        c.mi = bytearray(self.mi)
        c.changed = self.changed
        return c

    def load_ie(self, i):
        return list(_IE.unpack_from(self.mi, 16 + 16 * i))

    def save_ie(self, i, ie):
        _IE.pack_into(self.mi, 16 + 16 * i, *ie)
        self.changed = True


class MetadataSpaceMap:
    """dm_space_map for metadata (sm_metadata), including the bootstrap allocator."""

    def __init__(self, tm):
        self.tm = tm
        tm.sm = self
        self.ll = LLDisk()
        self.old_ll = self.ll.copy()
        self.begin = 0
        self.recursion = 0
        self.allocated_this_transaction = 0
        self.bops = deque()
        self.bootstrap = False
        self.ref_count_info = BtreeInfo(tm, 4)

    # -- creation / opening -----------------------------------------------------------
    def create(self, nr_blocks, superblock=0):
        """dm_sm_metadata_create: build the space map inside the device it describes."""
        self.begin = superblock + 1
        self.recursion = 0
        self.allocated_this_transaction = 0
        self.bops.clear()
        self.bootstrap = True
        try:
            ll = self.ll = LLDisk()
            b, _buf = self.tm.new_block(index_validator)
            ll.bitmap_root = b
            ll.ref_count_root = self.ref_count_info.empty()
            self._ll_extend(min(nr_blocks, DM_SM_METADATA_MAX_BLOCKS))
        finally:
            self.bootstrap = False
        self._add_bop(BOP_INC, superblock, self.begin)
        self._apply_bops()
        self.commit()

    def open(self, root):
        """dm_sm_metadata_open from the 32-byte ``disk_sm_root``."""
        nr_blocks, nr_allocated, bitmap_root, ref_count_root = _ROOT.unpack_from(root, 0)
        ll = LLDisk()
        ll.nr_blocks = nr_blocks
        ll.nr_allocated = nr_allocated
        ll.bitmap_root = bitmap_root
        ll.ref_count_root = ref_count_root
        ll.mi = bytearray(self.tm.read_lock(bitmap_root, index_validator))
        self.ll = ll
        self.begin = 0
        self.recursion = 0
        self.allocated_this_transaction = 0
        self.bops.clear()
        self.old_ll = ll.copy()

    def _ll_extend(self, extra):
        ll = self.ll
        nr_blocks = ll.nr_blocks + extra
        old_blocks = -(-ll.nr_blocks // ENTRIES_PER_BLOCK)
        blocks = -(-nr_blocks // ENTRIES_PER_BLOCK)
        if blocks > MAX_METADATA_BITMAPS:
            raise PDataError(errno.EINVAL, "space map too large")
        ll.nr_blocks = nr_blocks
        for i in range(old_blocks, blocks):
            b, _buf = self.tm.new_block(bitmap_validator)
            ll.save_ie(i, [b, ENTRIES_PER_BLOCK, 0])

    def copy_root(self):
        ll = self.ll
        return _ROOT.pack(ll.nr_blocks, ll.nr_allocated, ll.bitmap_root, ll.ref_count_root)

    # -- queries ------------------------------------------------------------------------
    def get_nr_blocks(self):
        return self.ll.nr_blocks

    def get_nr_free(self):
        if self.bootstrap:
            return self.ll.nr_blocks - self.begin
        return (self.old_ll.nr_blocks - self.old_ll.nr_allocated
                - self.allocated_this_transaction)

    def _adjustment(self, b):
        adj = 0
        for t, ob, oe in self.bops:
            if ob <= b < oe:
                adj += 1 if t == BOP_INC else -1
        return adj

    def get_count(self, b):
        if self.bootstrap:
            return 1 if b < self.begin else 0
        return self._ll_lookup(self.ll, b) + self._adjustment(b)

    def count_is_more_than_one(self, b):
        if self.bootstrap:
            return False
        adj = self._adjustment(b)
        if adj > 1:
            return True
        rc = self._ll_lookup_bitmap(self.ll, b)
        if rc == 3:
            return True
        return rc + adj > 1

    def _ll_lookup_bitmap(self, ll, b):
        index, bit = divmod(b, ENTRIES_PER_BLOCK)
        if b >= ll.nr_blocks:
            raise PDataError(errno.EINVAL, "metadata block out of bounds %d" % b)
        blocknr = ll.load_ie(index)[0]
        return bitmap_lookup(self.tm.read_lock(blocknr, bitmap_validator), bit)

    def _ll_lookup(self, ll, b):
        rc = self._ll_lookup_bitmap(ll, b)
        if rc == 3:
            v = self.ref_count_info.lookup(ll.ref_count_root, b)
            rc = _U32.unpack(v)[0]
        return rc

    # -- recursion control ------------------------------------------------------------
    def _add_bop(self, t, b, e):
        if len(self.bops) >= 1024:
            raise PDataError(errno.ENOMEM, "too many recursive allocations")
        self.bops.append((t, b, e))

    def _apply_bops(self):
        while self.bops:
            t, b, e = self.bops[0]
            if t == BOP_INC:
                self._ll_inc(b, e)
            else:
                self._ll_dec(b, e)
            self.bops.popleft()

    def _run(self, fn, b, e):
        self.recursion += 1
        try:
            fn(b, e)
        finally:
            if self.recursion == 1:
                try:
                    self._apply_bops()
                finally:
                    self.recursion -= 1
            else:
                self.recursion -= 1

    # -- public ops ---------------------------------------------------------------------
    def inc(self, b, e=None):
        e = b + 1 if e is None else e
        if self.bootstrap or self.recursion:
            self._add_bop(BOP_INC, b, e)
        else:
            self._run(self._ll_inc, b, e)

    def dec(self, b, e=None):
        e = b + 1 if e is None else e
        if self.bootstrap or self.recursion:
            self._add_bop(BOP_DEC, b, e)
        else:
            self._run(self._ll_dec, b, e)

    def new_block(self):
        if self.bootstrap:
            if self.begin == self.ll.nr_blocks:
                raise PDataError(errno.ENOSPC, "unable to allocate new metadata block")
            b = self.begin
            self.begin += 1
            return b
        try:
            b = self._find_common_free(self.begin, self.ll.nr_blocks)
        except PDataError as e:
            if e.errno != errno.ENOSPC:
                raise
            try:
                b = self._find_common_free(0, self.begin)
            except PDataError as e2:
                if e2.errno == errno.ENOSPC:
                    raise PDataError(errno.ENOSPC, "unable to allocate new metadata block")
                raise
        self.begin = b + 1
        if self.recursion:
            self._add_bop(BOP_INC, b, b + 1)
        else:
            self._run(self._ll_inc, b, b + 1)
        self.allocated_this_transaction += 1
        return b

    def commit(self):
        """sm_metadata_commit: write the index (shadowed) if it changed; new baseline."""
        if self.bootstrap:
            return
        ll = self.ll
        if ll.changed:
            nb, buf, _inc = self.tm.shadow_block(ll.bitmap_root, index_validator)
            buf[:] = ll.mi
            ll.bitmap_root = nb
            ll.changed = False
        self.old_ll = ll.copy()
        self.allocated_this_transaction = 0

    # -- ll operations ------------------------------------------------------------------
    def _find_free(self, ll, begin, end):
        index_begin, bit_begin = divmod(begin, ENTRIES_PER_BLOCK)
        index_end = -(-end // ENTRIES_PER_BLOCK)
        end_bit = end % ENTRIES_PER_BLOCK or ENTRIES_PER_BLOCK
        for i in range(index_begin, index_end):
            blocknr, nr_free, nfb = ll.load_ie(i)
            if nr_free:
                data = self.tm.read_lock(blocknr, bitmap_validator)
                bit_end = end_bit if i == index_end - 1 else ENTRIES_PER_BLOCK
                pos = bitmap_find_free(data, max(bit_begin, nfb), bit_end)
                if pos is not None:
                    return i * ENTRIES_PER_BLOCK + pos
            bit_begin = 0
        raise PDataError(errno.ENOSPC, "no free metadata blocks")

    def _find_common_free(self, begin, end):
        # (like the kernel, the search in the current map always runs to its end)
        old, new = self.old_ll, self.ll
        while True:
            b = self._find_free(new, begin, new.nr_blocks)
            if b >= old.nr_blocks or self._ll_lookup(old, b) == 0:
                return b
            begin = b + 1

    def _shadow_bitmap(self, ie):
        nb, buf, _inc = self.tm.shadow_block(ie[0], bitmap_validator)
        ie[0] = nb
        return buf

    def _ll_inc(self, b, e):
        ll = self.ll
        while b < e:
            index, bit = divmod(b, ENTRIES_PER_BLOCK)
            bit_end = min(bit + (e - b), ENTRIES_PER_BLOCK)
            ie = ll.load_ie(index)
            buf = self._shadow_bitmap(ie)
            for bit in range(bit, bit_end):
                old = bitmap_lookup(buf, bit)
                if old == 0:
                    bitmap_set(buf, bit, 1)
                    ll.nr_allocated += 1
                    ie[1] -= 1
                    if ie[2] == bit:
                        ie[2] = bit + 1
                elif old == 1:
                    bitmap_set(buf, bit, 2)
                elif old == 2:
                    bitmap_set(buf, bit, 3)
                    self._set_overflow(b, 3)
                else:
                    v = self.ref_count_info.lookup(ll.ref_count_root, b)
                    self._set_overflow(b, _U32.unpack(v)[0] + 1)
                b += 1
            ll.save_ie(index, ie)

    def _ll_dec(self, b, e):
        ll = self.ll
        while b < e:
            index, bit = divmod(b, ENTRIES_PER_BLOCK)
            bit_end = min(bit + (e - b), ENTRIES_PER_BLOCK)
            ie = ll.load_ie(index)
            buf = self._shadow_bitmap(ie)
            for bit in range(bit, bit_end):
                old = bitmap_lookup(buf, bit)
                if old == 0:
                    raise PDataError(errno.EINVAL, "unable to decrement block %d" % b)
                if old == 1:
                    bitmap_set(buf, bit, 0)
                    ll.nr_allocated -= 1
                    ie[1] += 1
                    ie[2] = min(ie[2], bit)
                elif old == 2:
                    bitmap_set(buf, bit, 1)
                else:
                    v = _U32.unpack(self.ref_count_info.lookup(ll.ref_count_root, b))[0]
                    if v <= 3:
                        ll.ref_count_root = self.ref_count_info.remove(ll.ref_count_root, b)
                        bitmap_set(buf, bit, 2)
                    else:
                        self._set_overflow(b, v - 1)
                b += 1
            ll.save_ie(index, ie)

    def _set_overflow(self, b, count):
        ll = self.ll
        ll.ref_count_root, _ = self.ref_count_info.insert(ll.ref_count_root, b,
                                                           _U32.pack(count))
