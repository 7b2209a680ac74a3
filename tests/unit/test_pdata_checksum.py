"""Checksums of persistent-data blocks (dm_bm_checksum and the per-type salts)."""

import struct

import pytest

from dmctl.pdata import checksum
from dmctl.pdata.errors import PDataError


def test_dm_bm_checksum_is_crc32c_without_final_inversion():
    # standard CRC-32C("123456789") = 0xE3069283; the kernel's crc32c() omits the final ~
    assert checksum.dm_bm_checksum(b"123456789", 0) == 0xE3069283 ^ 0xFFFFFFFF
    assert checksum.dm_bm_checksum(b"123456789", 0x1234) == 0xE3069283 ^ 0xFFFFFFFF ^ 0x1234


def test_salts_are_the_kernels():
    assert checksum.SUPERBLOCK_CSUM_XOR == 146538381
    assert checksum.BTREE_CSUM_XOR == 121107
    assert checksum.ARRAY_CSUM_XOR == 595846735
    assert checksum.INDEX_CSUM_XOR == 160478
    assert checksum.BITMAP_CSUM_XOR == 240779


def test_block_checksum_covers_bytes_4_to_end():
    buf = bytearray(4096)
    buf[100] = 7
    checksum.seal(buf, checksum.BTREE_CSUM_XOR)
    assert checksum.verify(buf, checksum.BTREE_CSUM_XOR)
    assert not checksum.verify(buf, checksum.ARRAY_CSUM_XOR)
    assert struct.unpack_from("<I", buf)[0] == checksum.dm_bm_checksum(bytes(buf[4:]),
                                                                      checksum.BTREE_CSUM_XOR)
    buf[4095] ^= 1
    assert not checksum.verify(buf, checksum.BTREE_CSUM_XOR)


def test_known_zero_block_checksums():
    """Pinned values: a zero block with each salt (crc32c(~0, 4092 zero bytes) ^ salt)."""
    raw = checksum.dm_bm_checksum(bytes(4092), 0)
    for salt in (checksum.SUPERBLOCK_CSUM_XOR, checksum.BTREE_CSUM_XOR,
                 checksum.ARRAY_CSUM_XOR, checksum.INDEX_CSUM_XOR, checksum.BITMAP_CSUM_XOR):
        assert checksum.block_checksum(bytes(4096), salt) == raw ^ salt
    assert raw == 0xA732586E ^ 0xFFFFFFFF


def test_validator_errors_carry_errno():
    v = checksum.BlockValidator("array", checksum.ARRAY_CSUM_XOR, 16,
                                what="array_block_check")
    buf = bytearray(4096)
    v.prepare(buf, 42)
    v.check(bytes(buf), 42)
    with pytest.raises(PDataError) as e:
        v.check(bytes(buf), 43)
    assert e.value.errno == 15   # ENOTBLK
    assert "blocknr 42 != wanted 43" in e.value.text
    buf[200] = 1
    with pytest.raises(PDataError) as e:
        v.check(bytes(buf), 42)
    assert e.value.errno == 84   # EILSEQ
