"""Block stores: where 4096-byte metadata blocks live.

Everything in :mod:`dmctl.pdata` does its I/O through an object with this protocol:

- ``nr_blocks``: number of whole 4096-byte blocks on the device;
- ``read(blocknr) -> bytes``;
- ``write(blocknr, data)``;
- ``flush()``: a write barrier (REQ_PREFLUSH): every write before it is durable after it.

:class:`FileBlockStore` is a file or block device; :class:`MemoryBlockStore` keeps blocks in a
dict; :class:`CrashableStore` wraps another store and keeps writes pending until ``flush()``,
so that ``crash()`` can throw away everything not yet flushed (a power cut).
"""

import os
from typing import Protocol

BLOCK_SIZE = 4096
ZERO_BLOCK = bytes(BLOCK_SIZE)


class BlockStore(Protocol):
    nr_blocks: int

    def read(self, blocknr: int) -> bytes: ...

    def write(self, blocknr: int, data) -> None: ...

    def flush(self) -> None: ...


def _check_range(store, blocknr):
    if not 0 <= blocknr < store.nr_blocks:
        raise IndexError("block %d beyond the end of the device (%d blocks)"
                         % (blocknr, store.nr_blocks))


class FileBlockStore:
    """A regular file or block device seen as 4 KiB blocks.

    ``size`` (bytes) creates or extends a regular file to that size.  ``sync`` makes
    ``flush()`` call fdatasync (off by default: tests want speed, not durability).
    """

    def __init__(self, path, size=None, readonly=False, sync=False):
        self.path = path
        self.sync = sync
        flags = os.O_RDONLY if readonly else os.O_RDWR
        if size is not None and not readonly:
            flags |= os.O_CREAT
        self.fd = os.open(path, flags, 0o644)
        if size is not None and not readonly:
            if os.fstat(self.fd).st_size < size:
                os.ftruncate(self.fd, size)
        end = os.lseek(self.fd, 0, os.SEEK_END)
        self.nr_blocks = end // BLOCK_SIZE

    def read(self, blocknr):
        _check_range(self, blocknr)
        data = os.pread(self.fd, BLOCK_SIZE, blocknr * BLOCK_SIZE)
        if len(data) < BLOCK_SIZE:
            data += bytes(BLOCK_SIZE - len(data))
        return data

    def write(self, blocknr, data):
        _check_range(self, blocknr)
        if len(data) != BLOCK_SIZE:
            raise ValueError("metadata blocks are %d bytes" % BLOCK_SIZE)
        os.pwrite(self.fd, data, blocknr * BLOCK_SIZE)

    def flush(self):
        if self.sync:
            os.fdatasync(self.fd)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MemoryBlockStore:
    """Blocks in a dict; absent blocks read as zeros."""

    def __init__(self, nr_blocks):
        self.nr_blocks = nr_blocks
        self.blocks = {}

    def read(self, blocknr):
        _check_range(self, blocknr)
        return self.blocks.get(blocknr, ZERO_BLOCK)

    def write(self, blocknr, data):
        _check_range(self, blocknr)
        if len(data) != BLOCK_SIZE:
            raise ValueError("metadata blocks are %d bytes" % BLOCK_SIZE)
        self.blocks[blocknr] = bytes(data)

    def flush(self):
        pass


class InjectedCrash(Exception):
    """Raised by :class:`CrashableStore` when its write/flush budget runs out."""


class CrashableStore:
    """Wraps a store; writes stay pending (readable) until ``flush()`` makes them durable.

    ``crash()`` throws the pending writes away, as a power cut would.  ``fail_after(n)``
    makes the n+1-th write or flush from now raise :class:`InjectedCrash` (the I/O is not
    done), to stop a commit at an arbitrary point.
    """

    def __init__(self, inner):
        self.inner = inner
        self.nr_blocks = inner.nr_blocks
        self.pending = {}
        self.budget = None
        self.writes = 0
        self.flushes = 0

    def _spend(self):
        if self.budget is not None:
            if self.budget <= 0:
                raise InjectedCrash("injected crash")
            self.budget -= 1

    def fail_after(self, n):
        self.budget = n

    def read(self, blocknr):
        _check_range(self, blocknr)
        data = self.pending.get(blocknr)
        return data if data is not None else self.inner.read(blocknr)

    def write(self, blocknr, data):
        _check_range(self, blocknr)
        self._spend()
        self.writes += 1
        self.pending[blocknr] = bytes(data)

    def flush(self):
        self._spend()
        self.flushes += 1
        for b, data in self.pending.items():
            self.inner.write(b, data)
        self.pending.clear()
        self.inner.flush()

    def crash(self, keep=None):
        """A power cut: lose the writes not yet flushed; disarm the failure budget.

        ``keep(blocknr) -> bool`` picks unflushed writes that reached the disk anyway
        (a disk may complete any subset of the writes it has not been told to flush).
        """
        if keep is not None:
            for b, data in self.pending.items():
                if keep(b):
                    self.inner.write(b, data)
        self.pending.clear()
        self.budget = None
