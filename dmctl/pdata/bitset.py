"""dm-bitset (dm-bitset.c): a dm-array of le64 words, bit i = bit (i % 64) of word i / 64.

Like the kernel, one word is cached in the bitset info (``current_bits``) and written back
by ``flush`` (or when another word is needed).
"""

import struct

from .array import ArrayInfo, ab_nr, ARRAY_HEADER_SIZE

BITS_PER_ARRAY_ENTRY = 64
_U64 = struct.Struct("<Q")


class DiskBitset:
    """struct dm_disk_bitset."""

    def __init__(self, tm, share_full_blocks=False, read_only=False):
        self.array = ArrayInfo(tm, 8, share_full_blocks=share_full_blocks,
                               read_only=read_only)
        self.current_index_set = False
        self.current_index = 0
        self.current_bits = 0
        self.dirty = False

    def empty(self):
        return self.array.empty()

    def resize(self, root, old_nr_bits, new_nr_bits, default=False):
        old = -(-old_nr_bits // 64)
        new = -(-new_nr_bits // 64)
        value = _U64.pack(0xFFFFFFFFFFFFFFFF if default else 0)
        return self.array.resize(root, old, new, value)

    def delete(self, root):
        self.array.delete(root)

    def flush(self, root):
        if not self.current_index_set or not self.dirty:
            return root
        root = self.array.set_value(root, self.current_index, _U64.pack(self.current_bits))
        self.current_index_set = False
        self.dirty = False
        return root

    def _get_entry(self, root, index):
        ai = index // 64
        if self.current_index_set:
            if self.current_index == ai:
                return root
            root = self.flush(root)
        self.current_bits = _U64.unpack(self.array.get_value(root, ai))[0]
        self.current_index_set = True
        self.current_index = ai
        self.dirty = False
        return root

    def set_bit(self, root, index):
        root = self._get_entry(root, index)
        self.current_bits |= 1 << (index % 64)
        self.dirty = True
        return root

    def clear_bit(self, root, index):
        root = self._get_entry(root, index)
        self.current_bits &= ~(1 << (index % 64))
        self.dirty = True
        return root

    def test_bit(self, root, index):
        """-> (root, bool)."""
        root = self._get_entry(root, index)
        return root, bool((self.current_bits >> (index % 64)) & 1)

    def words(self, root):
        """Yield every le64 word (readers)."""
        yield from self.array.values(root, "<Q")

    def to_bytes(self, root, nr_bits):
        """The bitset as a little-endian bytearray of ceil(nr_bits/8) bytes."""
        out = bytearray()
        for _k, data in self.array.blocks(root):
            n = ab_nr(data)
            out += data[ARRAY_HEADER_SIZE:ARRAY_HEADER_SIZE + 8 * n]
        nbytes = -(-nr_bits // 8)
        del out[nbytes:]
        if len(out) < nbytes:
            out += bytes(nbytes - len(out))
        return out
