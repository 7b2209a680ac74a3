"""dmsetup's table text: the line parser, the concise format, and libdm's escaping.

Pure functions, no I/O.  The rules are dmsetup 1.02.185's (``_parse_line``,
``_parse_table_lines``, ``_create_concise``, ``_print_string_quoted``) and libdm's
(``create_target``: type-name length, ``_add_target``: backslash doubling):

* A line is trimmed at both ends (C ``isspace``); empty lines and lines starting with
  ``#`` are skipped.
* ``sscanf("%llu %llu %s %n")``: start and length are C unsigned long long
  conversions (optional sign, decimal digits, ``-1`` wraps, overflow saturates), the
  target type is the next whitespace-free word, the params are the rest of the line.
* A ``#`` anywhere in the params starts a comment (the rest of the line is dropped,
  whitespace before it is kept).
* A target type name of 16 characters or more is refused.
* The kernel splits params on whitespace treating ``\\`` as an escape, so libdm
  doubles every backslash before the ioctl (:func:`ioctl_params`).

Errors carry dmsetup's exact text in ``TableError.lines``.
"""

from dmctl.backend.base import TargetLine
from dmctl.constants import DM_MAX_TYPE_NAME
from dmctl.errors import DmctlError
from dmctl.numbers import CSPACE as _CSPACE, atoi, skip_space as _skip_space, sscanf_u


class TableError(DmctlError):
    """A table could not be parsed; ``lines`` are the messages dmsetup logs."""

    def __init__(self, *lines):
        self.lines = list(lines)
        super().__init__("\n".join(lines))


def _cstr(s):
    """A C string stops at the first NUL."""
    k = s.find("\0")
    return s if k < 0 else s[:k]


# ------------------------------------------------------------------------ table lines

def parse_line(text, source="", lineno=1):
    """One line of a table -> TargetLine, or None for a blank/comment line.

    ``source`` is what dmsetup names in its error: ``""`` for ``--table``, the file
    name, or ``"on stdin"``.  Raises TableError."""
    s = _cstr(text).strip(_CSPACE)
    if not s or s[0] == "#":
        return None
    start, i = sscanf_u(s, 0, 64)
    length = None
    ttype = None
    if start is not None:
        length, i = sscanf_u(s, i, 64)
    if length is not None:
        j = _skip_space(s, i)
        k = j
        while k < len(s) and s[k] not in _CSPACE:
            k += 1
        if k > j:
            ttype = s[j:k]
            i = _skip_space(s, k)
    if ttype is None:
        raise TableError("Invalid format on line %d of table %s." % (lineno, source))
    params = s[i:]
    hash_at = params.find("#")
    if hash_at >= 0:
        params = params[:hash_at]
    if len(ttype.encode("utf-8", "surrogateescape")) >= DM_MAX_TYPE_NAME:
        raise TableError("Target type name %s is too long." % ttype)
    return TargetLine(start, length, ttype, params)


def parse_table(text, source=""):
    """A whole table (``--table`` text, a file's or stdin's contents) -> [TargetLine].

    Lines are separated by ``\\n`` only (a ``\\r`` before it is trailing space)."""
    lines = []
    for n, raw in enumerate(text.split("\n"), 1):
        t = parse_line(raw, source, n)
        if t is not None:
            lines.append(t)
    return lines


def ioctl_params(params):
    """libdm's ``_add_target``: every backslash doubled for the kernel's arg splitter."""
    return params.replace("\\", "\\\\")


def to_ioctl(lines):
    """[TargetLine] as dmsetup sends them: params with backslashes doubled."""
    return [TargetLine(t.start, t.length, t.target_type, ioctl_params(t.params))
            for t in lines]


def format_table(lines):
    """[TargetLine] -> table text, one ``start length type params`` line each."""
    return "".join(t.format() + "\n" for t in lines)


# ------------------------------------------------------------------------ concise

class ConciseDevice(object):
    """One ``name,uuid,minor,flags,table`` entry of ``create --concise``.

    ``table`` is the table text (extra table lines separated by ``\\n``), ``uuid``
    and ``minor`` are None when empty, ``read_only`` is True for ``ro``."""
    __slots__ = ("name", "uuid", "minor", "read_only", "table")

    def __init__(self, name, uuid, minor, read_only, table):
        self.name = name
        self.uuid = uuid
        self.minor = minor
        self.read_only = read_only
        self.table = table

    def __repr__(self):
        return "ConciseDevice(%r, %r, %r, %r, %r)" % (
            self.name, self.uuid, self.minor, self.read_only, self.table)

    def lines(self):
        return parse_table(self.table, "")


def _parsed_fields(fields, f):
    vals = [("(null)" if v is None else v) for v in fields]
    return ("Parsed %d fields: name: %s uuid: %s minor: %s flags: %s table: %s"
            % ((f + 1,) + tuple(vals)))


def parse_concise(spec):
    """Generator over the devices of a concise specification, in order.

    Devices are yielded as soon as their entry is complete, so a caller that creates
    each one before asking for the next reproduces dmsetup (devices before a bad
    entry are created).  A bad entry raises TableError with dmsetup's messages."""
    s = _cstr(spec)
    n = len(s)
    fields = [None] * 5
    f = 0
    cur = []          # characters of the field being built
    started = False   # anything (even an empty field) stored since the last device
    i = 0

    def field_text():
        return "".join(cur)

    while i < n:
        c = s[i]
        if c == "\\":
            i += 1
            if i >= n:
                fields[f] = field_text()
                raise TableError(
                    "Backslash must be followed by another character at end of string.",
                    _parsed_fields(fields, f))
            cur.append(s[i])
            started = True
            i += 1
            continue
        if c == "," and f < 4:
            fields[f] = field_text()
            cur = []
            f += 1
            fields[f] = ""
            started = True
            i += 1
            i = _skip_space(s, i)
            continue
        if c == "," and f >= 4:
            cur.append("\n")
            started = True
            i += 1
            continue
        if c == ";" or i + 1 == n:
            if c != ";":
                cur.append(c)
            fields[f] = field_text()
            i += 1
            if f != 4:
                raise TableError(
                    "Five comma-separated fields are required for each device",
                    _parsed_fields(fields, f))
            flags = fields[3]
            if flags == "ro":
                ro = True
            elif flags and flags != "rw":
                raise TableError("Invalid flags parameter '%s' must be 'ro' or 'rw' or "
                                 "empty." % flags)
            else:
                ro = False
            yield ConciseDevice(fields[0], fields[1] or None,
                                atoi(fields[2]) if fields[2] else None, ro, fields[4])
            fields = [None] * 5
            f = 0
            cur = []
            started = False
            i = _skip_space(s, i)
            continue
        cur.append(c)
        started = True
        i += 1

    if started or cur:
        fields[f] = field_text()
        raise TableError(
            "Incomplete entry: five comma-separated fields are required for each device",
            _parsed_fields(fields, f))


def quote_concise(s):
    """``_print_string_quoted``: backslash before each ``,``, ``;`` and ``\\``."""
    out = []
    for c in s:
        if c in ",;\\":
            out.append("\\")
        out.append(c)
    return "".join(out)


def format_concise_device(name, uuid, minor, read_only, lines):
    """One device of ``table --concise`` (no separator): ``name,uuid,minor,rw|ro``
    then ``,start len type params`` per target, with ``, ; \\`` quoted."""
    out = [quote_concise(name or ""), ",", quote_concise(uuid or ""),
           ",%u,%s" % (minor, "ro" if read_only else "rw")]
    for t in lines:
        out.append(",%d %d %s " % (t.start, t.length, t.target_type))
        out.append(quote_concise(t.params))
    return "".join(out)


def format_concise(devices):
    """Several devices, ``;``-separated, as one line (no trailing newline).
    ``devices``: iterable of (name, uuid, minor, read_only, [TargetLine])."""
    return ";".join(format_concise_device(*d) for d in devices)
