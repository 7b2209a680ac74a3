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


SPACE_THRESHOLD = 8


def _shift_down(buf, count):
    copy_entries(buf, 0, buf, count, n_nr(buf) - count)


def _shift_up(buf, count):
    copy_entries(buf, count, buf, 0, n_nr(buf))


def _redistribute2(left, right):
    """Even out two nodes (insert side, dm-btree.c redistribute2)."""
    nl, nr = n_nr(left), n_nr(right)
    total = nl + nr
    tl = total // 2
    tr = total - tl
    if nl < tl:
        d = tl - nl
        copy_entries(left, nl, right, 0, d)
        _shift_down(right, d)
    elif nl > tl:
        d = nl - tl
        if nr:
            _shift_up(right, d)
        copy_entries(right, 0, left, tl, d)
    n_set_nr(left, tl)
    n_set_nr(right, tr)


def _redistribute3(left, center, right):
    """Spread two nodes over three (the centre starts empty; dm-btree.c redistribute3)."""
    nl, nr = n_nr(left), n_nr(right)
    total = nl + nr
    tl = total // 3
    tc = (total - tl) // 2
    tr = total - tl - tc
    if nl < tl:
        short = tl - nl
        copy_entries(left, nl, right, 0, short)
        copy_entries(center, 0, right, short, tc)
        _shift_down(right, nr - tr)
    elif nl < tl + tc:
        l2c = nl - tl
        copy_entries(center, 0, left, tl, l2c)
        copy_entries(center, l2c, right, 0, tc - l2c)
        _shift_down(right, nr - tr)
    else:
        short = tr - nr
        _shift_up(right, short)
        copy_entries(right, 0, left, nl - short, short)
        copy_entries(center, 0, left, tl, nl - tl)
    n_set_nr(left, tl)
    n_set_nr(center, tc)
    n_set_nr(right, tr)


def _shift(left, right, count):
    """dm-btree-remove.c shift: count > 0 moves left's tail to right's head, < 0 back."""
    nl, nr = n_nr(left), n_nr(right)
    if count > 0:
        _shift_up(right, count)
        copy_entries(right, 0, left, nl - count, count)
    elif count < 0:
        copy_entries(left, nl, right, 0, -count)
        n_set_nr(right, nr)
        _shift_down(right, -count)
    n_set_nr(left, nl - count)
    n_set_nr(right, nr + count)


def _has_space_for_insert(buf, key):
    if n_nr(buf) == n_max(buf):
        if n_flags(buf) & LEAF_NODE:
            i = lower_bound(buf, key)
            return i >= 0 and n_key(buf, i) == key      # an overwrite needs no room
        return False
    return True


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
            if not _has_space_for_insert(buf, key):
                if top:
                    self._split_beneath(sp, key)
                else:
                    self._rebalance_or_split(sp, i, key)
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

    def _shadow_child(self, pn, index):
        """shadow_child: shadow child ``index`` of ``pn`` and point ``pn`` at the shadow."""
        b = value64(pn, index)
        nb, buf = self._shadow(b)
        set_value64(pn, index, nb)
        return nb, buf

    def _split_one_into_two(self, sp, parent_index, key):
        lb, ln = sp.current
        rb, rn = self.tm.new_block(node_validator)
        init_node(rn, n_flags(ln), n_max(ln), n_vsize(ln), 0)
        _redistribute2(ln, rn)
        pn = sp.parent[1]
        rk = n_key(rn, 0)
        insert_at(pn, parent_index + 1, rk, _U64.pack(rb))
        sp.current = (lb, ln) if key < rk else (rb, rn)

    def _split_two_into_three(self, sp, parent_index, key):
        pn = sp.parent[1]
        if parent_index == 0:
            middle_index = 1
            left = sp.current
            right = self._shadow_child(pn, parent_index + 1)
        else:
            middle_index = parent_index
            right = sp.current
            left = self._shadow_child(pn, parent_index - 1)
        mb, mn = self.tm.new_block(node_validator)
        ln, rn = left[1], right[1]
        init_node(mn, n_flags(ln), n_max(ln), n_vsize(ln), 0)
        _redistribute3(ln, mn, rn)
        n_set_key(pn, middle_index, n_key(rn, 0))
        insert_at(pn, middle_index, n_key(mn, 0), _U64.pack(mb))
        if key < n_key(mn, 0):
            sp.current = left
        elif key < n_key(rn, 0):
            sp.current = (mb, mn)
        else:
            sp.current = right

    def _rebalance_left(self, sp, parent_index, key):
        pn = sp.parent[1]
        sib = self._shadow_child(pn, parent_index - 1)
        right = sp.current[1]
        _redistribute2(sib[1], right)
        n_set_key(pn, parent_index, n_key(right, 0))
        if key < n_key(right, 0):
            sp.current = sib

    def _rebalance_right(self, sp, parent_index, key):
        pn = sp.parent[1]
        sib = self._shadow_child(pn, parent_index + 1)
        left = sp.current[1]
        _redistribute2(left, sib[1])
        n_set_key(pn, parent_index + 1, n_key(sib[1], 0))
        if key >= n_key(sib[1], 0):
            sp.current = sib

    def _free_space(self, b):
        buf = self._read(b)
        return n_max(buf) - n_nr(buf)

    def _rebalance_or_split(self, sp, parent_index, key):
        """rebalance_or_split (5.14+): prefer moving entries into an unshared sibling."""
        pn = sp.parent[1]
        nr_parent = n_nr(pn)
        left_shared = right_shared = False
        if parent_index > 0:
            left_b = value64(pn, parent_index - 1)
            left_shared = self.tm.sm.count_is_more_than_one(left_b)
            if not left_shared and self._free_space(left_b) >= SPACE_THRESHOLD:
                return self._rebalance_left(sp, parent_index, key)
        if parent_index < nr_parent - 1:
            right_b = value64(pn, parent_index + 1)
            right_shared = self.tm.sm.count_is_more_than_one(right_b)
            if not right_shared and self._free_space(right_b) >= SPACE_THRESHOLD:
                return self._rebalance_right(sp, parent_index, key)
        if (left_shared or right_shared or nr_parent <= 2 or parent_index == 0
                or parent_index + 1 == nr_parent):
            return self._split_one_into_two(sp, parent_index, key)
        return self._split_two_into_three(sp, parent_index, key)

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
        has_left = i > 0
        has_right = i < n_nr(pn) - 1
        if not has_left:
            self._rebalance2(pn, i)
        elif not has_right:
            self._rebalance2(pn, i - 1)
        else:
            self._rebalance3(pn, i - 1)

    def _rebalance2(self, pn, li):
        ri = li + 1
        _lb, ln = self._shadow_child(pn, li)
        rb, rn = self._shadow_child(pn, ri)
        self.__rebalance2(pn, ln, rb, rn, ri)

    def __rebalance2(self, pn, ln, rb, rn, ri):
        nl, nr = n_nr(ln), n_nr(rn)
        threshold = 2 * (n_max(ln) // 3 + 1)
        if nl + nr < threshold:
            copy_entries(ln, nl, rn, 0, nr)          # merge right into left
            n_set_nr(ln, nl + nr)
            delete_at(pn, ri)
            self.tm.dec(rb)
        else:
            _shift(ln, rn, nl - (nl + nr) // 2)
            n_set_key(pn, ri, n_key(rn, 0))

    def _rebalance3(self, pn, li):
        ci, ri = li + 1, li + 2
        _lb, ln = self._shadow_child(pn, li)
        cb, cn = self._shadow_child(pn, ci)
        rb, rn = self._shadow_child(pn, ri)
        if not n_max(ln) == n_max(cn) == n_max(rn):
            raise PDataError(errno.EILSEQ, "bad btree metadata, max_entries differ")
        nl, nc, nr = n_nr(ln), n_nr(cn), n_nr(rn)
        if nl + nc + nr < (n_max(ln) // 3) * 4 + 1:
            # delete_center_node
            mx = n_max(ln)
            k = min(mx - nl, nc)
            copy_entries(ln, nl, cn, 0, k)
            n_set_nr(ln, nl + k)
            if k != nc:
                k2 = nc - k
                _shift_up(rn, k2)
                copy_entries(rn, 0, cn, k, k2)
                n_set_nr(rn, nr + k2)
            n_set_key(pn, ri, n_key(rn, 0))
            delete_at(pn, ci)
            self.tm.dec(cb)
            self.__rebalance2(pn, ln, rb, rn, ri - 1)
            return
        # redistribute3 (remove side)
        total = nl + nc + nr
        target_right = total // 3
        target_left = target_right + (1 if target_right * 3 != total else 0)
        if nl < nr:
            d = nl - target_left
            if d < 0 and nc < -d:
                _shift(ln, cn, -nc)
                d += nc
                _shift(ln, rn, d)
                nr += d
            else:
                _shift(ln, cn, d)
            _shift(cn, rn, target_right - nr)
        else:
            d = target_right - nr
            if d > 0 and nc < d:
                _shift(cn, rn, nc)
                d -= nc
                _shift(ln, rn, d)
                nl -= d
            else:
                _shift(cn, rn, d)
            _shift(ln, cn, nl - target_left)
        n_set_key(pn, ci, n_key(cn, 0))
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
