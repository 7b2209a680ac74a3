"""The mirror disk dirty log's on-disk format (drivers/md/dm-log.c, also cmirrord).

Pure functions, no I/O:

* header at byte 0, little-endian: ``le32 magic 0x4D695272`` ("MiRr", bytes
  ``72 52 69 4D``), ``le32 version`` (2), ``le64 nr_regions`` (at the last resume);
* bytes 16..1023 are not written by the kernel (its buffer holds whatever it last
  read from the device);
* the clean-region bitset at byte 1024 (``LOG_OFFSET`` = 2 sectors): bit *i* is bit
  ``i % 8`` of byte ``i // 8`` (``__set_bit_le``), 1 = clean (in sync);
* the bitset is ``round_up(region_count, BITS_PER_LONG) / 8`` bytes (64-bit kernels);
* the kernel reads and writes ``round_up(1024 + bitset, logical block size)`` bytes.
"""

import struct

MIRROR_MAGIC = 0x4D695272
MIRROR_DISK_VERSION = 2
LOG_OFFSET = 2                 # sectors
BITS_OFFSET = LOG_OFFSET << 9  # 1024 bytes
BITS_PER_LONG = 64
HEADER = struct.Struct("<IIQ")


def round_up(n, m):
    return -(-n // m) * m


def region_count(ti_len, region_size):
    """dm_sector_div_up(ti->len, region_size)."""
    return -(-ti_len // region_size)


def bitset_size(nr_regions):
    """Bytes of one bitset: ``dm_round_up(region_count, BITS_PER_LONG) >> 3``."""
    return round_up(nr_regions, BITS_PER_LONG) >> 3


def buf_size(nr_regions, logical_block_size=512):
    """Bytes the kernel reads/writes: header area plus bitset, rounded to a block."""
    return round_up(BITS_OFFSET + bitset_size(nr_regions), logical_block_size)


def pack_header(nr_regions, magic=MIRROR_MAGIC, version=MIRROR_DISK_VERSION):
    return HEADER.pack(magic, version, nr_regions)


def unpack_header(buf):
    """(magic, version, nr_regions) from the first 16 bytes."""
    return HEADER.unpack_from(bytes(buf[:HEADER.size]))


def test_bit(bits, i):
    return (bits[i >> 3] >> (i & 7)) & 1


def set_bit(bits, i):
    bits[i >> 3] |= 1 << (i & 7)


def clear_bit(bits, i):
    bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF


def find_next_zero_bit(bits, size, start):
    """find_next_zero_bit_le: the first clear bit in [start, size), or size."""
    i = start
    while i < size:
        byte = bits[i >> 3]
        if byte == 0xFF and (i & 7) == 0:
            i += 8
            continue
        if not (byte >> (i & 7)) & 1:
            return i
        i += 1
    return size


def weight(bits):
    """memweight: the number of set bits."""
    return sum(bin(b).count("1") for b in bits)


def clean_bits(buf, nr_regions):
    """The clean bitset (a bytearray of ``bitset_size(nr_regions)``) of a log buffer."""
    n = bitset_size(nr_regions)
    out = bytearray(buf[BITS_OFFSET:BITS_OFFSET + n])
    if len(out) < n:
        out.extend(bytes(n - len(out)))
    return out


def clean_regions(buf, nr_regions):
    """The set of region numbers < nr_regions marked clean in a log buffer."""
    bits = clean_bits(buf, nr_regions)
    return {i for i in range(nr_regions) if test_bit(bits, i)}


def pack(nr_regions, bits, logical_block_size=512, base=None):
    """A whole log buffer: header + bits at 1024, the rest taken from ``base`` (what
    the kernel's buffer held) or zero."""
    size = buf_size(nr_regions, logical_block_size)
    out = bytearray(size)
    if base is not None:
        b = bytes(base[:size])
        out[:len(b)] = b
    out[0:HEADER.size] = pack_header(nr_regions)
    bs = bytes(bits[:bitset_size(nr_regions)])
    out[BITS_OFFSET:BITS_OFFSET + len(bs)] = bs
    return bytes(out)
