"""``dmsetup ls --tree``: the device dependency tree and its text drawing.

``build(mapper)`` asks a Mapper (DM_LIST_DEVICES, DM_TABLE_DEPS); else pure: the
caller supplies, for a device number, what DM_TABLE_DEPS says about it
(``lookup(major, minor) -> (name, uuid, info, [(major, minor)])`` or None for a
device that is not a mapped device).  The tree is linked the way libdm's deptree
does it (a device used by another one leaves the top level; devices without
dependencies hang below the root when inverted), and drawn the way dmsetup's
pstree-derived code does, including its byte-wise truncation at the terminal width
with ``...``.
"""

from dmctl.errors import DmctlError

ASCII = ("  ", "|-", "| ", "`-", "---", "-+-")
UTF = ("  ", "\u251c\u2500", "\u2502 ", "\u2514\u2500", "\u2500\u2500\u2500",
       "\u2500\u252c\u2500")
_VB, _VE = "\033(0\017", "\033(B"
VT100 = ("  ", _VB + "tq" + _VE, _VB + "x" + _VE + " ", _VB + "mq" + _VE,
         _VB + "qqq" + _VE, _VB + "qwq" + _VE)

OPTION_WORDS = ("device", "blkdevname", "nodevice", "status", "table", "active", "open",
                "uuid", "rw", "utf", "vt100", "ascii", "inverted", "compact", "notrunc")

MAX_DEPTH = 100


class TreeOptionError(DmctlError):
    pass


class TreeOptions:
    def __init__(self):
        self.device = True
        self.blkdevname = False
        self.table = False
        self.status = False
        self.active = False
        self.rw = False
        self.open = False
        self.uuid = False
        self.compact = False
        self.truncate = True
        self.inverted = False
        self.symbols = ASCII

    @property
    def print_attribute(self):
        return self.active or self.rw or self.open or self.uuid

    @property
    def print_targets(self):
        return self.table or self.status

    @property
    def print_compact(self):
        return self.compact and not self.print_attribute and not self.print_targets


def option_words(spec):
    """dmsetup's -o word loop: yields (word, rest-of-spec-from-word).  A word
    abbreviates an option name (``strncmp`` with the word's length)."""
    i = 0
    n = len(spec or "")
    while i < n:
        j = spec.find(",", i)
        if j < 0:
            j = n
        yield spec[i:j], spec[i:]
        if j >= n:
            break
        i = j + 1


def parse_options(spec, utf_default=False):
    """dmsetup's _process_tree_options: each comma-separated word may abbreviate an
    option (first match in dmsetup's order wins).  TreeOptionError carries the
    message."""
    o = TreeOptions()
    o.symbols = UTF if utf_default else ASCII
    if not spec:
        return o
    for w, rest in option_words(spec):
        if "device".startswith(w):
            o.device = True
        elif "blkdevname".startswith(w):
            o.blkdevname = True
        elif "nodevice".startswith(w):
            o.device = False
        elif "status".startswith(w):
            o.status = True
        elif "table".startswith(w):
            o.table = True
        elif "active".startswith(w):
            o.active = True
        elif "open".startswith(w):
            o.open = True
        elif "uuid".startswith(w):
            o.uuid = True
        elif "rw".startswith(w):
            o.rw = True
        elif "utf".startswith(w):
            o.symbols = UTF
        elif "vt100".startswith(w):
            o.symbols = VT100
        elif "ascii".startswith(w):
            o.symbols = ASCII
        elif "inverted".startswith(w):
            o.inverted = True
        elif "compact".startswith(w):
            o.compact = True
        elif "notrunc".startswith(w):
            o.truncate = False
        else:
            raise TreeOptionError("Tree options not recognised: %s." % rest)
    return o


class Node:
    __slots__ = ("major", "minor", "name", "uuid", "info", "uses", "used_by", "tree")

    def __init__(self, tree, major, minor, name="", uuid="", info=None):
        self.tree = tree
        self.major = major
        self.minor = minor
        self.name = name
        self.uuid = uuid
        self.info = info          # DeviceInfo for a mapped device, None otherwise
        self.uses = []
        self.used_by = []

    @property
    def exists(self):
        return self.info is not None

    def num_children(self, inverted):
        root = self.tree.root
        if inverted:
            if self in root.uses:
                return 0
            return len(self.used_by)
        if root in self.uses:
            return 0
        return len(self.uses)

    def children(self, inverted):
        return list(self.used_by if inverted else self.uses)

    def __repr__(self):
        return "Node(%d:%d %r)" % (self.major, self.minor, self.name)


class DepTree:
    """libdm's dm_tree, as far as dmsetup's reports and ``ls --tree`` use it."""

    def __init__(self, lookup):
        self.lookup = lookup
        self.root = Node(self, 0, 0)
        self.nodes = {}

    def find(self, major, minor):
        if not major and not minor:
            return self.root
        return self.nodes.get((major, minor))

    @staticmethod
    def _link(parent, child):
        if child in parent.uses:
            return
        parent.uses.append(child)
        child.used_by.append(parent)

    @staticmethod
    def _unlink(parent, child):
        if child not in parent.uses:
            return
        parent.uses.remove(child)
        child.used_by.remove(parent)

    def _link_tree_nodes(self, parent, child):
        root = self.root
        if parent is root:
            if child.num_children(True):
                return
        else:
            self._unlink(root, child)
        if child is root:
            if parent.num_children(False):
                return
        else:
            self._unlink(parent, root)
        self._link(parent, child)

    def add_dev(self, major, minor, parent=None):
        if parent is None:
            parent = self.root
        node = self.nodes.get((major, minor))
        new = False
        deps = []
        if node is None:
            rec = self.lookup(major, minor)
            if rec is None:
                node = Node(self, major, minor)
            else:
                name, uuid, info, deps = rec
                node = Node(self, major, minor, name or "", uuid or "", info)
            self.nodes[(major, minor)] = node
            new = True
        self._link_tree_nodes(parent, node)
        if not new:
            return node
        if not node.exists or not deps:
            self._link(node, self.root)     # bottom level
            return node
        for dmaj, dmin in deps:
            self.add_dev(dmaj, dmin, node)
        return node


def build(mapper, display=None):
    """The whole dependency tree of ``mapper``'s devices (dmsetup's
    ``_build_whole_deptree``); ``display`` turns a kernel name or uuid into the form
    shown.  Returns (tree, any_device); DmError from listing the devices propagates."""
    from dmctl.errors import DmError
    from dmctl.records import DevId
    if display is None:
        display = str
    entries = mapper.list_devices()
    dm_majors = {e.major for e in entries}

    def lookup(major, minor):
        if major not in dm_majors:
            return None
        try:
            info, deps = mapper.deps(DevId(major=major, minor=minor))
        except DmError:
            return None
        return (display(info.name), info.uuid and display(info.uuid) or "", info,
                list(deps))

    tree = DepTree(lookup)
    for e in entries:
        tree.add_dev(e.major, e.minor)
    return tree, bool(entries)


class _Drawer:
    def __init__(self, opts, termwidth=80, blkname=None):
        self.o = opts
        self.termwidth = termwidth
        self.blkname = blkname or (lambda major, minor: None)
        self.out = bytearray()
        self.cur_x = 1
        self.last_char = 0
        self.width = [0] * (MAX_DEPTH + 3)
        self.more = [0] * (MAX_DEPTH + 3)

    def char(self, c):
        self.cur_x += (c & 0xC0) != 0x80
        if not self.o.truncate:
            self.out.append(c)
            return
        if self.cur_x <= self.termwidth:
            self.out.append(c)
        if self.cur_x == self.termwidth + 1 and (c & 0xC0) != 0x80:
            if self.last_char or (c & 0x80):
                self.out += b"..."
            else:
                self.last_char = c
                self.cur_x -= 1

    def string(self, s):
        for b in s.encode("utf-8", "surrogateescape"):
            self.char(b)

    def newline(self):
        if self.last_char and self.cur_x == self.termwidth:
            self.out.append(self.last_char)
        self.last_char = 0
        self.out.append(0x0A)
        self.cur_x = 1

    def prefix(self, depth):
        sym = self.o.symbols
        for d in range(depth):
            for _ in range(self.width[d] + 1):
                self.char(0x20)
            if d == depth - 1:
                self.string(sym[3] if not self.more[depth] else sym[1])
            else:
                self.string(sym[2] if self.more[d + 1] else sym[0])

    def attributes(self, node):
        if not node.exists:
            return
        info = node.info
        n = 0
        o = self.o
        if o.active:
            self.string(", " if n else " [")
            n += 1
            self.string("SUSPENDED" if info.suspended else "ACTIVE")
        if o.rw:
            self.string(", " if n else " [")
            n += 1
            self.string("RO" if info.read_only else "RW")
        if o.open:
            self.string(", " if n else " [")
            n += 1
            self.string("%d" % (info.open_count & 0xFFFFFFFF))
        if o.uuid:
            self.string(", " if n else " [")
            n += 1
            self.string(node.uuid or "")
        if n:
            self.char(ord("]"))

    def node(self, node, depth, last_child, has_children):
        o = self.o
        if depth + 2 > MAX_DEPTH:
            return
        name = node.name
        if not name and not o.device and not o.blkdevname:
            return
        self.more[depth] = 0 if last_child else 1
        self.width[depth] = 0
        first_on_line = self.cur_x == 1
        compact = o.print_compact
        if not compact or first_on_line:
            self.prefix(depth)
        offset = self.cur_x
        if compact and not first_on_line:
            self.string(o.symbols[5] if self.more[depth] else o.symbols[4])
        self.string(name)
        if o.blkdevname:
            bn = self.blkname(node.major, node.minor)
            if bn is not None:
                self.string(" <")
                self.string(bn)
                self.char(ord(">"))
        if o.device:
            self.string(" (")
            self.string("%d:%d" % (node.major, node.minor))
            self.char(ord(")"))
        if o.print_attribute:
            self.attributes(node)
        if compact:
            self.width[depth] = self.cur_x - offset
        if not compact or not has_children:
            self.newline()
        if o.print_targets:
            self.more[depth + 1] = has_children

    def walk(self, parent, depth):
        inv = self.o.inverted
        kids = parent.children(inv)
        for i, child in enumerate(kids):
            has = 1 if child.num_children(inv) else 0
            self.node(child, depth, i == len(kids) - 1, has)
            if has:
                self.walk(child, depth + 1)


def render(tree, opts, termwidth=80, blkname=None):
    """The drawing as bytes (UTF-8 glyphs are bytes, truncation counts characters
    the way dmsetup does)."""
    d = _Drawer(opts, termwidth, blkname)
    d.walk(tree.root, 0)
    return bytes(d.out)
