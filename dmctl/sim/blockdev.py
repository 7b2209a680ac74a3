"""Backing files as disks with a volatile write cache.

A regular file named in a table is the simulator's loop device: it gets a stable
device number (major 7), its size (rounded down to 512 bytes) is the device size, and
I/O to it behaves like a disk with a volatile write cache:

* a completed write is visible to reads at once;
* it is durable only after a flush issued after it completed, or if it was FUA;
* ``dmctl sim crash`` restores every non-durable block to its durable contents
  (with a seed, a reproducible random subset of them survives instead).

The cache is tracked per 4 KiB block: the first write to a clean block since the last
flush saves the block's durable contents (its "pre-image") in a journal file next to
the state database (or just notes "was a hole", which costs nothing for sparse files).
Later writes to the same block cost nothing extra.  Files stay sparse: discards punch
holes, and holes are never filled by the cache.
"""

import ctypes
import os
import pickle
from array import array

from dmctl.sim import bio as B

BLOCK = 4096
LOOP_MAJOR = 7

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


def _is_hole(fd, offset, length):
    """True when [offset, offset+length) holds no data (SEEK_DATA)."""
    try:
        nxt = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError:
        return True  # ENXIO: no data after offset
    return nxt >= offset + length


class WriteCache:
    """The volatile cache state of one backing file (persisted between processes).

    ``index`` maps each dirty 4 KiB block to the journal offset of its durable image
    (-1: it was a hole).  A dict, not a bitmap: writes scattered over a huge sparse
    file must cost memory per dirty block, not per block of the file.
    """

    __slots__ = ("_index", "_raw", "jpath", "jfd", "changed")

    def __init__(self, jpath, state=None):
        self.jpath = jpath
        self.jfd = None
        self.changed = False
        self._index = None if state else {}
        self._raw = state           # parsed on first use: reads never need it

    @property
    def index(self):
        idx = self._index
        if idx is None:
            a = array("q")
            a.frombytes(self._raw)
            idx = self._index = dict(zip(a[0::2], a[1::2]))
            self._raw = None
        return idx

    @index.setter
    def index(self, value):
        self._index = value
        self._raw = None

    def state(self):
        if self._index is None:
            return self._raw
        if not self._index:
            return None
        from itertools import chain
        return array("q", chain.from_iterable(self._index.items())).tobytes()

    def _jfd(self):
        if self.jfd is None:
            self.jfd = os.open(self.jpath, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self.jfd

    def before_write(self, fd, offset, length):
        """Save the durable contents of every clean block the write will touch."""
        first = offset // BLOCK
        last = (offset + length - 1) // BLOCK
        index = self.index
        b = first
        while b <= last:
            if b in index:
                b += 1
                continue
            # a run of clean blocks
            e = b
            while e + 1 <= last and (e + 1) not in index:
                e += 1
            start = b * BLOCK
            n = (e - b + 1) * BLOCK
            if _is_hole(fd, start, n):
                index.update(dict.fromkeys(range(b, e + 1), -1))
            else:
                pre = os.pread(fd, n, start)
                if len(pre) < n:
                    pre = pre + bytes(n - len(pre))
                jfd = self._jfd()
                joff = os.lseek(jfd, 0, os.SEEK_END)
                os.pwrite(jfd, pre, joff)
                index.update(zip(range(b, e + 1), range(joff, joff + n, BLOCK)))
            self.changed = True
            b = e + 1

    def made_durable(self, fd, offset, length, data):
        """A FUA write of ``data`` at ``offset`` reached the media."""
        first = offset // BLOCK
        last = (offset + length - 1) // BLOCK
        for b in range(first, last + 1):
            if b not in self.index:
                continue
            bstart = b * BLOCK
            if offset <= bstart and offset + length >= bstart + BLOCK:
                del self.index[b]
            else:
                # partial: patch the saved durable image with the FUA bytes
                joff = self.index[b]
                jfd = self._jfd()
                if joff < 0:
                    joff = os.lseek(jfd, 0, os.SEEK_END)
                    os.pwrite(jfd, bytes(BLOCK), joff)
                    self.index[b] = joff
                lo = max(offset, bstart)
                hi = min(offset + length, bstart + BLOCK)
                os.pwrite(jfd, bytes(data[lo - offset:hi - offset]), joff + (lo - bstart))
            self.changed = True

    def flush(self, keep=()):
        """Everything completed so far is durable (blocks in ``keep`` stay dirty)."""
        if not self.index:
            return
        if keep:
            kept = {b: self.index[b] for b in keep if b in self.index}
        else:
            kept = {}
        self.index = kept
        if not kept:
            if self.jfd is not None:
                os.ftruncate(self.jfd, 0)
            elif os.path.exists(self.jpath):
                os.truncate(self.jpath, 0)
        self.changed = True

    def crash(self, fd, rng=None):
        """Power cut: every dirty block reverts to its durable contents, except a
        random subset (``rng``) that reached the media anyway.  Returns (reverted,
        survived)."""
        reverted = survived = 0
        jfd = None
        for b in sorted(self.index):
            if rng is not None and rng.random() < 0.5:
                survived += 1
                continue
            joff = self.index[b]
            if joff < 0:
                _punch_hole(fd, b * BLOCK, BLOCK)
            else:
                if jfd is None:
                    jfd = self._jfd()
                os.pwrite(fd, os.pread(jfd, BLOCK, joff), b * BLOCK)
            reverted += 1
        self.index = {}
        if self.jfd is not None or os.path.exists(self.jpath):
            os.truncate(self.jpath, 0)
        self.changed = True
        return reverted, survived

    def close(self):
        if self.jfd is not None:
            os.close(self.jfd)
            self.jfd = None


class Faults:
    """Injected failures (``dmctl sim fail``): kinds read/write/flush over ranges."""
    __slots__ = ("rules",)

    def __init__(self, state=None):
        self.rules = pickle.loads(state) if state else []

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
        keep = ()
        if self.inflight:
            keep = set()
            for first, last in self.inflight.values():
                keep.update(range(first, last + 1))
        self.cache.flush(keep)
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
