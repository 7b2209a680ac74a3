"""The mirror disk log format (dmctl.formats.mirror_log) against a log the 6.1 kernel
wrote (tests/golden/mirror-disk-log-*: 16 regions of 1024 sectors, all clean)."""

import os
import re

import pytest

from dmctl.formats import mirror_log as F

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden")


def golden(name, mode="r"):
    with open(os.path.join(GOLDEN, name), mode) as f:
        return f.read()


def parse_hexdump(text):
    """``hexdump -C`` output back to bytes (``*`` repeats the previous line)."""
    out = bytearray()
    prev = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line == "*":
            nxt = int(lines[i + 1].split()[0], 16)
            while len(out) < nxt:
                out.extend(prev)
            continue
        m = re.match(r"^([0-9a-f]{8})((?:\s+[0-9a-f]{2})*)", line)
        off = int(m.group(1), 16)
        data = bytes(int(x, 16) for x in m.group(2).split())
        if not data:
            assert off == len(out)
            break
        assert off == len(out)
        out.extend(data)
        prev = data
    return bytes(out)


@pytest.mark.parametrize("name,size", [("mirror-disk-log-hexdump-first-4k.txt", 4096),
                                       ("mirror-disk-log-hexdump-first-sector.txt", 512),
                                       ("mirror-disk-log-hexdump-first-sector-while-active.txt", 512)])
def test_kernel_written_header(name, size):
    buf = parse_hexdump(golden(name))
    assert len(buf) == size
    assert buf[:4] == b"rRiM"
    assert F.unpack_header(buf) == (F.MIRROR_MAGIC, F.MIRROR_DISK_VERSION, 16)
    assert buf[:16] == F.pack_header(16)


def test_kernel_written_clean_bits_and_whole_buffer():
    raw = golden("mirror-disk-log-first-4k.bin", "rb")
    assert raw == parse_hexdump(golden("mirror-disk-log-hexdump-first-4k.txt"))
    assert F.clean_regions(raw, 16) == set(range(16))
    assert F.bitset_size(16) == 8 and F.buf_size(16) == 1536
    bits = F.clean_bits(raw, 16)
    assert bytes(bits) == b"\xff\xff" + bytes(6)
    # the kernel's buffer is exactly what pack() produces; the rest of 4 KiB is untouched
    assert F.pack(16, bits) == raw[:1536]
    assert raw[1536:] == bytes(4096 - 1536)


def test_bit_order_and_sizes():
    bits = bytearray(F.bitset_size(100))
    assert len(bits) == 16                   # rounded up to BITS_PER_LONG
    for i in (0, 9, 63, 64, 99):
        F.set_bit(bits, i)
    assert bits[0] == 1 and bits[1] == 2 and bits[7] == 0x80 and bits[8] == 1 and bits[12] == 8
    assert F.weight(bits) == 5
    assert F.find_next_zero_bit(bits, 100, 0) == 1
    assert F.find_next_zero_bit(bytearray(b"\xff" * 16), 100, 3) == 100
    F.clear_bit(bits, 9)
    assert not F.test_bit(bits, 9)
    assert F.region_count(1000, 512) == 2
    assert F.buf_size(4096 * 8 + 1) == 1024 + 4096 + 512
