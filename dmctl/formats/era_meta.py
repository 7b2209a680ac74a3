"""dm-era's on-disk metadata, byte-compatible with the kernel (dm-era-target.c).

:class:`EraMetadata` mirrors the kernel's ``struct era_metadata`` and its metadata_*
functions (format/open, resize, rollover/archive/new era, marking, commit, metadata
snapshots, digestion, stats).  The era *target* (worker, bios, RPC ordering) is not here:
it calls these functions in the kernel's order.

The pure readers :func:`written_since` and :func:`dump` compute what thin-provisioning-tools
0.9.0 ``era_invalidate --written-since`` and ``era_dump`` print for a metadata device.

How the era target drives it (the kernel's order; with it the golden captures' status
lines, ``10/2048 1`` ... ``13/2048 5 70``, come out exactly):

- ctr: ``md = EraMetadata(store, sectors_per_block)`` (ti->error "Error reading metadata" on
  EraMetadataError); the target's own nr_blocks starts at 0.
- every worker run (do_work): ``md.kick_off_digest()``; if ``md.digesting``, one
  ``md.digest_step()`` (an EraMetadataError there is logged as "process_old_eras: digest
  step failed, stopping digestion" and ends digestion); then the deferred bios: for each,
  ``md.mark_block(block)``, and one ``md.commit()`` if any returned True (on failure the
  bios error); then the queued RPCs, newest first, followed by one ``md.commit()``.
  While ``md.digesting`` the worker requeues itself (not while suspended).
- era_map: a write to a block with ``md.current_marked(block)`` false is deferred.
- preresume: if the target's nr_blocks changed, ``md.resize(n)`` + ``md.commit()``; then
  RPC ``md.era_rollover``.  postsuspend: RPC ``md.era_archive``, stop the worker,
  ``md.commit()``.
- messages: RPC ``md.checkpoint`` / ``md.take_metadata_snap`` / ``md.drop_metadata_snap``;
  status: RPC ``md.status_line`` (or ``md.stats()``, ``md.current_era``,
  ``md.metadata_snap``).
- Every error is a :class:`~dmctl.pdata.errors.PDataError` (EraMetadataError for the
  era-level ones) with ``errno`` and the kernel's text.

Costs (the kernel's): the two in-core writesets are bytearrays of nr_blocks/8 bytes each;
the era array lives in metadata blocks read through the block manager's small cache.
Marking an already-marked block touches no metadata; marking a new one needs one commit.
"""

import errno
import re
import struct

from dmctl.constants import DM_ERA_METADATA_BLOCK_SIZE
from dmctl.pdata.array import ArrayInfo, ab_nr, ARRAY_HEADER_SIZE
from dmctl.pdata.bitset import DiskBitset
from dmctl.pdata.block import BLOCK_SIZE
from dmctl.pdata.btree import BtreeInfo
from dmctl.pdata.checksum import SUPERBLOCK_CSUM_XOR, BlockValidator
from dmctl.pdata.errors import PDataError
from dmctl.pdata.space_map import MetadataSpaceMap
from dmctl.pdata.tm import BlockManager, ReadOnlyTM, TransactionManager

SUPERBLOCK_LOCATION = 0
SUPERBLOCK_MAGIC = 2126579579
MIN_ERA_VERSION = 1
MAX_ERA_VERSION = 1
INVALID_WRITESET_ROOT = SUPERBLOCK_LOCATION
METADATA_BLOCK_SECTORS = DM_ERA_METADATA_BLOCK_SIZE >> 9
INSERTS_PER_STEP = 100
SPACE_MAP_ROOT_SIZE = 128

# csum flags blocknr uuid magic version sm_root data_block_size metadata_block_size
# nr_blocks current_era ws.nr_bits ws.root writeset_tree_root era_array_root metadata_snap
_SB = struct.Struct("<IIQ16sQI128sIIIIIQQQQ")
assert _SB.size == 224
_WS = struct.Struct("<IQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class EraMetadataError(PDataError):
    """A metadata operation failed: ``errno`` and the kernel's DMERR text."""


class SuperblockValidator(BlockValidator):
    """sb_validator: location, magic, checksum, version, in the kernel's order."""

    def __init__(self):
        super().__init__("superblock", SUPERBLOCK_CSUM_XOR, 8, what="sb_check", sep=":")

    def check(self, data, b):
        try:
            self.check_location(data, b)
            magic = _U64.unpack_from(data, 32)[0]
            if magic != SUPERBLOCK_MAGIC:
                raise EraMetadataError(errno.EILSEQ, "sb_check failed: magic %d: wanted %d"
                                       % (magic, SUPERBLOCK_MAGIC))
            self.check_csum(data)
        except PDataError as e:
            if isinstance(e, EraMetadataError):
                raise
            raise EraMetadataError(e.errno, e.text) from None
        version = _U32.unpack_from(data, 40)[0]
        if not MIN_ERA_VERSION <= version <= MAX_ERA_VERSION:
            raise EraMetadataError(
                errno.EINVAL, "Era metadata version %d found, but only versions between "
                "%d and %d supported." % (version, MIN_ERA_VERSION, MAX_ERA_VERSION))


sb_validator = SuperblockValidator()


def unpack_superblock(data):
    """The superblock fields as a dict."""
    (csum, flags, blocknr, uuid, magic, version, sm_root, data_block_size,
     metadata_block_size, nr_blocks, current_era, ws_nr_bits, ws_root,
     writeset_tree_root, era_array_root, metadata_snap) = _SB.unpack_from(data, 0)
    return dict(csum=csum, flags=flags, blocknr=blocknr, uuid=uuid, magic=magic,
                version=version, sm_root=sm_root, data_block_size=data_block_size,
                metadata_block_size=metadata_block_size, nr_blocks=nr_blocks,
                current_era=current_era, current_writeset=(ws_nr_bits, ws_root),
                writeset_tree_root=writeset_tree_root, era_array_root=era_array_root,
                metadata_snap=metadata_snap)


def valid_nr_blocks(n):
    return n < (1 << 31)


class Writeset:
    """struct writeset: on-disk (nr_bits, root) plus the in-core bits."""

    __slots__ = ("nr_bits", "root", "bits")

    def __init__(self):
        self.nr_bits = 0
        self.root = INVALID_WRITESET_ROOT
        self.bits = None

    def alloc(self, nr_blocks):
        self.bits = bytearray(8 * (-(-nr_blocks // 64)))

    def marked(self, b):
        bits = self.bits
        return bits is not None and (b >> 3) < len(bits) and bool(bits[b >> 3] & (1 << (b & 7)))

    def set(self, b):
        self.bits[b >> 3] |= 1 << (b & 7)


class _Digest:
    __slots__ = ("step", "era", "nr_bits", "current_bit", "ws_nr_bits", "ws_root", "value",
                 "info")

    def __init__(self):
        self.step = None
        self.era = 0
        self.nr_bits = 0
        self.current_bit = 0
        self.ws_nr_bits = 0
        self.ws_root = 0
        self.value = b""
        self.info = None


class EraMetadata:
    """The kernel's ``struct era_metadata`` over a BlockStore.

    ``EraMetadata(store, block_size)`` formats the store when its block 0 is all zeros
    (``may_format``), otherwise opens and validates it.  Errors are
    :class:`EraMetadataError` with the kernel's errno and DMERR text.
    """

    def __init__(self, store, block_size, may_format=True, share_full_blocks=False,
                 cache_blocks=256, max_dirty=8192):
        self.store = store
        self.block_size = block_size
        self.bm = BlockManager(store, cache_blocks=cache_blocks, max_dirty=max_dirty)
        self.tm = TransactionManager(self.bm)
        self.sm = MetadataSpaceMap(self.tm)
        self.share_full_blocks = share_full_blocks
        self.nr_blocks = 0
        self.current_era = 0
        self.writesets = [Writeset(), Writeset()]
        self.current = 0
        self.writeset_tree_root = 0
        self.era_array_root = 0
        self.metadata_snap = 0
        self.archived_writesets = False
        self.digest = _Digest()
        self._pending_marks = []
        self._setup_infos()
        self.open_or_format(may_format)

    # -- infos ----------------------------------------------------------------------
    def _setup_infos(self):
        self.bitset_info = DiskBitset(self.tm, self.share_full_blocks)
        self.writeset_tree_info = BtreeInfo(self.tm, 12, inc=self._ws_inc, dec=self._ws_dec,
                                            equal=lambda a, b: a == b)
        self.era_array_info = ArrayInfo(self.tm, 4, share_full_blocks=self.share_full_blocks)

    def _ws_inc(self, values, count):
        for i in range(count):
            self.tm.inc(_U64.unpack_from(values, 12 * i + 4)[0])

    def _ws_dec(self, values, count):
        for i in range(count):
            self.bitset_info.delete(_U64.unpack_from(values, 12 * i + 4)[0])

    @property
    def current_writeset(self):
        return self.writesets[self.current]

    # -- format / open ----------------------------------------------------------------
    def _superblock_all_zeroes(self):
        return not any(self.bm.read_lock(SUPERBLOCK_LOCATION, None))

    def open_or_format(self, may_format=True):
        if self._superblock_all_zeroes():
            if not may_format:
                raise EraMetadataError(errno.EPERM, "metadata is not formatted")
            self._format()
        else:
            self._open()

    def _format(self):
        self.sm.create(self.store.nr_blocks, SUPERBLOCK_LOCATION)
        self.writeset_tree_root = self.writeset_tree_info.empty()
        self.era_array_root = self.era_array_info.empty()
        self._write_superblock()

    def _open(self):
        data = self.bm.read_lock(SUPERBLOCK_LOCATION, sb_validator)
        sb = unpack_superblock(data)
        if sb["data_block_size"] != self.block_size:
            raise EraMetadataError(
                errno.EINVAL, "changing the data block size (from %d to %d) is not supported"
                % (sb["data_block_size"], self.block_size))
        self.sm.open(sb["sm_root"][:32])
        self.nr_blocks = sb["nr_blocks"]
        self.current_era = sb["current_era"]
        ws = self.current_writeset
        ws.nr_bits, ws.root = sb["current_writeset"]
        self.writeset_tree_root = sb["writeset_tree_root"]
        self.era_array_root = sb["era_array_root"]
        self.metadata_snap = sb["metadata_snap"]
        self.archived_writesets = True

    def _prepare_superblock(self):
        buf = bytearray(BLOCK_SIZE)
        ws = self.current_writeset
        sm_root = self.sm.copy_root().ljust(SPACE_MAP_ROOT_SIZE, b"\0")
        _SB.pack_into(buf, 0, 0, 0, 0, bytes(16), SUPERBLOCK_MAGIC, MAX_ERA_VERSION, sm_root,
                      self.block_size, METADATA_BLOCK_SECTORS, self.nr_blocks,
                      self.current_era, ws.nr_bits, ws.root, self.writeset_tree_root,
                      self.era_array_root, self.metadata_snap)
        return buf

    def _write_superblock(self):
        self.tm.commit(SUPERBLOCK_LOCATION, self._prepare_superblock(), sb_validator)

    def close(self):
        self.writesets = [Writeset(), Writeset()]

    # -- commit -------------------------------------------------------------------------
    def commit(self):
        """metadata_commit: flush the current bitset word, two-phase commit.

        Marks made by :meth:`mark_block` since the last commit enter the in-core writeset
        only when this succeeds (the kernel's "update the in-core bitset after commit").
        """
        pending, self._pending_marks = self._pending_marks, []
        ws = self.current_writeset
        if ws.root != INVALID_WRITESET_ROOT:
            ws.root = self.bitset_info.flush(ws.root)
        self.tm.pre_commit()
        self._write_superblock()
        for b in pending:
            ws.set(b)

    # -- resize -------------------------------------------------------------------------
    def resize(self, new_size):
        """metadata_resize: new in-core writesets, era array grown/shrunk (new entries 0)."""
        if not valid_nr_blocks(new_size):
            raise EraMetadataError(errno.EINVAL, "Invalid number of origin blocks %d"
                                   % new_size)
        self.writesets[0].bits = None
        self.writesets[1].bits = None
        self.writesets[0].alloc(new_size)
        self.writesets[1].alloc(new_size)
        self._pending_marks = []
        self.era_array_root = self.era_array_info.resize(self.era_array_root, self.nr_blocks,
                                                         new_size, _U32.pack(0))
        self.nr_blocks = new_size

    # -- eras ---------------------------------------------------------------------------
    def era_archive(self):
        """metadata_era_archive: insert the current writeset into the tree (key = era)."""
        ws = self.current_writeset
        ws.root = self.bitset_info.flush(ws.root)
        value = _WS.pack(ws.nr_bits, ws.root)
        self.writeset_tree_root, _ = self.writeset_tree_info.insert(
            self.writeset_tree_root, self.current_era, value)
        ws.root = INVALID_WRITESET_ROOT
        self.archived_writesets = True

    def new_era(self):
        """metadata_new_era: a fresh on-disk writeset in the other slot, era + 1."""
        nw = self.writesets[1 - self.current]
        if nw.bits is None or len(nw.bits) != 8 * (-(-self.nr_blocks // 64)):
            nw.alloc(self.nr_blocks)
        else:
            nw.bits[:] = bytes(len(nw.bits))
        nw.nr_bits = self.nr_blocks
        root = self.bitset_info.empty()
        nw.root = self.bitset_info.resize(root, 0, nw.nr_bits, False)
        self.current = 1 - self.current
        self.current_era += 1

    def era_rollover(self):
        """metadata_era_rollover: archive the current writeset if any, then a new era."""
        if self.current_writeset.root != INVALID_WRITESET_ROOT:
            self.era_archive()
        self.new_era()

    checkpoint = era_rollover

    # -- marking ------------------------------------------------------------------------
    def current_marked(self, b):
        """metadata_current_marked: the in-core test era_map does for every write."""
        return self.current_writeset.marked(b)

    def mark_block(self, b):
        """writeset_test_and_set: set the on-disk bit unless the in-core bit is set.

        Returns True when the block was not marked in core (a commit is needed; the
        in-core bit is set by that commit).  Costs no I/O when it returns False.
        """
        ws = self.current_writeset
        if ws.marked(b):
            return False
        ws.root = self.bitset_info.set_bit(ws.root, b)
        self._pending_marks.append(b)
        return True

    def discard_pending_marks(self):
        """Forget marks whose commit failed (their bios error)."""
        self._pending_marks = []

    # -- metadata snapshots ----------------------------------------------------------------
    def take_metadata_snap(self):
        if self.metadata_snap != SUPERBLOCK_LOCATION:
            raise EraMetadataError(errno.EINVAL,
                                   "metadata_take_snap: metadata snapshot already exists")
        self.era_rollover()
        self.commit()
        self.sm.inc(SUPERBLOCK_LOCATION)
        clone, _buf, inc = self.tm.shadow_block(SUPERBLOCK_LOCATION, sb_validator)
        assert inc
        self.sm.inc(self.writeset_tree_root)
        self.sm.inc(self.era_array_root)
        self.metadata_snap = clone

    def drop_metadata_snap(self):
        if self.metadata_snap == SUPERBLOCK_LOCATION:
            raise EraMetadataError(errno.EINVAL, "metadata_drop_snap: no snap to drop")
        location = self.metadata_snap
        clone = unpack_superblock(self.tm.read_lock(location, sb_validator))
        self.metadata_snap = SUPERBLOCK_LOCATION
        self.writeset_tree_info.delete(clone["writeset_tree_root"])
        self.era_array_info.delete(clone["era_array_root"])
        self.sm.dec(location)

    # -- stats --------------------------------------------------------------------------------
    def stats(self):
        """metadata_get_stats -> (used, total) metadata blocks."""
        total = self.sm.get_nr_blocks()
        return total - self.sm.get_nr_free(), total

    def status_line(self):
        """INFO status of the era target: ``8 used/total era snap|-``."""
        used, total = self.stats()
        snap = str(self.metadata_snap) if self.metadata_snap else "-"
        return "%d %d/%d %d %s" % (METADATA_BLOCK_SECTORS, used, total, self.current_era, snap)

    # -- digestion ----------------------------------------------------------------------------
    def kick_off_digest(self):
        """kick_off_digest: start digesting if a writeset was archived since last time."""
        if self.archived_writesets:
            self.archived_writesets = False
            self.digest_start()

    def digest_start(self):
        d = self.digest
        if d.step:
            return
        self.digest = _Digest()
        self.digest.step = "lookup"

    @property
    def digesting(self):
        return self.digest.step is not None

    def digest_step(self):
        """Run one digest step (process_old_eras); True if more steps remain.

        On failure the digestion stops and :class:`EraMetadataError` is raised; the target
        logs "process_old_eras: digest step failed, stopping digestion".  An empty
        writeset tree ends every digestion that way, harmlessly, as in the kernel.
        """
        d = self.digest
        if d.step is None:
            return False
        try:
            getattr(self, "_digest_" + d.step)(d)
        except PDataError as e:
            d.step = None
            if not isinstance(e, EraMetadataError):
                e = EraMetadataError(e.errno, e.text)
            raise e
        return d.step is not None

    def _digest_lookup(self, d):
        key = self.writeset_tree_info.find_lowest_key(self.writeset_tree_root)
        d.era = key
        try:
            v = self.writeset_tree_info.lookup(self.writeset_tree_root, key)
        except PDataError as e:
            if e.errno == errno.ENODATA:
                d.step = None
                return
            raise
        d.ws_nr_bits, d.ws_root = _WS.unpack(v)
        d.value = _U32.pack(key & 0xFFFFFFFF)
        d.info = DiskBitset(self.tm, read_only=True)   # archived writesets never change
        d.nr_bits = min(d.ws_nr_bits, self.nr_blocks)
        d.current_bit = 0
        d.step = "transcribe"

    def _digest_transcribe(self, d):
        e = min(d.current_bit + INSERTS_PER_STEP, d.nr_bits)
        b = d.current_bit
        info = d.info
        while b < e:
            root, _ = info.test_bit(d.ws_root, b)   # loads (and caches) b's word
            word = info.current_bits
            if not word:                             # a clear word: skip to its end
                b = min(e, (b | 63) + 1)
                continue
            if (word >> (b & 63)) & 1:
                self.era_array_root = self.era_array_info.set_value(
                    self.era_array_root, b, d.value)
            b += 1
        if e == d.nr_bits:
            d.step = "remove"
        else:
            d.current_bit = e

    def _digest_remove(self, d):
        self.writeset_tree_root = self.writeset_tree_info.remove(self.writeset_tree_root,
                                                                 d.era)
        d.step = "lookup"

    def digest_all(self):
        """Digest every archived writeset (steps until the tree is empty)."""
        self.kick_off_digest()
        self.digest_start()
        try:
            while self.digest_step():
                pass
        except EraMetadataError as e:
            if e.errno != errno.ENODATA:
                raise


# ---------------------------------------------------------------------------------------------
# Pure readers (what era_invalidate / era_dump 0.9.0 print)
# ---------------------------------------------------------------------------------------------

class _Reader:
    def __init__(self, store, use_snapshot=False):
        self.tm = ReadOnlyTM(store)
        sb = unpack_superblock(self.tm.read_lock(SUPERBLOCK_LOCATION, sb_validator))
        if use_snapshot:
            if not sb["metadata_snap"]:
                raise EraMetadataError(errno.EINVAL, "no metadata snapshot taken.")
            sb = unpack_superblock(self.tm.read_lock(sb["metadata_snap"], sb_validator))
        self.sb = sb
        self.wtree = BtreeInfo(self.tm, 12)
        self.array = ArrayInfo(self.tm, 4)
        self.bitset = DiskBitset(self.tm)

    def writesets(self):
        """[(era, nr_bits, bitset bytes)] from the writeset tree, ascending era."""
        out = []
        for era, v in self.wtree.items(self.sb["writeset_tree_root"]):
            nr_bits, root = _WS.unpack(v)
            out.append((era, nr_bits, root))
        return out


_NONZERO_RUN = re.compile(rb"[^\x00]+")


def bitmap_ranges(bm, nbits):
    """[(begin, end)] runs of set bits in a little-endian bitmap of nbits bits."""
    out = []
    start = end = None
    for m in _NONZERO_RUN.finditer(bm):
        s, e = m.span()
        i = s << 3
        for byte in bm[s:e]:
            if byte == 0xFF:
                if end == i:
                    end = i + 8
                else:
                    if start is not None:
                        out.append((start, end))
                    start, end = i, i + 8
            else:
                for k in range(8):
                    if (byte >> k) & 1:
                        pos = i + k
                        if end == pos:
                            end = pos + 1
                        else:
                            if start is not None:
                                out.append((start, end))
                            start, end = pos, pos + 1
            i += 8
    if start is not None:
        out.append((start, end))
    return [(b, min(e, nbits)) for b, e in out if b < nbits]


def written_since(store, era, use_snapshot=False):
    """Block ranges ``era_invalidate --written-since ERA`` lists, as [(begin, end)].

    A block is listed when an archived writeset (the writeset tree) of era >= ERA has it
    marked, or its era-array entry is >= ERA.  The live writeset held in the superblock is
    ignored, as the tools do.  ``use_snapshot`` reads the metadata snapshot instead
    (EraMetadataError "no metadata snapshot taken." when there is none).
    """
    r = _Reader(store, use_snapshot)
    nr_blocks = r.sb["nr_blocks"]
    bm = bytearray(-(-nr_blocks // 8))
    for ws_era, nr_bits, root in r.writesets():
        if ws_era < era:
            continue
        bits = r.bitset.to_bytes(root, min(nr_bits, nr_blocks))
        for i, byte in enumerate(bits):
            if byte:
                bm[i] |= byte
    threshold = era
    base = 0
    for _k, data in r.array.blocks(r.sb["era_array_root"]):
        n = ab_nr(data)
        vals = struct.unpack_from("<%dI" % n, data, ARRAY_HEADER_SIZE)
        if n and max(vals) >= threshold:
            for j, v in enumerate(vals):
                b = base + j
                if v >= threshold and b < nr_blocks:
                    bm[b >> 3] |= 1 << (b & 7)
        base += n
    return bitmap_ranges(bm, nr_blocks)


def format_invalidate(ranges, spaced=True):
    """The XML era_invalidate 0.9.0 prints (``end = "`` when ``spaced``)."""
    eq = " = " if spaced else "="
    lines = ["<blocks>"]
    for b, e in ranges:
        if e - b == 1:
            lines.append('  <block block="%d"/>' % b)
        else:
            lines.append('  <range begin="%d" end%s"%d"/>' % (b, eq, e))
    lines.append("</blocks>")
    return "\n".join(lines) + "\n"


def iter_dump(store, logical=False, use_snapshot=False):
    """Lines (with newlines) of ``era_dump [--logical]`` 0.9.0."""
    r = _Reader(store, use_snapshot)
    sb = r.sb
    uuid = sb["uuid"].split(b"\0", 1)[0].decode("latin-1")
    yield '<superblock uuid="%s" block_size="%d" nr_blocks="%d" current_era="%d">\n' % (
        uuid, sb["data_block_size"], sb["nr_blocks"], sb["current_era"])
    exceptions = {}
    for ws_era, nr_bits, root in r.writesets():
        bits = r.bitset.to_bytes(root, nr_bits)
        if logical:
            for b in range(nr_bits):
                if (bits[b >> 3] >> (b & 7)) & 1 and b not in exceptions:
                    exceptions[b] = ws_era
            continue
        yield '  <writeset era="%d" nr_bits="%d">\n' % (ws_era, nr_bits)
        for b in range(nr_bits):
            v = "true" if (bits[b >> 3] >> (b & 7)) & 1 else "false"
            yield '    <bit block="%d" value="%s"/>\n' % (b, v)
        yield "  </writeset>\n"
    yield "  <era_array>\n"
    index = 0
    for _k, data in r.array.blocks(sb["era_array_root"]):
        n = ab_nr(data)
        for v in struct.unpack_from("<%dI" % n, data, ARRAY_HEADER_SIZE):
            x = exceptions.get(index)
            if x is not None and x > v:
                v = x
            yield '    <era block="%d" era="%d"/>\n' % (index, v)
            index += 1
    yield "  </era_array>\n"
    yield "</superblock>\n"


def dump(store, logical=False, use_snapshot=False):
    """The XML ``era_dump [--logical]`` 0.9.0 prints, as one string."""
    return "".join(iter_dump(store, logical, use_snapshot))


def read_superblock(store, use_snapshot=False):
    """The (validated) superblock fields of an era metadata store."""
    return _Reader(store, use_snapshot).sb
