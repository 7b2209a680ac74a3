"""dm-array (dm-array.c): a fully populated one-level btree of array blocks.

Array block: ``array_block`` header (24 bytes: csum, max_entries, nr_entries, value_size,
blocknr), then the packed values.  Key i of the btree maps to the location of array block i;
every array block but the last is full.  Growing allocates one new block per new full
array block (``insert_full_ablocks``, as the kernel does); ``share_full_blocks=True``
instead inserts a single default-filled block many times and raises its reference count
(much cheaper for huge arrays; still valid metadata, but not the kernel's block usage).
"""

import errno
import struct

from .block import BLOCK_SIZE
from .btree import BtreeInfo
from .checksum import ARRAY_CSUM_XOR, BlockValidator
from .errors import PDataError

ARRAY_HEADER_SIZE = 24
_HDR = struct.Struct("<IIIIQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


array_validator = BlockValidator("array", ARRAY_CSUM_XOR, 16, what="array_block_check")


def calc_max_entries(value_size, block_size=BLOCK_SIZE):
    return (block_size - ARRAY_HEADER_SIZE) // value_size


def ab_nr(data):
    return _U32.unpack_from(data, 8)[0]


def ab_max(data):
    return _U32.unpack_from(data, 4)[0]


def ab_values(data):
    """The packed values of an array block (nr_entries of them)."""
    vs = _U32.unpack_from(data, 12)[0]
    return bytes(data[ARRAY_HEADER_SIZE:ARRAY_HEADER_SIZE + vs * ab_nr(data)])


class ArrayInfo:
    """dm_array_info: values of ``value_size`` bytes with optional inc/dec/equal."""

    def __init__(self, tm, value_size, inc=None, dec=None, equal=None,
                 share_full_blocks=False, read_only=False):
        self.tm = tm
        # A reader of an array nobody changes meanwhile may remember where the last
        # array block it read lives (saves the btree lookup per get_value).
        self.read_only = read_only
        self._last = None
        self.value_size = value_size
        self.inc = inc
        self.dec = dec
        self.equal = equal
        self.max_entries = calc_max_entries(value_size)
        self.share_full_blocks = share_full_blocks
        self.btree = BtreeInfo(tm, 8, inc=self._block_inc, dec=self._block_dec,
                               equal=lambda a, b: a == b)

    # -- value type of the btree (array block locations) --------------------------------
    def _block_inc(self, values, count):
        for (b,) in struct.iter_unpack("<Q", values[:8 * count]):
            self.tm.inc(b)

    def _block_dec(self, values, count):
        for (b,) in struct.iter_unpack("<Q", values[:8 * count]):
            if self.tm.ref(b) == 1 and self.dec is not None:
                data = self.tm.read_lock(b, array_validator)
                n = ab_nr(data)
                if n:
                    self.dec(ab_values(data), n)
            self.tm.dec(b)

    # -- array blocks -------------------------------------------------------------------
    def _alloc_ablock(self):
        b, buf = self.tm.new_block(array_validator)
        _HDR.pack_into(buf, 0, 0, self.max_entries, 0, self.value_size, 0)
        return b, buf

    def _fill(self, buf, value, new_nr):
        nr = ab_nr(buf)
        delta = new_nr - nr
        if delta <= 0:
            return
        vs = self.value_size
        if self.inc is not None:
            self.inc(value * delta, delta)
        buf[ARRAY_HEADER_SIZE + vs * nr:ARRAY_HEADER_SIZE + vs * new_nr] = value * delta
        _U32.pack_into(buf, 8, new_nr)

    def _trim(self, buf, new_nr):
        nr = ab_nr(buf)
        delta = nr - new_nr
        if delta > 0 and self.dec is not None:
            vs = self.value_size
            self.dec(bytes(buf[ARRAY_HEADER_SIZE + vs * new_nr:ARRAY_HEADER_SIZE + vs * nr]),
                     delta)
        _U32.pack_into(buf, 8, new_nr)

    def _insert_ablock(self, root, index, b):
        root, _ = self.btree.insert(root, index, _U64.pack(b))
        return root

    def _shadow_ablock(self, root, index):
        b = _U64.unpack(self.btree.lookup(root, index))[0]
        nb, buf, inc = self.tm.shadow_block(b, array_validator)
        if inc and self.inc is not None:
            n = ab_nr(buf)
            if n:
                self.inc(ab_values(buf), n)
        if nb != b:
            self.tm.inc(b)
            root = self._insert_ablock(root, index, nb)
        return root, nb, buf

    def _insert_new_ablock(self, root, index, nr, value):
        b, buf = self._alloc_ablock()
        self._fill(buf, value, nr)
        return self._insert_ablock(root, index, b)

    def _insert_full_ablocks(self, root, begin, end, value):
        if begin == end:
            return root
        if self.share_full_blocks:
            b, buf = self._alloc_ablock()
            self._fill(buf, value, self.max_entries)
            for index in range(begin, end):
                root = self._insert_ablock(root, index, b)
                if index + 1 != end:
                    self.tm.inc(b)
            return root
        for index in range(begin, end):
            root = self._insert_new_ablock(root, index, self.max_entries, value)
            self.tm.safe_point()
        return root

    # -- public -------------------------------------------------------------------------
    def empty(self):
        return self.btree.empty()

    def delete(self, root):
        self.btree.delete(root)

    def resize(self, root, old_size, new_size, value):
        """dm_array_resize: new entries get ``value`` (bytes); returns the new root."""
        value = bytes(value)
        if old_size == new_size:
            return root
        mx = self.max_entries
        old_full, old_last = divmod(old_size, mx)
        new_full, new_last = divmod(new_size, mx)
        if new_size > old_size:
            if new_full > old_full:
                old_blocks = old_full
                if old_last:
                    old_blocks += 1
                    root, _b, buf = self._shadow_ablock(root, old_full)
                    self._fill(buf, value, mx)
                root = self._insert_full_ablocks(root, old_blocks, new_full, value)
                if new_last:
                    root = self._insert_new_ablock(root, new_full, new_last, value)
            elif old_last:
                root, _b, buf = self._shadow_ablock(root, old_full)
                self._fill(buf, value, new_last)
            else:
                root = self._insert_new_ablock(root, new_full, new_last, value)
        else:
            if new_full < old_full:
                begin = new_full + (1 if new_last else 0)
                end = old_full + (1 if old_last else 0)
                for index in range(begin, end):
                    root = self.btree.remove(root, index)
            if new_last:
                root, _b, buf = self._shadow_ablock(root, new_full)
                self._trim(buf, new_last)
        return root

    def get_value(self, root, index):
        blk, entry = divmod(index, self.max_entries)
        last = self._last
        if last is not None and last[0] == root and last[1] == blk:
            b = last[2]
        else:
            b = _U64.unpack(self.btree.lookup(root, blk))[0]
            if self.read_only:
                self._last = (root, blk, b)
        data = self.tm.read_lock(b, array_validator)
        if entry >= ab_nr(data):
            raise PDataError(errno.ENODATA, "array index %d out of range" % index)
        off = ARRAY_HEADER_SIZE + self.value_size * entry
        return bytes(data[off:off + self.value_size])

    def set_value(self, root, index, value):
        """dm_array_set_value -> new root."""
        value = bytes(value)
        blk, entry = divmod(index, self.max_entries)
        root, _b, buf = self._shadow_ablock(root, blk)
        if entry >= ab_nr(buf):
            raise PDataError(errno.ENODATA, "array index %d out of range" % index)
        vs = self.value_size
        off = ARRAY_HEADER_SIZE + vs * entry
        old = bytes(buf[off:off + vs])
        if self.dec is not None and (self.equal is None or not self.equal(old, value)):
            self.dec(old, 1)
            if self.inc is not None:
                self.inc(value, 1)
        buf[off:off + vs] = value
        return root

    def blocks(self, root):
        """Yield (array block index, block data) in order (for readers)."""
        for key, v in self.btree.items(root):
            b = _U64.unpack(v)[0]
            yield key, self.tm.read_lock(b, array_validator)

    def values(self, root, fmt):
        """Yield every value unpacked with struct format ``fmt`` (e.g. '<I')."""
        for _key, data in self.blocks(root):
            n = ab_nr(data)
            yield from (v[0] for v in struct.iter_unpack(
                fmt, data[ARRAY_HEADER_SIZE:ARRAY_HEADER_SIZE + self.value_size * n]))
