"""dm-log-writes on-disk format: packing, parsing, the kernel's layout rules.

Logs are built byte by byte from the kernel's struct layouts (drivers/md/dm-log-writes.c)
and checked against a real kernel-written log (tests/golden/lw-log-*).
"""

import re
import struct

import pytest

from dmctl.formats import log_writes as lw
from testlib import need_golden


def hexdump_to_bytes(text):
    """Turn ``hexdump -C`` output back into bytes (``*`` repeats the previous line)."""
    out = bytearray()
    prev = None
    repeat = False
    for line in text.splitlines():
        if line.strip() == "*":
            repeat = True
            continue
        m = re.match(r"^([0-9a-f]{8})\s*((?:[0-9a-f]{2}\s+){0,16})", line)
        if not m:
            continue
        off = int(m.group(1), 16)
        if repeat:
            while len(out) < off:
                out += prev
            repeat = False
        del out[off:]
        chunk = bytes(int(h, 16) for h in m.group(2).split())
        out += chunk
        prev = chunk
    return bytes(out)


@pytest.fixture(scope="module")
def golden_log():
    return hexdump_to_bytes(need_golden("lw-log-hexdump-first-64k.txt"))


# --- byte layout -------------------------------------------------------------------

def test_super_layout_byte_by_byte():
    raw = lw.pack_super(9, 512)
    assert len(raw) == 512
    assert raw[:8] == b"rhswfsj\x00"
    assert raw[8:16] == (1).to_bytes(8, "little")
    assert raw[16:24] == (9).to_bytes(8, "little")
    assert raw[24:28] == (512).to_bytes(4, "little")
    assert raw[28:] == bytes(484)
    assert lw.pack_super(3, 4096, pad=False) == struct.pack("<QQQI4x", lw.MAGIC, 1, 3, 4096)
    assert len(lw.pack_super(0, 4096)) == 4096
    assert lw.unpack_super(raw) == lw.Super(lw.MAGIC, 1, 9, 512)


def test_entry_layout_byte_by_byte():
    raw = lw.pack_entry(0x40, 8, lw.FUA | lw.METADATA, 512)
    assert len(raw) == 512
    assert raw[0:8] == bytes([0x40, 0, 0, 0, 0, 0, 0, 0])
    assert raw[8:16] == bytes([8, 0, 0, 0, 0, 0, 0, 0])
    assert raw[16:24] == bytes([0x12, 0, 0, 0, 0, 0, 0, 0])
    assert raw[24:] == bytes(488)
    mark = lw.pack_entry(0, 0, lw.MARK, 512, mark="mymark")
    assert mark[16:24] == bytes([8, 0, 0, 0, 0, 0, 0, 0])
    assert mark[24:32] == bytes([6, 0, 0, 0, 0, 0, 0, 0])
    assert mark[32:38] == b"mymark" and mark[38:] == bytes(474)
    assert lw.unpack_entry(mark) == (0, 0, lw.MARK, 6)
    with pytest.raises(ValueError):
        lw.pack_entry(0, 0, lw.MARK, 512, mark="x" * 481)


def test_flag_constants_and_names():
    assert (lw.FLUSH, lw.FUA, lw.DISCARD, lw.MARK, lw.METADATA) == (1, 2, 4, 8, 16)
    assert lw.flags_to_str(0) == "NONE"
    assert lw.flags_to_str(lw.FUA) == "FUA"
    assert lw.flags_to_str(lw.FLUSH | lw.FUA) == "FLUSH|FUA"
    assert lw.flags_to_str(0x1F) == "FLUSH|FUA|DISCARD|MARK|METADATA"
    assert lw.flags_to_str(0x48) == "MARK|UNKNOWN.0x40"
    assert lw.flags_to_str(0x100) == "UNKNOWN.0x100"
    assert lw.flag_names(lw.DISCARD) == ["DISCARD"]
    assert lw.flag_names(0) == []


def test_entry_valid_matches_replay_log():
    assert lw.entry_valid(lw.pack_entry(0, 1, 0))
    assert not lw.entry_valid(lw.pack_entry(5, 0, 0))            # all zero: malformed
    assert lw.entry_valid(lw.pack_entry(0, 0, lw.FLUSH))
    assert lw.entry_valid(lw.pack_entry(0, 0, lw.MARK, mark="m"))
    bad = bytearray(lw.pack_entry(0, 1, lw.FUA))
    bad[32] = 1                                                  # not zero padded
    assert not lw.entry_valid(bad)
    # only flags == MARK exactly may carry text
    assert not lw.entry_valid(lw.pack_entry(0, 0, lw.MARK | lw.FUA, mark="m"))


def test_mark_matching_is_exact_like_strncmp():
    hdr = lw.pack_entry(0, 0, lw.MARK, mark="mkfs")
    assert lw.mark_matches(b"mkfs", hdr, 4)
    assert lw.mark_matches("mkfs", hdr, 4)
    assert not lw.mark_matches(b"mk", hdr, 4)                    # prefix
    assert not lw.mark_matches(b"mkfs2", hdr, 4)
    # data_len + 1 bounds the compare: with data_len 1 only "m" + NUL-or-not is checked
    assert not lw.mark_matches(b"m", hdr, 1)                     # 'm','\0' vs 'm','k'
    assert lw.mark_matches(b"mx", hdr, 1) is False
    assert lw.mark_matches(b"mkxx", hdr, 1)                      # compares 2 bytes only
    # data_len overstated: the NUL after the text ends the compare
    assert lw.mark_matches(b"mkfs", hdr, 40)
    # u64 wrap: data_len + 1 == 0 compares nothing
    assert lw.mark_matches(b"anything", hdr, (1 << 64) - 1)


def test_truncate_mark_is_sectorsize_minus_33():
    assert len(lw.truncate_mark("a" * 1000, 512)) == 479
    assert len(lw.truncate_mark("a" * 5000, 4096)) == 4063
    assert lw.truncate_mark("short", 512) == b"short"


# --- reader ----------------------------------------------------------------------

def _hand_log():
    """The oracles.md §1.4 example, built from raw structs (no pack helpers)."""
    S = 512

    def hdr(sector, nr, flags, text=b""):
        raw = struct.pack("<QQQQ", sector, nr, flags, len(text)) + text
        return raw + bytes(S - len(raw))

    parts = [struct.pack("<QQQI", 0x6A736677736872, 1, 7, 512) + bytes(S - 28),
             hdr(0, 1, 0), b"A" * S,
             hdr(2, 2, 2), b"B" * (2 * S),
             hdr(0, 0, 8, b"m1"),
             hdr(0, 0, 1),
             hdr(4, 2, 4),
             hdr(4, 1, 0), b"C" * S,
             hdr(0, 0, 8, b"dm-log-writes-end")]
    return b"".join(parts)


def test_pack_log_equals_hand_built_log():
    E = [(0, 1, 0, b"A" * 512), (2, 2, lw.FUA, b"B" * 1024), (0, 0, lw.MARK, "m1"),
         (0, 0, lw.FLUSH, b""), (4, 2, lw.DISCARD, b""), (4, 1, 0, b"C" * 512),
         (0, 0, lw.MARK, "dm-log-writes-end")]
    assert lw.pack_log(E) == _hand_log()


def test_reader_entries_and_positions(tmp_path):
    path = tmp_path / "log"
    path.write_bytes(_hand_log())
    for source in (str(path), _hand_log(), bytearray(_hand_log())):
        with lw.LogReader(source) as r:
            assert (r.version, r.sectorsize, r.nr_entries) == (1, 512, 7)
            got = [(e.index, e.pos, e.end_pos, e.sector, e.nr_sectors, e.flags, e.mark)
                   for e in r.entries()]
            assert got == [
                (0, 1, 3, 0, 1, 0, None),
                (1, 3, 6, 2, 2, lw.FUA, None),
                (2, 6, 7, 0, 0, lw.MARK, b"m1"),
                (3, 7, 8, 0, 0, lw.FLUSH, None),
                (4, 8, 9, 4, 2, lw.DISCARD, None),      # discards carry no data
                (5, 9, 11, 4, 1, 0, None),
                (6, 11, 12, 0, 0, lw.MARK, b"dm-log-writes-end"),
            ]
            es = list(r.entries())
            assert r.read_data(es[0]) == b"A" * 512
            assert r.read_data(es[1]) == b"B" * 1024
            assert r.read_data(es[4]) == b""
            assert es[4].size == 1024
            assert r.find_mark("m1").index == 2
            assert r.find_mark("m") is None
            assert [e.index for e in r.entries(start=5)] == [5, 6]
    with open(path, "rb") as f:
        assert len(list(lw.LogReader(f).entries())) == 7


def test_entry_as_dict():
    e = next(iter(lw.LogReader(_hand_log()).entries(start=2)))
    assert e.as_dict() == {"index": 2, "pos": 6, "end_pos": 7, "sector": 0, "nr_sectors": 0,
                           "size": 0, "flags": 8, "flag_names": ["MARK"], "mark": "m1",
                           "data_offset": 3584}


def test_reader_errors():
    log = _hand_log()
    with pytest.raises(lw.BadMagic) as ei:
        lw.LogReader(b"\0" * 512 + log[512:])
    assert str(ei.value) == "Magic doesn't match"
    bad = bytearray(log)
    bad[8] = 2
    with pytest.raises(lw.BadVersion) as ei:
        lw.LogReader(bytes(bad))
    assert str(ei.value) == "Version mismatch, wanted 1, have 2"
    with pytest.raises(lw.ShortSuper):
        lw.LogReader(log[:20])
    bad = bytearray(log)
    bad[512 * 3 + 32] = 7                    # entry 1's header is not zero padded
    with pytest.raises(lw.Malformed) as ei:
        list(lw.LogReader(bytes(bad)).entries())
    assert ei.value.pos == 3 and str(ei.value) == "Malformed entry @3"
    with pytest.raises(lw.Truncated):
        list(lw.LogReader(log[:512 * 5 + 10]).entries())
    r = lw.LogReader(log[:512 * 2 + 100])
    with pytest.raises(lw.Truncated):
        r.read_data(next(iter(r.entries())))


def test_reader_beyond_a_lagging_super():
    log = bytearray(_hand_log())
    log[16:24] = (3).to_bytes(8, "little")   # the super was last written at entry 3
    r = lw.LogReader(bytes(log))
    assert len(list(r.entries())) == 3
    assert len(list(r.entries(beyond_super=True))) == 7
    # trailing garbage (zeros) ends the scan quietly
    r = lw.LogReader(bytes(log) + bytes(4096))
    assert len(list(r.entries(beyond_super=True))) == 7


# --- the real kernel log -----------------------------------------------------------

def test_golden_hexdump_matches_raw_capture(golden_log):
    assert len(golden_log) == 65536
    assert need_golden("lw-log-first-64k.bin", binary=True) == golden_log


def test_golden_kernel_log_entries(golden_log):
    r = lw.LogReader(golden_log)
    assert (r.version, r.sectorsize, r.nr_entries) == (1, 512, 9)
    es = list(r.entries())
    got = [(e.pos, e.sector, e.nr_sectors, e.flags) for e in es]
    assert got == [(1, 0, 8, 0), (10, 0, 0, lw.FLUSH), (11, 0, 0, lw.MARK),
                   (12, 64, 8, 0), (21, 72, 8, 0), (30, 0, 0, lw.FLUSH),
                   (31, 0, 0, lw.MARK), (32, 0, 0, lw.MARK), (33, 0, 0, lw.MARK)]
    marks = [e.mark for e in es if e.mark is not None]
    assert marks[:2] == [b"mymark", b"second"]
    assert marks[2] == b"a" * 398 and es[7].data_len == 398   # the long mark
    assert marks[3] == b"dm-log-writes-end"
    data = r.read_data(es[0])
    assert len(data) == 4096
    assert data.startswith(b"HELLO-LOG-WRITES-0001\0") and data[21:] == bytes(4075)
    assert r.read_data(es[3]) == bytes(4096) == r.read_data(es[4])
    assert es[-1].end_pos == 34
    assert golden_log[34 * 512:] == bytes(65536 - 34 * 512)


def test_writer_reproduces_the_kernel_log_and_status(golden_log):
    """Replays the capture session (INDEX-lw.tsv) through LogWriter: same bytes, same status."""
    dev = bytearray(65536)

    def write(off, data):
        dev[off:off + len(data)] = data

    w = lw.LogWriter(512, write, end_sector=32 * 1024 * 1024 // 512)
    assert w.status_info() == "0 0"
    hello = b"HELLO-LOG-WRITES-0001".ljust(4096, b"\0")
    w.log_block(0, 8, 0, hello)          # dd ... conv=fsync: the write, then the flush
    w.log_block(0, 0, lw.FLUSH)
    assert w.status_info() == "2 10"
    assert dev[:512] == bytes(512)       # no FUA/MARK yet: the super is not written
    w.log_mark("mymark")
    assert w.status_info() == "3 11"
    w.log_block(64, 8, 0, bytes(4096))
    w.log_block(72, 8, 0, bytes(4096))
    w.log_block(0, 0, lw.FLUSH)
    assert w.status_info() == "6 30"
    w.log_mark("second")
    assert w.status_info() == "7 31"
    w.log_mark("a" * 398)
    assert w.status_info() == "8 32"
    w.log_mark("dm-log-writes-end")      # the destructor's mark
    assert bytes(dev) == golden_log


def test_writer_super_rule_and_sector_units():
    dev = bytearray(1 << 20)

    def write(off, data):
        dev[off:off + len(data)] = data

    w = lw.LogWriter(4096, write, end_sector=2048)
    assert w.status_info() == "0 7"      # next_sector counts 512-byte sectors
    w.log_block(3, 2, 0, b"x" * 8192)
    assert w.next_sector == 8 + 8 + 16
    assert dev[:4096] == bytes(4096)
    w.log_block(1, 4, lw.DISCARD)        # discards take a header only
    assert w.next_sector == 40
    w.log_block(0, 1, lw.FUA, b"f" * 4096)
    assert lw.LogReader(bytes(dev)).nr_entries == 3
    w.log_block(9, 1, 0, b"y" * 4096)
    assert lw.LogReader(bytes(dev)).nr_entries == 3   # lags until the next FUA/MARK
    assert [e.sector for e in lw.LogReader(bytes(dev)).entries(beyond_super=True)] == [3, 1, 0, 9]
    w.log_mark("m" * 5000)
    r = lw.LogReader(bytes(dev))
    assert r.nr_entries == 5
    assert list(r.entries())[-1].mark == b"m" * 4063


def test_writer_out_of_space():
    dev = bytearray(16 * 512)
    msgs = []

    def write(off, data):
        dev[off:off + len(data)] = data

    w = lw.LogWriter(512, write, end_sector=16, dmerr=msgs.append)
    assert w.log_block(0, 4, 0, b"a" * 2048)          # next_sector 1 -> 6
    assert w.log_block(0, 0, lw.FLUSH)                # -> 7
    # 7 + 8 + 1 == 16 == end_sector: the kernel's ">=" refuses an entry that would
    # exactly fill the device; next_sector stays advanced, the entry is not counted.
    assert not w.log_block(8, 8, 0, b"b" * 4096)
    assert msgs == ["Ran out of space on the logdev"]
    assert w.status_info() == "2 15 logging_disabled"
    assert dev[7 * 512:] == bytes(9 * 512)
    assert not w.log_mark("late")                     # nothing more is logged
    assert w.logged_entries == 2 and w.next_sector == 16


def test_writer_log_write_error_disables_logging():
    calls = []

    def write(off, data):
        calls.append(off)
        if len(calls) == 2:
            raise OSError(5, "EIO")

    w = lw.LogWriter(512, write, end_sector=1000)
    w.log_block(0, 1, 0, b"a" * 512)
    assert not w.logging_enabled
    assert w.messages == ["Error writing log block, error=10"]
    assert w.status_info() == "1 2 logging_disabled"
    assert not w.log_block(0, 1, 0, b"a" * 512)


def test_writer_unknown_size_then_known():
    sizes = [0, 0, 4]
    dev = bytearray(8192)

    def write(off, data):
        dev[off:off + len(data)] = data

    w = lw.LogWriter(512, write, end_sector=0, get_end_sector=lambda: sizes.pop(0))
    assert w.log_block(0, 0, lw.FLUSH)                # size unknown: no limit
    assert w.log_block(0, 0, lw.FLUSH)
    assert not w.log_block(0, 0, lw.FLUSH)            # 4 >= 4 now that it is known
