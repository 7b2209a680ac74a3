"""The write cache's dirty index: runs of 4 KiB blocks (extents) instead of one entry per
block, checked directly and against a per-block model of the cache's semantics."""

import os
import random
from array import array

import pytest

from dmctl.sim.blockdev import BLOCK, WriteCache, _punch_hole

NBLOCKS = 64


class Disk:
    """A backing file driven the way BackingFile.submit drives its cache."""

    def __init__(self, tmp_path, state=None):
        self.path = str(tmp_path / "disk.img")
        if not os.path.exists(self.path):
            with open(self.path, "wb") as f:
                f.truncate(NBLOCKS * BLOCK)
        self.fd = os.open(self.path, os.O_RDWR)
        self.cache = WriteCache(str(tmp_path / "journal"), state)

    def write(self, off, data, fua=False):
        self.cache.before_write(self.fd, off, len(data))
        os.pwrite(self.fd, data, off)
        if fua:
            self.cache.made_durable(self.fd, off, len(data), data)

    def discard(self, off, n, fua=False):
        self.cache.before_write(self.fd, off, n)
        _punch_hole(self.fd, off, n)
        if fua:
            self.cache.made_durable(self.fd, off, n, bytes(n))

    def read(self, off=0, n=NBLOCKS * BLOCK):
        return os.pread(self.fd, n, off)

    def close(self):
        self.cache.close()
        os.close(self.fd)


@pytest.fixture
def disk(tmp_path):
    d = Disk(tmp_path)
    yield d
    d.close()


def blk(b, byte, n=1):
    return bytes([byte]) * (n * BLOCK)


def test_sequential_writes_over_a_hole_are_one_extent(disk):
    for b in range(0, 32, 4):
        disk.write(b * BLOCK, blk(b, 1, 4))
    assert disk.cache.extents() == [(0, 32, -1)]
    assert len(disk.cache) == 32
    assert disk.cache.crash(disk.fd) == (32, 0)
    assert disk.read() == bytes(NBLOCKS * BLOCK)
    assert disk.cache.extents() == []


def test_overlapping_and_adjacent_writes_merge(disk):
    disk.write(0, blk(0, 1, 4))             # blocks 0-3
    disk.write(2 * BLOCK, blk(2, 2, 6))     # 2-7: overlaps, extends
    disk.write(10 * BLOCK, blk(10, 3, 2))   # 10-11: apart
    disk.write(8 * BLOCK, blk(8, 4, 2))     # 8-9: fills the gap, joins both sides
    assert disk.cache.extents() == [(0, 12, -1)]


def test_runs_over_data_share_one_journal_extent(disk):
    disk.write(0, blk(0, 9, 16))
    disk.cache.flush()
    disk.write(0, blk(0, 1, 4))
    disk.write(4 * BLOCK, blk(4, 2, 4))     # journalled right after blocks 0-3
    disk.write(12 * BLOCK, blk(12, 3, 2))
    assert disk.cache.extents() == [(0, 8, 0), (12, 14, 8 * BLOCK)]
    # a write over both the dirty run and clean blocks journals only the clean ones
    disk.write(6 * BLOCK, blk(6, 5, 4))     # 6-9: 8-9 clean
    assert disk.cache.extents() == [(0, 8, 0), (8, 10, 10 * BLOCK), (12, 14, 8 * BLOCK)]
    disk.cache.crash(disk.fd)
    assert disk.read(0, 16 * BLOCK) == blk(0, 9, 16)


def test_crash_after_partial_fua_overwrite_of_a_run(disk):
    disk.write(0, blk(0, 9, 16))
    disk.cache.flush()
    disk.write(0, blk(0, 1, 16))                        # one dirty run 0-15
    disk.write(4 * BLOCK, blk(4, 2, 2), fua=True)       # 4-5 durable: the run splits
    assert [(s, e) for s, e, _ in disk.cache.extents()] == [(0, 4), (6, 16)]
    disk.write(8 * BLOCK + 512, b"\x03" * 1024, fua=True)   # inside block 8: patched
    disk.write(10 * BLOCK - 512, b"\x04" * 1024, fua=True)  # straddles blocks 9 and 10
    assert len(disk.cache) == 14
    disk.cache.crash(disk.fd)
    want = bytearray(blk(0, 9, 16))
    want[4 * BLOCK:6 * BLOCK] = blk(4, 2, 2)
    want[8 * BLOCK + 512:8 * BLOCK + 1536] = b"\x03" * 1024
    want[10 * BLOCK - 512:10 * BLOCK + 512] = b"\x04" * 1024
    assert disk.read(0, 16 * BLOCK) == bytes(want)


def test_partial_fua_inside_a_hole_run_keeps_the_rest_a_hole(disk):
    disk.write(0, blk(0, 1, 8))                         # over a hole: (0, 8, -1)
    disk.write(3 * BLOCK + 1024, b"\x07" * 512, fua=True)
    exts = disk.cache.extents()
    assert [(s, e) for s, e, _ in exts] == [(0, 3), (3, 4), (4, 8)]
    assert exts[0][2] == exts[2][2] == -1 and exts[1][2] >= 0
    disk.cache.crash(disk.fd)
    want = bytearray(8 * BLOCK)
    want[3 * BLOCK + 1024:3 * BLOCK + 1536] = b"\x07" * 512
    assert disk.read(0, 8 * BLOCK) == bytes(want)


def test_discard_inside_a_run(disk):
    disk.write(0, blk(0, 9, 16))
    disk.cache.flush()
    disk.write(0, blk(0, 1, 16))
    disk.discard(4 * BLOCK, 4 * BLOCK)                  # inside the dirty run
    assert disk.read(4 * BLOCK, 4 * BLOCK) == bytes(4 * BLOCK)
    assert [(s, e) for s, e, _ in disk.cache.extents()] == [(0, 16)]
    disk.discard(12 * BLOCK, 2 * BLOCK, fua=True)       # durable discard: 12-13 leave
    assert [(s, e) for s, e, _ in disk.cache.extents()] == [(0, 12), (14, 16)]
    disk.cache.crash(disk.fd)
    want = bytearray(blk(0, 9, 16))
    want[12 * BLOCK:14 * BLOCK] = bytes(2 * BLOCK)
    assert disk.read(0, 16 * BLOCK) == bytes(want)


def test_flush_keeps_only_the_in_flight_ranges(disk):
    disk.write(0, blk(0, 1, 20))
    disk.cache.flush(keep=[(2, 4), (3, 6), (15, 30)])
    assert disk.cache.extents() == [(2, 7, -1), (15, 20, -1)]
    disk.cache.flush()
    assert disk.cache.extents() == [] and len(disk.cache) == 0


def test_state_round_trip_and_the_per_block_format(tmp_path, disk):
    disk.write(0, blk(0, 1, 4))
    disk.cache.flush()
    disk.write(0, blk(0, 2, 4))
    disk.write(8 * BLOCK, blk(8, 3, 2))
    state = disk.cache.state()
    assert WriteCache(disk.cache.jpath, state).extents() == disk.cache.extents()
    # state saved by the per-block index: (block, joff) pairs
    old = array("q", [9, -1, 1, 4096, 0, 0, 8, -1, 2, 8192, 3, 12288]).tobytes()
    assert WriteCache(disk.cache.jpath, old).extents() == [(0, 4, 0), (8, 10, -1)]
    assert WriteCache(disk.cache.jpath, None).state() is None


class Model:
    """The cache's semantics per block: current and durable images, the dirty set."""

    def __init__(self):
        self.cur = bytearray(NBLOCKS * BLOCK)
        self.dur = bytearray(NBLOCKS * BLOCK)
        self.dirty = set()

    def write(self, off, data, fua):
        self.dirty.update(range(off // BLOCK, (off + len(data) - 1) // BLOCK + 1))
        self.cur[off:off + len(data)] = data
        if fua:
            self.dur[off:off + len(data)] = data
            end = off + len(data)
            self.dirty -= set(range(-(-off // BLOCK), end // BLOCK))

    def flush(self, keep):
        kept = set()
        for lo, hi in keep:
            kept.update(range(lo, hi + 1))
        for b in self.dirty - kept:
            self.dur[b * BLOCK:(b + 1) * BLOCK] = self.cur[b * BLOCK:(b + 1) * BLOCK]
        self.dirty &= kept

    def crash(self, rng):
        for b in sorted(self.dirty):
            if rng is not None and rng.random() < 0.5:
                self.dur[b * BLOCK:(b + 1) * BLOCK] = self.cur[b * BLOCK:(b + 1) * BLOCK]
            else:
                self.cur[b * BLOCK:(b + 1) * BLOCK] = self.dur[b * BLOCK:(b + 1) * BLOCK]
        self.dirty = set()


@pytest.mark.parametrize("seed", range(12))
def test_extents_behave_as_the_per_block_model(tmp_path, seed):
    """Random writes (sector-granular, some FUA), discards, flushes with in-flight
    ranges, state reloads and crashes (seeded or not): the file always holds what
    the per-block model says, and a seeded crash draws once per dirty block."""
    rng = random.Random(seed)
    disk = Disk(tmp_path)
    model = Model()
    try:
        for step in range(120):
            op = rng.random()
            sector = rng.randrange(NBLOCKS * 8)
            n = rng.randrange(1, min(NBLOCKS * 8 - sector, 40) + 1)
            off, length = sector * 512, n * 512
            if op < 0.55:
                data = bytes([rng.randrange(1, 256)]) * length
                fua = rng.random() < 0.25
                disk.write(off, data, fua)
                model.write(off, data, fua)
            elif op < 0.7:
                fua = rng.random() < 0.3
                disk.discard(off, length, fua)
                model.write(off, bytes(length), fua)
            elif op < 0.8:
                keep = [tuple(sorted((rng.randrange(NBLOCKS), rng.randrange(NBLOCKS))))
                        for _ in range(rng.randrange(3))]
                disk.cache.flush(keep)
                model.flush(keep)
            elif op < 0.87:
                state = disk.cache.state()
                disk.cache.close()
                disk.cache = WriteCache(disk.cache.jpath, state)
            else:
                crng = random.Random(step) if rng.random() < 0.5 else None
                disk.cache.crash(disk.fd, crng)
                model.crash(random.Random(step) if crng else None)
            assert len(disk.cache) == len(model.dirty)
            assert disk.read() == bytes(model.cur), (seed, step)
        disk.cache.crash(disk.fd)
        model.crash(None)
        assert disk.read() == bytes(model.cur)
    finally:
        disk.close()


def test_streaming_into_a_hole_asks_seek_data_once(disk, monkeypatch):
    import dmctl.sim.blockdev as bd
    calls = []
    real = os.lseek

    def lseek(fd, off, how):
        if how == os.SEEK_DATA:
            calls.append(off)
        return real(fd, off, how)
    monkeypatch.setattr(bd.os, "lseek", lseek)
    for b in range(8, 40, 4):
        disk.write(b * BLOCK, blk(b, 1, 4))
    assert calls == [8 * BLOCK]
    # flushed data written again is not a hole: its durable image is journalled
    disk.cache.flush()
    disk.write(8 * BLOCK, blk(8, 2, 4))
    assert disk.cache.extents() == [(8, 12, 0)]
    # a hole before data written in this step is still asked about, and is one
    disk.write(2 * BLOCK, blk(2, 3, 4))
    assert disk.cache.extents() == [(2, 6, -1), (8, 12, 0)]
    disk.cache.crash(disk.fd)
    want = bytearray(NBLOCKS * BLOCK)
    want[8 * BLOCK:40 * BLOCK] = blk(8, 1, 32)
    assert disk.read() == bytes(want)
