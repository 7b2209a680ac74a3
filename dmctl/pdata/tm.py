"""Block manager and transaction manager (dm-block-manager.c, dm-transaction-manager.c).

The block manager caches blocks, checks them with a *validator* when they come from the
store and seals them (blocknr + checksum) when they go back.  The transaction manager adds
copy-on-write shadowing and the two-phase commit:

1. ``pre_commit()``: space-map commit, then write every dirty block and flush;
2. ``commit(superblock)``: write the superblock last, then flush.

Shadowed blocks are new locations, so a crash before step 2 leaves the previous committed
tree intact.

A validator is any object with ``prepare(buf, blocknr)`` (fill blocknr and checksum before a
write) and ``check(data, blocknr)`` (raise :class:`PDataError` when a read block is bad).
"""

from collections import OrderedDict

from .block import BLOCK_SIZE
from .errors import PDataError


class BlockManager:
    """A write-back block cache over a :class:`~dmctl.pdata.block.BlockStore`.

    Clean blocks sit in a small LRU (``cache_blocks``).  Dirty blocks stay in memory until
    ``flush()``; ``safe_point()`` may write some of them back early when more than
    ``max_dirty`` are held (only call it when nobody holds a buffer from ``write_lock``).
    """

    def __init__(self, store, cache_blocks=256, max_dirty=8192):
        self.store = store
        self.nr_blocks = store.nr_blocks
        self.cache_blocks = cache_blocks
        self.max_dirty = max_dirty
        self.clean = OrderedDict()     # blocknr -> (bytes, validator checked with)
        self.dirty = {}                # blocknr -> [bytearray, validator]
        self.reads = 0
        self.writes = 0

    def _check_range(self, b):
        if not 0 <= b < self.nr_blocks:
            e = PDataError(5, "block %d out of range (%d blocks)" % (b, self.nr_blocks))  # EIO
            # the kernel's bufio I/O past the device's end fails in the block layer
            # ("attempt to access beyond end of device"): no device-mapper log line
            e.kernel_logs = False
            raise e

    def _cache(self, b, data, v):
        self.clean[b] = (data, v)
        self.clean.move_to_end(b)
        while len(self.clean) > self.cache_blocks:
            self.clean.popitem(last=False)

    def read_lock(self, b, v=None):
        """The block's current contents (do not modify the result)."""
        d = self.dirty.get(b)
        if d is not None:
            return d[0]
        c = self.clean.get(b)
        if c is not None:
            data, checked = c
            if v is not None and checked is not v:
                v.check(data, b)
                self.clean[b] = (data, v)
            self.clean.move_to_end(b)
            return data
        self._check_range(b)
        data = self.store.read(b)
        self.reads += 1
        if v is not None:
            v.check(data, b)
        self._cache(b, data, v)
        return data

    def write_lock(self, b, v):
        """A mutable buffer for block ``b``, initialised from its contents."""
        d = self.dirty.get(b)
        if d is not None:
            d[1] = v
            return d[0]
        buf = bytearray(self.read_lock(b, v))
        self.clean.pop(b, None)
        self.dirty[b] = [buf, v]
        return buf

    def write_lock_zero(self, b, v):
        """A zeroed mutable buffer for block ``b`` (its old contents are not read)."""
        self._check_range(b)
        self.clean.pop(b, None)
        buf = bytearray(BLOCK_SIZE)
        self.dirty[b] = [buf, v]
        return buf

    def _write_back(self, b, buf, v):
        if v is not None:
            v.prepare(buf, b)
        data = bytes(buf)
        self.store.write(b, data)
        self.writes += 1
        self._cache(b, data, v)

    def write_dirty(self):
        """Write every dirty block (in block order), keeping them cached clean."""
        dirty, self.dirty = self.dirty, {}
        for b in sorted(dirty):
            buf, v = dirty[b]
            self._write_back(b, buf, v)

    def flush(self):
        """Write every dirty block, then a flush (write barrier)."""
        self.write_dirty()
        self.store.flush()

    def safe_point(self):
        if len(self.dirty) > self.max_dirty:
            self.write_dirty()

    def forget(self):
        """Drop everything cached, dirty blocks included (after a failed commit)."""
        self.clean.clear()
        self.dirty.clear()


class TransactionManager:
    """dm_transaction_manager: shadowing (copy-on-write) over a space map.

    ``sm`` is attached after construction (the metadata space map itself uses this
    transaction manager for its own blocks).
    """

    def __init__(self, bm, sm=None):
        self.bm = bm
        self.sm = sm
        self.shadows = set()

    # -- reads ------------------------------------------------------------------------
    def read_lock(self, b, v=None):
        return self.bm.read_lock(b, v)

    # -- allocation and shadowing -----------------------------------------------------
    def new_block(self, v):
        """dm_tm_new_block: a fresh zeroed block that needs no further shadowing."""
        b = self.sm.new_block()
        buf = self.bm.write_lock_zero(b, v)
        self.shadows.add(b)
        return b, buf

    def shadow_block(self, orig, v):
        """dm_tm_shadow_block -> (location, buffer, inc_children)."""
        inc = self.sm.count_is_more_than_one(orig)
        if orig in self.shadows and not inc:
            return orig, self.bm.write_lock(orig, v), False
        new = self.sm.new_block()
        self.sm.dec(orig)
        data = self.bm.read_lock(orig, v)
        buf = self.bm.write_lock_zero(new, v)
        buf[:] = data
        self.shadows.add(new)
        return new, buf, inc

    def is_shadow(self, b):
        return b in self.shadows

    def inc(self, b):
        self.sm.inc(b)

    def dec(self, b):
        self.sm.dec(b)

    def ref(self, b):
        return self.sm.get_count(b)

    # -- commit -----------------------------------------------------------------------
    def pre_commit(self):
        """dm_tm_pre_commit: space-map commit, then write all dirty blocks and flush."""
        self.sm.commit()
        self.bm.flush()

    def commit(self, sb_location, sb_buf, sb_validator):
        """dm_tm_commit: forget the shadows, write the superblock last, flush."""
        self.shadows.clear()
        # Only the format path gets here with other dirty blocks (era's write_superblock
        # has no dm_tm_pre_commit there): as in the kernel they are written with the
        # superblock, last, and made durable by the one flush below -- so a power cut
        # during the format can leave a superblock whose blocks were lost, as on Linux.
        self.bm.dirty.pop(sb_location, None)
        self.bm.dirty[sb_location] = [sb_buf, sb_validator]
        self.bm.flush()

    def safe_point(self):
        self.bm.safe_point()


class ReadOnlyTM:
    """Enough of a transaction manager for readers: ``read_lock`` through a cache."""

    def __init__(self, store, cache_blocks=64):
        self.bm = BlockManager(store, cache_blocks=cache_blocks)

    def read_lock(self, b, v=None):
        return self.bm.read_lock(b, v)
