"""Backing files as disks with a volatile write cache.

A regular file named in a table is the simulator's loop device: it gets a stable
device number (major 7), its size (rounded down to 512 bytes) is the device size, and
I/O to it behaves like a disk with a volatile write cache:

* a completed write is visible to reads at once;
* it is durable only after a flush issued after it completed, or if it was FUA;
* ``dmctl sim crash`` restores every non-durable block to its durable contents
  (with a seed, a reproducible random subset of them survives instead).

The cache is tracked per 4 KiB block, in runs: the first write to a clean block since
the last flush saves the block's durable contents (its "pre-image") in a journal file
next to the state database (or just notes "was a hole", which costs nothing for sparse
files).  Later writes to the same block cost nothing extra.  Files stay sparse: discards punch
holes, and holes are never filled by the cache.
"""

import ctypes
import errno
import os
import pickle
from array import array
from bisect import bisect_right

from dmctl.constants import LOOP_MAJOR
from dmctl.sim import bio as B

BLOCK = 4096

_libc = None


def _punch_hole(fd, offset, length):
    """fallocate(PUNCH_HOLE|KEEP_SIZE); falls back to writing zeros."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong,
                                    ctypes.c_longlong]
    if _libc.fallocate(fd, 3, offset, length) != 0:
        zeros = bytes(min(length, 1 << 20))
        done = 0
        while done < length:
            n = min(len(zeros), length - done)
            os.pwrite(fd, zeros[:n], offset + done)
            done += n


class WriteCache:
    """The volatile cache state of one backing file (persisted between processes).

    The dirty blocks are kept as extents: a sorted list of non-overlapping
    ``(start, end, joff)`` runs of 4 KiB blocks ``[start, end)`` whose durable images
    lie contiguously in the journal from ``joff`` (-1: the run was a hole).  A
    sequential write over a hole or over clean data extends the previous extent, so
    streaming writes cost one entry, not one per block, and writes scattered over a
    huge sparse file cost memory per dirty run, not per block of the file.
    """

    __slots__ = ("_starts", "_exts", "_raw", "jpath", "jfd", "changed", "_hole")

    # first word of the persisted state: extents follow as (start, end, joff) triples
    # (state written before extents is (block, joff) pairs, blocks being >= 0)
    _EXTENTS = -2

    def __init__(self, jpath, state=None):
        self.jpath = jpath
        self.jfd = None
        self.changed = False
        self._starts = self._exts = None
        self._raw = state           # parsed on first use: reads never need it
        # [lo, hi): bytes of the file known to be a hole (from the last SEEK_DATA,
        # less what was written since): a write streaming into a sparse file asks
        # once, not once per bio.  Kept for this process's step only.
        self._hole = None
        if not state:
            self._set([])

    def _set(self, exts):
        self._exts = exts
        self._starts = [e[0] for e in exts]
        self._raw = None

    def _extents(self):
        exts = self._exts
        if exts is None:
            a = array("q")
            a.frombytes(self._raw)
            if a and a[0] == self._EXTENTS:
                exts = list(zip(a[1::3], a[2::3], a[3::3]))
            else:
                exts = []
                for b, j in sorted(zip(a[0::2], a[1::2])):
                    _append_merged(exts, b, b + 1, j)
            self._set(exts)
        return exts

    def __len__(self):
        """The number of dirty 4 KiB blocks."""
        return sum(e - s for s, e, _ in self._extents())

    def extents(self):
        """[(first block, end block, journal offset or -1)], sorted."""
        return list(self._extents())

    def state(self):
        if self._exts is None:
            return self._raw
        if not self._exts:
            return None
        from itertools import chain
        return array("q", chain((self._EXTENTS,), chain.from_iterable(self._exts))).tobytes()

    def _jfd(self):
        if self.jfd is None:
            self.jfd = os.open(self.jpath, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self.jfd

    def _insert(self, i, s, e, j):
        """Insert the clean run [s, e) at position ``i``, merged with its neighbours
        when the blocks and their journal images continue each other.  Returns the
        position after it and the end of the (merged) extent."""
        exts, starts = self._exts, self._starts
        if i > 0:
            ps, pe, pj = exts[i - 1]
            if pe == s and _continues(pe - ps, pj, j):
                s, j = ps, pj
                i -= 1
                del exts[i]
                del starts[i]
        if i < len(exts):
            ns, ne, nj = exts[i]
            if ns == e and _continues(e - s, j, nj):
                e = ne
                del exts[i]
                del starts[i]
        exts.insert(i, (s, e, j))
        starts.insert(i, s)
        return i + 1, e

    def before_write(self, fd, offset, length):
        """Save the durable contents of every clean block the write will touch."""
        cur = offset // BLOCK
        stop = (offset + length - 1) // BLOCK + 1
        exts = self._extents()
        i = bisect_right(self._starts, cur) - 1
        if i >= 0 and exts[i][1] > cur:
            cur = exts[i][1]
        i += 1
        while cur < stop:
            if i < len(exts) and exts[i][0] <= cur:
                cur = exts[i][1]
                i += 1
                continue
            # a run of clean blocks
            e = min(stop, exts[i][0]) if i < len(exts) else stop
            start = cur * BLOCK
            n = (e - cur) * BLOCK
            if self._is_hole(fd, start, n):
                j = -1
            else:
                pre = os.pread(fd, n, start)
                if len(pre) < n:
                    pre = pre + bytes(n - len(pre))
                jfd = self._jfd()
                j = os.lseek(jfd, 0, os.SEEK_END)
                os.pwrite(jfd, pre, j)
            i, cur = self._insert(i, cur, e, j)
            self.changed = True
        h = self._hole
        if h is not None and offset < h[1] and offset + length > h[0]:
            # the range is about to hold data: keep the hole before it (or after it,
            # when the range covers the hole's start)
            lo, hi = (offset + length, h[1]) if offset <= h[0] else (h[0], offset)
            self._hole = (lo, hi) if lo < hi else None

    def _is_hole(self, fd, offset, length):
        """True when [offset, offset+length) holds no data (SEEK_DATA, or what the
        last one said)."""
        h = self._hole
        if h is not None and h[0] <= offset and offset + length <= h[1]:
            return True
        try:
            nxt = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:          # no data after offset
                self._hole = (offset, _NO_DATA)
            return True
        self._hole = (offset, nxt) if nxt > offset else None
        return nxt >= offset + length

    def _split(self, b):
        """Make ``b`` the start of an extent (or of the clean space); returns the
        index of the first extent starting at or after ``b``."""
        exts, starts = self._exts, self._starts
        i = bisect_right(starts, b) - 1
        if i >= 0:
            s, e, j = exts[i]
            if s < b < e:
                exts[i] = (s, b, j)
                exts.insert(i + 1, (b, e, j if j < 0 else j + (b - s) * BLOCK))
                starts.insert(i + 1, b)
                return i + 1
            if s == b:
                return i
        return i + 1

    def _discard(self, lo, hi):
        """Forget blocks [lo, hi) (they are durable now); True if any was dirty."""
        exts = self._extents()
        i = self._split(lo)
        k = self._split(hi)
        if k == i:
            return False
        del exts[i:k]
        del self._starts[i:k]
        return True

    def _journal_block(self, b):
        """Journal offset of dirty block ``b``'s durable image (a hole's block gets
        a zeroed one), or None when ``b`` is clean."""
        exts = self._extents()
        i = bisect_right(self._starts, b) - 1
        if i < 0 or exts[i][1] <= b:
            return None
        s, e, j = exts[i]
        if j >= 0:
            return j + (b - s) * BLOCK
        jfd = self._jfd()
        j = os.lseek(jfd, 0, os.SEEK_END)
        os.pwrite(jfd, bytes(BLOCK), j)
        i = self._split(b)
        self._split(b + 1)
        self._exts[i] = (b, b + 1, j)
        return j

    def made_durable(self, fd, offset, length, data):
        """A FUA write of ``data`` at ``offset`` reached the media."""
        end = offset + length
        first = offset // BLOCK
        last = (end - 1) // BLOCK
        full_lo = -(-offset // BLOCK)
        full_hi = end // BLOCK
        for b in sorted({first, last}):
            bstart = b * BLOCK
            if offset <= bstart and end >= bstart + BLOCK:
                continue
            # partial: patch the saved durable image with the FUA bytes
            joff = self._journal_block(b)
            if joff is None:
                continue
            lo = max(offset, bstart)
            hi = min(end, bstart + BLOCK)
            os.pwrite(self._jfd(), bytes(data[lo - offset:hi - offset]), joff + (lo - bstart))
            self.changed = True
        if full_lo < full_hi and self._discard(full_lo, full_hi):
            self.changed = True

    def flush(self, keep=()):
        """Everything completed so far is durable (blocks in the ``keep`` ranges,
        (first, last) inclusive, stay dirty)."""
        exts = self._extents()
        if not exts:
            return
        kept = []
        for lo, hi in _merged_ranges(keep):
            i = bisect_right(self._starts, lo) - 1
            i = max(i, 0)
            while i < len(exts) and exts[i][0] <= hi:
                s, e, j = exts[i]
                a, z = max(s, lo), min(e, hi + 1)
                if a < z:
                    kept.append((a, z, j if j < 0 else j + (a - s) * BLOCK))
                i += 1
        self._set(kept)
        if not kept:
            if self.jfd is not None:
                os.ftruncate(self.jfd, 0)
            elif os.path.exists(self.jpath):
                os.truncate(self.jpath, 0)
        self.changed = True

    def crash(self, fd, rng=None):
        """Power cut: every dirty block reverts to its durable contents, except a
        random subset (``rng``, drawn once per block in block order) that reached the
        media anyway.  Returns (reverted, survived)."""
        reverted = survived = 0
        for s, e, j in self._extents():
            if rng is None:
                self._revert(fd, s, e, j, s)
                reverted += e - s
                continue
            run = None
            for b in range(s, e):
                if rng.random() < 0.5:
                    survived += 1
                    if run is not None:
                        self._revert(fd, run, b, j, s)
                        run = None
                    continue
                reverted += 1
                if run is None:
                    run = b
            if run is not None:
                self._revert(fd, run, e, j, s)
        self._set([])
        self._hole = None
        if self.jfd is not None or os.path.exists(self.jpath):
            os.truncate(self.jpath, 0)
        self.changed = True
        return reverted, survived

    def _revert(self, fd, lo, hi, j, s):
        """Blocks [lo, hi) of the extent starting at ``s`` get their durable images."""
        if j < 0:
            _punch_hole(fd, lo * BLOCK, (hi - lo) * BLOCK)
            return
        jfd = self._jfd()
        joff = j + (lo - s) * BLOCK
        for b in range(lo, hi, _COPY_BLOCKS):
            n = min(_COPY_BLOCKS, hi - b) * BLOCK
            os.pwrite(fd, os.pread(jfd, n, joff + (b - lo) * BLOCK), b * BLOCK)

    def close(self):
        if self.jfd is not None:
            os.close(self.jfd)
            self.jfd = None


_COPY_BLOCKS = 256      # a crash restores durable images 1 MiB at a time
_NO_DATA = 1 << 63      # the end of a hole that runs to the end of the file


def _continues(nblocks, j, nj):
    """Does journal offset ``nj`` continue an extent of ``nblocks`` blocks at ``j``?"""
    return nj == -1 if j < 0 else nj == j + nblocks * BLOCK


def _append_merged(exts, s, e, j):
    if exts:
        ps, pe, pj = exts[-1]
        if pe == s and _continues(pe - ps, pj, j):
            exts[-1] = (ps, e, pj)
            return
    exts.append((s, e, j))


def _merged_ranges(ranges):
    """Inclusive (first, last) ranges, sorted and merged where they touch."""
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


class Faults:
    """Injected failures (``dmctl sim fail``): kinds read/write/flush over ranges."""
    __slots__ = ("rules",)

    def __init__(self, state=None):
        if state:
            from dmctl.sim.store import loads
            self.rules = loads(state)
        else:
            self.rules = []

    def state(self):
        return pickle.dumps(self.rules, protocol=4) if self.rules else None

    def hits(self, kind, sector, nr):
        for k, lo, hi in self.rules:
            if k != kind:
                continue
            if lo is None:
                return True
            if kind == "flush":
                return True
            if sector < hi and sector + nr > lo:
                return True
        return False


class BackingFile:
    """A regular file as a block device (the simulator's loop device)."""

    is_dm = False

    def __init__(self, env, minor, path, cache_state=None, fault_state=None):
        self.env = env
        self.minor = minor
        self.major = LOOP_MAJOR
        self.path = path
        self._fd = None
        self._size = None
        self.cache = WriteCache(env.store.journal_path(minor), cache_state)
        self.faults = Faults(fault_state)
        self.logical_block_size = 512
        self.inflight = {}

    @property
    def devno(self):
        return (self.major, self.minor)

    @property
    def name(self):
        return "%d:%d" % (self.major, self.minor)

    @property
    def fd(self):
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        return self._fd

    @property
    def size(self):
        """Size in 512-byte sectors."""
        if self._size is None:
            self._size = os.stat(self.path).st_size >> 9
        return self._size

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.cache.close()

    # -- the I/O path ---------------------------------------------------------------
    def submit(self, bio):
        op = bio.op
        flags = bio.flags
        faults = self.faults
        if faults.rules:
            kind = "read" if op == B.READ else ("flush" if bio.nr_sectors == 0 else "write")
            if faults.hits(kind, bio.sector, bio.nr_sectors) or (
                    flags & B.PREFLUSH and faults.hits("flush", 0, 0)):
                self._complete(bio, 5)  # EIO
                return
        if op != B.READ and flags & B.PREFLUSH:
            self._flush()
        n = bio.nr_sectors
        if n:
            off = bio.sector << 9
            length = n << 9
            if bio.sector + n > self.size:
                self._complete(bio, 5)
                return
            fd = self.fd
            if op == B.READ:
                mv = bio.data
                got = os.preadv(fd, [mv], off)
                if got < length:
                    mv[got:length] = bytes(length - got)
            elif op == B.WRITE:
                self.cache.before_write(fd, off, length)
                data = bio.data
                w = os.pwrite(fd, data, off)
                while w < length:  # pragma: no cover - short writes
                    w += os.pwrite(fd, data[w:], off + w)
                if flags & B.FUA:
                    self.cache.made_durable(fd, off, length, data)
            elif op == B.DISCARD:
                self.cache.before_write(fd, off, length)
                _punch_hole(fd, off, length)
                if flags & B.FUA:
                    self.cache.made_durable(fd, off, length, bytes(length))
            if op != B.READ:
                self.env.note_cache(self)
        self._complete(bio, 0)

    def _flush(self):
        self.cache.flush(list(self.inflight.values()))
        self.env.note_cache(self)

    def _complete(self, bio, error):
        root = bio.root
        if root is not None and getattr(root, "hold", False):
            if bio.op != B.READ and bio.nr_sectors:
                self.inflight[id(bio)] = ((bio.sector << 9) // BLOCK,
                                          ((bio.sector + bio.nr_sectors) * 512 - 1) // BLOCK)
            root.held.append((self, bio, error))
            return
        B.bio_endio(bio, error)

    def release(self, bio, error):
        """Complete a held bio (the script's ``complete ID``)."""
        self.inflight.pop(id(bio), None)
        B.bio_endio(bio, error)
