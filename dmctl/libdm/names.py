"""Device names and UUIDs: libdm's mangling rules and LVM name decoding.

Pure functions, no I/O.  Error messages are libdm's (dmsetup prints them verbatim).

* ``mangle(s, mode, what)``: the kernel form of a user string (``\\xNN`` for every
  character outside udev's whitelist).  ``mode`` is ``"auto"`` (keep an already
  mangled string, refuse mixtures), ``"hex"`` (always encode) or ``"none"``
  (treated as auto, as libdm does when it is asked to mangle explicitly).
* ``kernel_form(s, mode, what)``: what libdm sends for a user string in ``mode``
  (``none`` sends it as it is).
* ``unmangle(s, mode)``: the display form of a kernel string.
* ``split_lvm_name(name)``: ``vg--a-lv--b-tpool`` -> ``("vg-a", "lv-b", "tpool")``.
* ``split_name(uuid_or_subsystem, name, separator)``: dmsetup's splitname record.
"""

from dmctl.constants import DM_NAME_LEN, DM_UUID_LEN
from dmctl.errors import DmctlError

_SAFE = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#+-.:=@_")


class ManglingError(DmctlError):
    """A string cannot be (un)mangled; ``str(e)`` is libdm's message."""


def is_whitelisted(c):
    return c in _SAFE


def needs_mangling(s):
    return any(c not in _SAFE for c in s)


def check_multiple_mangled(s, what="name", mode="auto"):
    """libdm refuses ``\\x5cx`` (a mangled backslash before x) in auto mode."""
    if mode == "auto" and "\\x5cx" in s:
        raise ManglingError('The %s "%s" seems to be mangled more than once. '
                            'This is not allowed in auto mode.' % (what, s))


def _char_bytes(c):
    # libdm works on bytes: a non-ASCII character is encoded byte by byte (UTF-8).
    return c.encode("utf-8", "surrogateescape")


def mangle(s, mode="auto", what="name", limit=None):
    """Return the mangled form of ``s``; raises ManglingError with libdm's text."""
    if not s:
        return s
    if mode == "none":
        mode = "auto"
    if limit is None:
        limit = DM_UUID_LEN if what == "UUID" else DM_NAME_LEN
    out = []
    need = None          # None: unknown, False: already mangled, True: mangling
    i = 0
    n = len(s)
    mixed = ('The %s "%s" contains mixed mangled and unmangled characters '
             "or it's already mangled improperly." % (what, s))
    while i < n:
        c = s[i]
        if mode == "auto" and c == "\\" and i + 1 < n and s[i + 1] == "x":
            if n - i < 4 or need is True:
                raise ManglingError(mixed)
            out.append(s[i:i + 4])
            i += 4
            need = False
            continue
        if c in _SAFE:
            out.append(c)
        else:
            if mode != "hex" and need is False:
                raise ManglingError(mixed)
            out.append("".join("\\x%02x" % b for b in _char_bytes(c)))
            need = True
        i += 1
    r = "".join(out)
    if len(r.encode("utf-8", "surrogateescape")) >= limit:
        raise ManglingError('Mangled form of the %s too long for "%s".' % (what, s))
    return r


def unmangle(s, mode="none", what="name"):
    """Decode ``\\xNN`` sequences.  With a strict mode (``auto``/``hex``) a string
    with blacklisted characters is an error (libdm: it should have been mangled)."""
    if not s or ("\\x" not in s and (mode == "none" or not needs_mangling(s))):
        return s
    strict = mode != "none"
    out = bytearray()
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if strict and not (c in _SAFE or c == "\\"):
            raise ManglingError('The %s "%s" should be mangled but it contains '
                                'blacklisted characters.' % (what, s))
        if c == "\\" and i + 1 < n and s[i + 1] == "x":
            hx = ""
            j = i + 2
            while j < n and len(hx) < 2 and s[j] in "0123456789abcdefABCDEF":
                hx += s[j]
                j += 1
            if not hx:
                # libdm stops decoding at a malformed escape and keeps what it has.
                return out.decode("utf-8", "surrogateescape")
            out.append(int(hx, 16))
            i += 4
            continue
        out += _char_bytes(c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def kernel_form(s, mode="auto", what="name"):
    """A user-supplied name/uuid as libdm sends it for mangling ``mode``: unchanged in
    mode ``none`` and, in ``auto``, when nothing needs mangling; else ``mangle``."""
    if mode == "none" or (mode == "auto" and not needs_mangling(s)):
        return s
    return mangle(s, mode, what)


def mangled_form(s, mode="auto", what="name"):
    """The ``mangled_name``/``mangled_uuid`` report value of a kernel string."""
    return mangle(s, mode, what)


def unmangled_form(s, mode="auto", what="name"):
    """The ``unmangled_name``/``unmangled_uuid`` report value of a kernel string.
    In auto/hex mode libdm already unmangled on ioctl return; only ``none`` decodes
    here (leniently)."""
    if mode == "none":
        return unmangle(s, "none", what)
    return unmangle(s, mode, what)


# ------------------------------------------------------------------------ LVM names

def _unquote(s):
    """One component of an LVM dm name: returns (component, rest)."""
    out = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if i + 1 < n and c == "-":
            if s[i + 1] == "-":
                i += 1
                c = "-"
            else:
                break
        out.append(c)
        i += 1
    rest = s[i + 1:] if i < n else ""
    return "".join(out), rest


def split_lvm_name(name):
    """``vg-lv-layer`` with ``--`` escaping ``-`` -> (vg, lv, layer)."""
    vg, rest = _unquote(name)
    lv, rest = _unquote(rest)
    layer, _ = _unquote(rest)
    return vg, lv, layer


def uuid_prefix(uuid, separator="-"):
    """dmsetup's _extract_uuid_prefix: text before the first ``separator``
    (``""`` when there is none); separator ``""`` means the whole string."""
    if not uuid:
        return ""
    if separator == "":
        return uuid
    i = uuid.find(separator)
    return uuid[:i] if i >= 0 else ""


class SplitName:
    __slots__ = ("subsystem", "vg_name", "lv_name", "lv_layer")

    def __init__(self, subsystem, vg_name="", lv_name="", lv_layer=""):
        self.subsystem = subsystem
        self.vg_name = vg_name
        self.lv_name = lv_name
        self.lv_layer = lv_layer


def split_name(uuid, name, separator="-"):
    """dmsetup's _get_split_name: subsystem from the uuid prefix; the LVM name
    components only when the subsystem is ``LVM``."""
    sub = uuid_prefix(uuid, separator)
    if sub == "LVM":
        return SplitName(sub, *split_lvm_name(name or ""))
    return SplitName(sub)


# ------------------------------------------------------------------------ validation

def check_name(name):
    """libdm's checks on a device name given by the user: message or None."""
    if "/" in name:
        return 'Name "%s" invalid. It contains "/".' % name
    if len(name.encode("utf-8", "surrogateescape")) >= DM_NAME_LEN:
        return 'Name "%s" too long.' % name
    return None
