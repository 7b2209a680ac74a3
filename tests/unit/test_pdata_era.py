"""EraMetadata without the external tools: open/format checks, errors, marks, digestion."""

import errno
import struct

import pytest

from dmctl.formats.era_meta import (EraMetadata, EraMetadataError, dump, read_superblock,
                                    written_since, format_invalidate, bitmap_ranges)
from dmctl.pdata.block import CrashableStore, InjectedCrash, MemoryBlockStore
from dmctl.pdata.checksum import SUPERBLOCK_CSUM_XOR, seal


def fresh(nr_blocks=100, meta_blocks=1024):
    store = MemoryBlockStore(meta_blocks)
    md = EraMetadata(store, 128)
    md.resize(nr_blocks)
    md.commit()
    md.era_rollover()
    md.commit()
    return store, md


def corrupt(store, fn, reseal=True):
    buf = bytearray(store.read(0))
    fn(buf)
    if reseal:
        seal(buf, SUPERBLOCK_CSUM_XOR)
    store.write(0, bytes(buf))


def test_format_then_reopen():
    store, md = fresh()
    assert md.status_line() == "8 9/1024 1 -"     # one era-array block for 100 blocks
    sb = read_superblock(store)
    assert (sb["magic"], sb["version"], sb["data_block_size"], sb["metadata_block_size"],
            sb["nr_blocks"], sb["current_era"]) == (2126579579, 1, 128, 8, 100, 1)
    md2 = EraMetadata(store, 128)
    assert (md2.current_era, md2.nr_blocks, md2.stats()) == (1, 100, md.stats())
    assert md2.archived_writesets                 # open always kicks off a digest


@pytest.mark.parametrize("what,err,text", [
    ("blocknr", errno.ENOTBLK, "sb_check failed: blocknr 5: wanted 0"),
    ("magic", errno.EILSEQ, "sb_check failed: magic 1: wanted 2126579579"),
    ("csum", errno.EILSEQ, "sb_check failed: csum "),
    ("version", errno.EINVAL, "Era metadata version 2 found, but only versions between 1 "
                              "and 1 supported."),
])
def test_superblock_validation_in_the_kernels_order(what, err, text):
    store, _md = fresh()
    if what == "blocknr":
        corrupt(store, lambda b: struct.pack_into("<Q", b, 8, 5))
    elif what == "magic":
        corrupt(store, lambda b: struct.pack_into("<Q", b, 32, 1))
    elif what == "csum":
        corrupt(store, lambda b: b.__setitem__(300, 1), reseal=False)
    else:
        corrupt(store, lambda b: struct.pack_into("<I", b, 40, 2))
    with pytest.raises(EraMetadataError) as e:
        EraMetadata(store, 128)
    assert e.value.errno == err
    assert e.value.text.startswith(text)


def test_block_size_change_is_refused():
    store, _md = fresh()
    with pytest.raises(EraMetadataError) as e:
        EraMetadata(store, 64)
    assert (e.value.errno, e.value.text) == (
        errno.EINVAL, "changing the data block size (from 128 to 64) is not supported")


def test_resize_limit_and_snapshot_errors():
    _store, md = fresh()
    with pytest.raises(EraMetadataError) as e:
        md.resize(1 << 31)
    assert e.value.text == "Invalid number of origin blocks 2147483648"
    with pytest.raises(EraMetadataError) as e:
        md.drop_metadata_snap()
    assert (e.value.errno, e.value.text) == (errno.EINVAL,
                                             "metadata_drop_snap: no snap to drop")
    md.take_metadata_snap()
    md.commit()
    assert md.current_era == 2 and md.metadata_snap
    with pytest.raises(EraMetadataError) as e:
        md.take_metadata_snap()
    assert e.value.text == "metadata_take_snap: metadata snapshot already exists"
    md.drop_metadata_snap()
    md.commit()
    assert md.metadata_snap == 0


def test_marks_enter_the_incore_writeset_only_after_commit():
    store, md = fresh()
    assert md.mark_block(7)
    assert not md.current_marked(7)
    assert md.mark_block(7)                   # still not in core: asks for a commit again
    md.commit()
    assert md.current_marked(7)
    writes = md.bm.writes
    assert not md.mark_block(7)               # no metadata I/O for a marked block
    md.commit()                               # an empty commit writes only the superblock
    assert md.bm.writes == writes + 1


def test_failed_commit_leaves_the_incore_bit_clear():
    inner = MemoryBlockStore(1024)
    store = CrashableStore(inner)
    md = EraMetadata(store, 128)
    md.resize(100)
    md.commit()
    md.era_rollover()
    md.commit()
    assert md.mark_block(3)
    store.fail_after(0)
    with pytest.raises(InjectedCrash):
        md.commit()
    assert not md.current_marked(3)


def test_digest_moves_writesets_into_the_era_array():
    store, md = fresh(3000)
    for b in (0, 5, 2999):
        md.mark_block(b)
    md.commit()
    md.checkpoint()
    md.mark_block(5)
    md.commit()
    md.checkpoint()
    md.commit()
    steps = 0
    md.kick_off_digest()
    while True:
        try:
            if not md.digest_step():
                break
        except EraMetadataError as e:
            assert e.errno == errno.ENODATA   # the tree is empty: digestion ends this way
            break
        steps += 1
    # two writesets of 3000 bits: 30 transcribe steps + lookup + remove each
    assert steps == 2 * (1 + 30 + 1)
    md.commit()
    assert list(md.writeset_tree_info.items(md.writeset_tree_root)) == []
    vals = list(md.era_array_info.values(md.era_array_root, "<I"))
    assert (vals[0], vals[5], vals[2999], vals[1]) == (1, 2, 1, 0)
    assert written_since(store, 2) == [(5, 6)]
    assert written_since(store, 1) == [(0, 1), (5, 6), (2999, 3000)]
    assert format_invalidate(written_since(store, 1)) == (
        '<blocks>\n  <block block="0"/>\n  <block block="5"/>\n  <block block="2999"/>\n'
        '</blocks>\n')


def test_written_since_ignores_the_live_writeset_and_reads_snapshots():
    store, md = fresh()
    md.mark_block(9)
    md.commit()
    assert written_since(store, 1) == []       # era 1 is still live
    md.take_metadata_snap()
    md.commit()
    assert written_since(store, 1) == [(9, 10)]
    assert written_since(store, 1, use_snapshot=True) == [(9, 10)]
    md.drop_metadata_snap()
    md.commit()
    with pytest.raises(EraMetadataError) as e:
        written_since(store, 1, use_snapshot=True)
    assert e.value.text == "no metadata snapshot taken."


def test_dump_format():
    store, md = fresh(3)
    md.mark_block(1)
    md.commit()
    md.checkpoint()
    md.commit()
    assert dump(store) == (
        '<superblock uuid="" block_size="128" nr_blocks="3" current_era="2">\n'
        '  <writeset era="1" nr_bits="3">\n'
        '    <bit block="0" value="false"/>\n'
        '    <bit block="1" value="true"/>\n'
        '    <bit block="2" value="false"/>\n'
        '  </writeset>\n'
        '  <era_array>\n'
        '    <era block="0" era="0"/>\n'
        '    <era block="1" era="0"/>\n'
        '    <era block="2" era="0"/>\n'
        '  </era_array>\n'
        '</superblock>\n')
    assert '<era block="1" era="1"/>' in dump(store, logical=True)


def test_bitmap_ranges():
    bm = bytearray(4)
    for b in (0, 1, 2, 7, 8, 9, 20, 31):
        bm[b >> 3] |= 1 << (b & 7)
    assert bitmap_ranges(bm, 32) == [(0, 3), (7, 10), (20, 21), (31, 32)]
    assert bitmap_ranges(bytearray(b"\xff\xff"), 13) == [(0, 13)]


def test_metadata_space_map_is_clamped_to_255_bitmaps():
    store = MemoryBlockStore(5_000_000)          # ~19 GiB of metadata: more than 255 bitmaps
    md = EraMetadata(store, 128)
    used, total = md.stats()
    assert total == 255 * 16320 == 4161600
    # superblock, index, ref-count root, 255 bitmaps, writeset tree, era array
    assert used == 1 + 1 + 1 + 255 + 2
