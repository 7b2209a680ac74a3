"""dm_bm_checksum and the per-block-type salts (dm-block-manager.c and friends).

The kernel's crc32c() has no final inversion, so with a standard CRC-32C
``dm_bm_checksum(data, xor) = std_crc32c(data) ^ 0xFFFFFFFF ^ xor``.
Every block checksum covers bytes 4..end and is stored as le32 at offset 0.
"""

import errno
import struct

from .errors import PDataError

SUPERBLOCK_CSUM_XOR = 146538381   # era superblock
BTREE_CSUM_XOR = 121107           # btree node
ARRAY_CSUM_XOR = 595846735        # array block
INDEX_CSUM_XOR = 160478           # space-map metadata index
BITMAP_CSUM_XOR = 240779          # space-map bitmap

_LE32 = struct.Struct("<I")


def dm_bm_checksum(data, xor):
    """crc32c(~0, data) without final inversion, xor'ed with ``xor``."""
    import crc32c  # lazily: only needed when blocks are sealed or checked
    return (crc32c.crc32c(data) ^ 0xFFFFFFFF ^ xor) & 0xFFFFFFFF


def block_checksum(block, xor):
    """The checksum a block should carry at offset 0 (covers block[4:])."""
    return dm_bm_checksum(memoryview(block)[4:], xor)


def seal(buf, xor):
    """Store the checksum of ``buf`` (a bytearray) at offset 0."""
    _LE32.pack_into(buf, 0, block_checksum(buf, xor))


def stored_checksum(block):
    return _LE32.unpack_from(block, 0)[0]


def verify(block, xor):
    """True when the stored checksum matches."""
    return stored_checksum(block) == block_checksum(block, xor)


_LE64 = struct.Struct("<Q")


class BlockValidator:
    """dm_block_validator for a block that stores its own location and a checksum.

    ``prepare`` writes the location at ``blocknr_offset`` and seals the block; ``check``
    raises PDataError ENOTBLK (wrong location) or EILSEQ (bad checksum) with the kernel's
    ``"<what> failed: blocknr %llu != wanted %llu"`` / ``"csum %u != wanted %u"`` texts.
    """

    def __init__(self, name, xor, blocknr_offset, what=None, sep=" !="):
        self.name = name
        self.xor = xor
        self.blocknr_offset = blocknr_offset
        self.what = what or "%s_check" % name
        self.sep = sep

    def prepare(self, buf, b):
        _LE64.pack_into(buf, self.blocknr_offset, b)
        seal(buf, self.xor)

    def check_location(self, data, b):
        blocknr = _LE64.unpack_from(data, self.blocknr_offset)[0]
        if blocknr != b:
            raise PDataError(errno.ENOTBLK, "%s failed: blocknr %d%s wanted %d"
                             % (self.what, blocknr, self.sep, b))

    def check_csum(self, data):
        want = block_checksum(data, self.xor)
        got = stored_checksum(data)
        if want != got:
            raise PDataError(errno.EILSEQ, "%s failed: csum %d%s wanted %d"
                             % (self.what, want, self.sep, got))

    def check(self, data, b):
        self.check_location(data, b)
        self.check_csum(data)
