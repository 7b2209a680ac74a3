"""dm-btree (dm-btree.c, dm-btree-remove.c, dm-btree-spine.c): one-level btrees of u64 keys.

Node layout (4096 bytes): ``node_header`` (32 bytes: csum, flags, blocknr, nr_entries,
max_entries, value_size, padding), then ``keys[max_entries]`` (le64), then the values packed.
Internal nodes hold le64 child block numbers and each key is the lowest key of its child.

Writes shadow the path from the root (copy-on-write); a shadow of a shared node raises the
reference counts of its children (``inc_children``).
"""

import errno
import struct
from bisect import bisect_right

from .block import BLOCK_SIZE
from .checksum import BTREE_CSUM_XOR, BlockValidator, verify, stored_checksum
from .errors import PDataError

INTERNAL_NODE = 1
LEAF_NODE = 2
NODE_HEADER_SIZE = 32

_HDR = struct.Struct("<IIQIIII")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def calc_max_entries(value_size, block_size=BLOCK_SIZE):
    """3 * floor(floor((block_size - 32) / (8 + value_size)) / 3) (dm-btree.c)."""
    total = (block_size - NODE_HEADER_SIZE) // (8 + value_size)
    return 3 * (total // 3)


class NodeValidator(BlockValidator):
    def __init__(self):
        super().__init__("btree_node", BTREE_CSUM_XOR, 8, what="node_check")

    def check(self, data, b):
        self.check_location(data, b)
        self.check_csum(data)
        _csum, flags, _blocknr, nr, mx, vs, _ = _HDR.unpack_from(data, 0)
        if NODE_HEADER_SIZE + (8 + vs) * mx > BLOCK_SIZE:
            raise PDataError(errno.EILSEQ, "node_check failed: max_entries too large")
        if nr > mx:
            raise PDataError(errno.EILSEQ, "node_check failed: too many entries")
        if not flags & (INTERNAL_NODE | LEAF_NODE):
            raise PDataError(errno.EILSEQ, "node_check failed: node is neither INTERNAL or LEAF")


node_validator = NodeValidator()


# -- node accessors (buf is bytes or bytearray) -------------------------------------------

def n_flags(buf):
    return _U32.unpack_from(buf, 4)[0]


def n_nr(buf):
    return _U32.unpack_from(buf, 16)[0]


def n_set_nr(buf, n):
    _U32.pack_into(buf, 16, n)


def n_max(buf):
    return _U32.unpack_from(buf, 20)[0]


def n_vsize(buf):
    return _U32.unpack_from(buf, 24)[0]


def n_keys(buf):
    n = n_nr(buf)
    return struct.unpack_from("<%dQ" % n, buf, NODE_HEADER_SIZE)


def n_key(buf, i):
    return _U64.unpack_from(buf, NODE_HEADER_SIZE + 8 * i)[0]


def n_set_key(buf, i, k):
    _U64.pack_into(buf, NODE_HEADER_SIZE + 8 * i, k)


def value_off(buf, i):
    return NODE_HEADER_SIZE + 8 * n_max(buf) + n_vsize(buf) * i


def n_value(buf, i):
    vs = n_vsize(buf)
    off = NODE_HEADER_SIZE + 8 * n_max(buf) + vs * i
    return bytes(buf[off:off + vs])


def n_values(buf):
    vs = n_vsize(buf)
    off = NODE_HEADER_SIZE + 8 * n_max(buf)
    return bytes(buf[off:off + vs * n_nr(buf)])


def value64(buf, i):
    return _U64.unpack_from(buf, value_off(buf, i))[0]


def set_value64(buf, i, v):
    _U64.pack_into(buf, value_off(buf, i), v)


def lower_bound(buf, key):
    """Index of the last key <= key, or -1."""
    return bisect_right(n_keys(buf), key) - 1


def insert_at(buf, i, key, value):
    n, mx, vs = n_nr(buf), n_max(buf), n_vsize(buf)
    if i > n or i >= mx:
        raise PDataError(errno.ENOMEM, "too many entries in btree node for insert")
    ko = NODE_HEADER_SIZE
    buf[ko + 8 * (i + 1):ko + 8 * (n + 1)] = buf[ko + 8 * i:ko + 8 * n]
    _U64.pack_into(buf, ko + 8 * i, key)
    vo = NODE_HEADER_SIZE + 8 * mx
    buf[vo + vs * (i + 1):vo + vs * (n + 1)] = buf[vo + vs * i:vo + vs * n]
    buf[vo + vs * i:vo + vs * (i + 1)] = value
    n_set_nr(buf, n + 1)


def delete_at(buf, i):
    n, mx, vs = n_nr(buf), n_max(buf), n_vsize(buf)
    ko = NODE_HEADER_SIZE
    buf[ko + 8 * i:ko + 8 * (n - 1)] = buf[ko + 8 * (i + 1):ko + 8 * n]
    vo = NODE_HEADER_SIZE + 8 * mx
    buf[vo + vs * i:vo + vs * (n - 1)] = buf[vo + vs * (i + 1):vo + vs * n]
    n_set_nr(buf, n - 1)


def init_node(buf, flags, max_entries, value_size, nr=0):
    _HDR.pack_into(buf, 0, 0, flags, 0, nr, max_entries, value_size, 0)


def copy_entries(dst, di, src, si, count):
    """Copy ``count`` key/value pairs from src[si:] to dst[di:] (same value size)."""
    if count <= 0:
        return
    ko = NODE_HEADER_SIZE
    dst[ko + 8 * di:ko + 8 * (di + count)] = src[ko + 8 * si:ko + 8 * (si + count)]
    vs = n_vsize(src)
    sv = NODE_HEADER_SIZE + 8 * n_max(src)
    dv = NODE_HEADER_SIZE + 8 * n_max(dst)
    dst[dv + vs * di:dv + vs * (di + count)] = src[sv + vs * si:sv + vs * (si + count)]


class BtreeInfo:
    """dm_btree_info with levels = 1.

    ``inc(values, count)`` / ``dec(values, count)`` are called with ``count`` packed values;
    ``equal(a, b)`` compares two values.  All may be None (plain data).
    """

    def __init__(self, tm, value_size, inc=None, dec=None, equal=None):
        self.tm = tm
        self.value_size = value_size
        self.inc = inc
        self.dec = dec
        self.equal = equal
        self.max_entries = calc_max_entries(value_size)

    # -- helpers ----------------------------------------------------------------------
    def _inc_children(self, buf):
        n = n_nr(buf)
        if n_flags(buf) & INTERNAL_NODE:
            for i in range(n):
                self.tm.inc(value64(buf, i))
        elif self.inc is not None and n:
            self.inc(n_values(buf), n)

    def _shadow(self, b):
        nb, buf, inc = self.tm.shadow_block(b, node_validator)
        if inc:
            self._inc_children(buf)
        return nb, buf

    def _read(self, b):
        return self.tm.read_lock(b, node_validator)

    # -- creation ---------------------------------------------------------------------
    def empty(self):
        """dm_btree_empty: a single empty leaf; returns its location."""
        b, buf = self.tm.new_block(node_validator)
        init_node(buf, LEAF_NODE, self.max_entries, self.value_size)
        return b

    # -- lookup -----------------------------------------------------------------------
    def lookup(self, root, key):
        """The value bytes stored under ``key``; PDataError(ENODATA) when absent."""
        b = root
        while True:
            buf = self._read(b)
            i = lower_bound(buf, key)
            if i < 0 or i >= n_nr(buf):
                raise PDataError(errno.ENODATA, "key %d not found" % key)
            if n_flags(buf) & INTERNAL_NODE:
                b = value64(buf, i)
                continue
            if n_key(buf, i) != key:
                raise PDataError(errno.ENODATA, "key %d not found" % key)
            return n_value(buf, i)

    def find_lowest_key(self, root):
        b = root
        while True:
            buf = self._read(b)
            if n_nr(buf) == 0:
                raise PDataError(errno.ENODATA, "empty btree")
            if n_flags(buf) & INTERNAL_NODE:
                b = value64(buf, 0)
                continue
            return n_key(buf, 0)

    def find_highest_key(self, root):
        b = root
        while True:
            buf = self._read(b)
            n = n_nr(buf)
            if n == 0:
                raise PDataError(errno.ENODATA, "empty btree")
            if n_flags(buf) & INTERNAL_NODE:
                b = value64(buf, n - 1)
                continue
            return n_key(buf, n - 1)

    def items(self, root):
        """Yield (key, value bytes) in key order."""
        stack = [root]
        while stack:
            buf = self._read(stack.pop())
            n = n_nr(buf)
            if n_flags(buf) & INTERNAL_NODE:
                stack.extend(value64(buf, i) for i in range(n - 1, -1, -1))
            else:
                keys = n_keys(buf)
                vs = n_vsize(buf)
                vo = NODE_HEADER_SIZE + 8 * n_max(buf)
                for i in range(n):
                    yield keys[i], bytes(buf[vo + vs * i:vo + vs * (i + 1)])

    # -- insert -----------------------------------------------------------------------
    def insert(self, root, key, value):
        """dm_btree_insert -> (new_root, inserted).  Overwriting decs the old value."""
        value = bytes(value)
        if len(value) != self.value_size:
            raise ValueError("value size %d, want %d" % (len(value), self.value_size))
        sp = _Spine(self)
        i = -1
        b = root
        top = True
        while True:
            sp.step(b)
            if sp.parent is not None and i >= 0:
                set_value64(sp.parent[1], i, sp.current[0])
            buf = sp.current[1]
            if n_nr(buf) == n_max(buf):
                if top:
                    self._split_beneath(sp, key)
                else:
                    self._split_sibling(sp, i, key)
                buf = sp.current[1]
            i = lower_bound(buf, key)
            if n_flags(buf) & LEAF_NODE:
                break
            if i < 0:
                n_set_key(buf, 0, key)
                i = 0
            b = value64(buf, i)
            top = False
        if i < 0 or n_key(buf, i) != key:
            i += 1
        if i >= n_nr(buf) or n_key(buf, i) != key:
            insert_at(buf, i, key, value)
            inserted = True
        else:
            old = n_value(buf, i)
            if self.dec is not None and (self.equal is None or not self.equal(old, value)):
                self.dec(old, 1)
            off = value_off(buf, i)
            buf[off:off + self.value_size] = value
            inserted = False
        return sp.root, inserted

    def _split_beneath(self, sp, key):
        pb, pn = sp.current
        lb, ln = self.tm.new_block(node_validator)
        rb, rn = self.tm.new_block(node_validator)
        nr = n_nr(pn)
        nl = nr // 2
        nrt = nr - nl
        flags, mx, vs = n_flags(pn), n_max(pn), n_vsize(pn)
        init_node(ln, flags, mx, vs, nl)
        init_node(rn, flags, mx, vs, nrt)
        copy_entries(ln, 0, pn, 0, nl)
        copy_entries(rn, 0, pn, nl, nrt)
        lk, rk = n_key(ln, 0), n_key(rn, 0)
        imax = calc_max_entries(8)
        pn[NODE_HEADER_SIZE:] = bytes(BLOCK_SIZE - NODE_HEADER_SIZE)
        init_node(pn, INTERNAL_NODE, imax, 8, 2)
        n_set_key(pn, 0, lk)
        n_set_key(pn, 1, rk)
        set_value64(pn, 0, lb)
        set_value64(pn, 1, rb)
        sp.parent = (pb, pn)
        sp.current = (lb, ln) if key < rk else (rb, rn)

    def _split_sibling(self, sp, parent_index, key):
        lb, ln = sp.current
        rb, rn = self.tm.new_block(node_validator)
        nr = n_nr(ln)
        nl = nr // 2
        nrt = nr - nl
        init_node(rn, n_flags(ln), n_max(ln), n_vsize(ln), nrt)
        copy_entries(rn, 0, ln, nl, nrt)
        n_set_nr(ln, nl)
        pb, pn = sp.parent
        set_value64(pn, parent_index, lb)
        rk = n_key(rn, 0)
        insert_at(pn, parent_index + 1, rk, _U64.pack(rb))
        sp.current = (lb, ln) if key < rk else (rb, rn)

    # -- remove -----------------------------------------------------------------------
    def remove(self, root, key):
        """dm_btree_remove -> new_root (the removed value is dec'd)."""
        sp = _Spine(self)
        b = root
        i = 0
        while True:
            sp.step(b)
            if sp.parent is not None:
                set_value64(sp.parent[1], i, sp.current[0])
            buf = sp.current[1]
            if n_flags(buf) & LEAF_NODE:
                break
            self._rebalance_children(sp, key)
            buf = sp.current[1]
            if n_flags(buf) & LEAF_NODE:
                break
            i = lower_bound(buf, key)
            if i < 0:
                raise PDataError(errno.ENODATA, "key %d not found" % key)
            b = value64(buf, i)
        idx = lower_bound(buf, key)
        if idx < 0 or idx >= n_nr(buf) or n_key(buf, idx) != key:
            raise PDataError(errno.ENODATA, "key %d not found" % key)
        if self.dec is not None:
            self.dec(n_value(buf, idx), 1)
        delete_at(buf, idx)
        return sp.root

    def _shadow_child(self, pn, index):
        b = value64(pn, index)
        nb, buf = self._shadow(b)
        set_value64(pn, index, nb)
        return nb, buf

    def _rebalance_children(self, sp, key):
        pb, pn = sp.current
        if n_nr(pn) == 1:
            cb = value64(pn, 0)
            pn[:] = self._read(cb)
            self.tm.dec(cb)
            return
        i = lower_bound(pn, key)
        if i < 0:
            raise PDataError(errno.ENODATA, "key %d not found" % key)
        left = i - 1 if i > 0 else i
        self._rebalance2(pn, left)

    def _rebalance2(self, pn, li):
        ri = li + 1
        lb, ln = self._shadow_child(pn, li)
        rb, rn = self._shadow_child(pn, ri)
        nl, nr = n_nr(ln), n_nr(rn)
        threshold = 2 * (n_max(ln) // 3 + 1)
        if nl + nr < threshold:
            copy_entries(ln, nl, rn, 0, nr)
            n_set_nr(ln, nl + nr)
            delete_at(pn, ri)
            self.tm.dec(rb)
        else:
            target = (nl + nr) // 2
            if nl > target:       # move the tail of left to the front of right
                k = nl - target
                tmp = bytearray(rn)
                copy_entries(rn, k, tmp, 0, nr)
                copy_entries(rn, 0, ln, target, k)
                n_set_nr(rn, nr + k)
                n_set_nr(ln, target)
            elif nl < target:     # move the head of right to the tail of left
                k = target - nl
                copy_entries(ln, nl, rn, 0, k)
                n_set_nr(ln, target)
                tmp = bytearray(rn)
                copy_entries(rn, 0, tmp, k, nr - k)
                n_set_nr(rn, nr - k)
            n_set_key(pn, ri, n_key(rn, 0))

    # -- delete -----------------------------------------------------------------------
    def delete(self, root):
        """dm_btree_del: drop one reference to the tree (freeing what becomes unused)."""
        stack = []

        def push(b):
            if self.tm.ref(b) > 1:
                self.tm.dec(b)
                return
            buf = bytes(self._read(b))
            stack.append([b, buf, n_nr(buf), 0])

        push(root)
        while stack:
            f = stack[-1]
            b, buf, nr, cur = f
            if cur >= nr:
                stack.pop()
                self.tm.dec(b)
                continue
            if n_flags(buf) & INTERNAL_NODE:
                f[3] = cur + 1
                push(value64(buf, cur))
            else:
                if self.dec is not None and nr:
                    self.dec(n_values(buf), nr)
                stack.pop()
                self.tm.dec(b)


class _Spine:
    """shadow_spine: the shadowed parent and current node of a descent."""

    def __init__(self, info):
        self.info = info
        self.parent = None
        self.current = None
        self.root = None

    def step(self, b):
        nb, buf = self.info._shadow(b)
        if self.current is None:
            self.root = nb
        else:
            self.parent = self.current
        self.current = (nb, buf)


def le64(v):
    return _U64.pack(v)


def read_le64(data, off=0):
    return _U64.unpack_from(data, off)[0]


__all__ = ["BtreeInfo", "node_validator", "calc_max_entries", "INTERNAL_NODE", "LEAF_NODE",
           "le64", "read_le64", "verify", "stored_checksum"]
