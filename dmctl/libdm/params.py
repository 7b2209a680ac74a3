"""Typed, symmetric target parameters: a table line's params parsed into an object that
formats back to the same text.

For every table line the kernel prints (``dmsetup table``), ``str(parse_params(type,
text)) == text``.  Devices are kept as the text given: a path or ``maj:min``.  Numbers
are formatted in decimal, so non-canonical input (``010``, extra spaces) comes back in
the kernel's canonical form.  Unknown target types pass through as :class:`RawParams`:
nothing on the kernel path needs typed params.

Shapes (reference/targets.md and the kernel's documentation)::

    linear      <dev> <offset>
    striped     <#stripes> <chunk size> (<dev> <offset>)...
    zero, error (no params)
    era         <metadata dev> <origin dev> <block size>
    log-writes  <dev> <log dev>
    mirror      <log type> <#log args> <log args...> <#mirrors> (<dev> <offset>)...
                [<#features> handle_errors [keep_log]]
      core      <region size> [sync|nosync]
      disk      <log dev> <region size> [sync|nosync]
      userspace <uuid> [integrated_flush] clustered-core|clustered-disk [<log dev>]
                <region size> [sync|nosync|block_on_error]...

A shape the kernel would refuse raises :class:`dmctl.libdm.fields.ParseError`; the
kernel's own checks (devices that exist, block size multiple of 8...) stay the kernel's.
"""

from __future__ import annotations

from dmctl.libdm.fields import (NoFields, ParseError, Record, TargetText, devno_dict,
                                is_uint, need, to_uint, words)
from dmctl.libdm.table import TableError
from dmctl.libdm.table import parse_line as _parse_line
from dmctl.libdm.table import parse_table as _parse_table
from dmctl.records import TargetLine

__all__ = ["TargetParams", "RawParams", "LinearParams", "StripedParams", "ZeroParams",
           "ErrorParams", "EraParams", "LogWritesParams", "MirrorParams", "Leg",
           "DirtyLog", "CoreLog", "DiskLog", "UserspaceLog", "TableLine", "Table",
           "parse_params", "parse_table", "params_class", "known_types"]


class TargetParams(TargetText):
    """Base of a target's typed params.

    ``parse(text)`` builds one from the params text of a table line; ``format()`` (and
    ``str()``) gives the text back; ``as_dict()`` is what ``dmctl table --json`` shows
    as the line's ``fields``.  ``target_type`` names the target."""

    __slots__ = ()
    kind = "table"


class RawParams(TargetParams):
    """Params of a target type without a typed class: the text, verbatim."""

    __slots__ = ("target_type", "text")

    def __init__(self, target_type: str, text: str = ""):
        self.target_type = target_type
        self.text = text

    @classmethod
    def parse(cls, text, target_type=""):
        return cls(target_type, text)

    def format(self):
        return self.text

    def as_dict(self):
        return {}


class _DeviceOffset:
    """``<dev> <offset>``: the text and ``--json`` fields of a device and a sector."""

    __slots__ = ()

    def format(self) -> str:
        return "%s %d" % (self.device, self.offset)

    def as_dict(self) -> dict:
        d = devno_dict(self.device)
        d["offset"] = self.offset
        return d


class Leg(_DeviceOffset, Record):
    """A device and a start sector on it: one stripe of ``striped``, one mirror leg of
    ``mirror``."""

    __slots__ = ("device", "offset")

    def __init__(self, device: str, offset: int = 0):
        self.device = device
        self.offset = offset


def _legs(ws, n, what):
    """``n`` (<dev> <offset>) pairs from ``ws`` -> [Leg]."""
    need(ws, 2 * n, what)
    return [Leg(ws[2 * i], to_uint(ws[2 * i + 1], what + " offset")) for i in range(n)]


# ------------------------------------------------------------------ simple targets

class LinearParams(_DeviceOffset, TargetParams):
    """``linear <dev> <offset>``: map onto ``device`` from sector ``offset``."""

    __slots__ = ("device", "offset")
    target_type = "linear"

    def __init__(self, device: str, offset: int = 0):
        self.device = device
        self.offset = offset

    @classmethod
    def parse(cls, text):
        ws = words(text)
        if len(ws) != 2:
            raise ParseError("linear: expected <device> <offset>, got %r" % text)
        return cls(ws[0], to_uint(ws[1], "linear offset"))


class StripedParams(TargetParams):
    """``striped <#stripes> <chunk size> (<dev> <offset>)...``: chunks of
    ``chunk_size`` sectors spread round-robin over ``stripes`` ([Leg])."""

    __slots__ = ("chunk_size", "stripes")
    target_type = "striped"

    def __init__(self, chunk_size: int, stripes: list):
        self.chunk_size = chunk_size
        self.stripes = list(stripes)

    @classmethod
    def parse(cls, text):
        ws = words(text)
        need(ws, 2, "striped table")
        n = to_uint(ws[0], "striped stripe count")
        chunk = to_uint(ws[1], "striped chunk size")
        if len(ws) != 2 + 2 * n:
            raise ParseError("striped table: %d stripes need %d words, got %d"
                             % (n, 2 + 2 * n, len(ws)))
        return cls(chunk, _legs(ws[2:], n, "striped stripe"))

    def format(self):
        return " ".join(["%d %d" % (len(self.stripes), self.chunk_size)]
                        + [s.format() for s in self.stripes])

    def as_dict(self):
        return {"nr_stripes": len(self.stripes), "chunk_size": self.chunk_size,
                "stripes": [s.as_dict() for s in self.stripes]}


class ZeroParams(NoFields, TargetParams):
    """``zero``: reads return zeros, writes are dropped (no params)."""

    __slots__ = ()
    target_type = "zero"


class ErrorParams(NoFields, TargetParams):
    """``error``: every I/O fails (no params)."""

    __slots__ = ()
    target_type = "error"


class EraParams(TargetParams):
    """``era <metadata dev> <origin dev> <block size>``: track in which era each block
    of ``block_size`` sectors of the origin was last written."""

    __slots__ = ("metadata_dev", "origin_dev", "block_size")
    target_type = "era"

    def __init__(self, metadata_dev: str, origin_dev: str, block_size: int):
        self.metadata_dev = metadata_dev
        self.origin_dev = origin_dev
        self.block_size = block_size

    @classmethod
    def parse(cls, text):
        ws = words(text)
        if len(ws) != 3:
            raise ParseError("era table: expected 3 words, got %d" % len(ws))
        return cls(ws[0], ws[1], to_uint(ws[2], "era block size"))

    def format(self):
        return "%s %s %d" % (self.metadata_dev, self.origin_dev, self.block_size)

    def as_dict(self):
        return {"metadata_dev": devno_dict(self.metadata_dev),
                "origin_dev": devno_dict(self.origin_dev),
                "block_size": self.block_size}


class LogWritesParams(TargetParams):
    """``log-writes <dev> <log dev>``: pass writes to ``dev`` and log each, in
    completion order, on ``log_dev``."""

    __slots__ = ("dev", "log_dev")
    target_type = "log-writes"

    def __init__(self, dev: str, log_dev: str):
        self.dev = dev
        self.log_dev = log_dev

    @classmethod
    def parse(cls, text):
        ws = words(text)
        if len(ws) != 2:
            raise ParseError("log-writes table: expected 2 words, got %d" % len(ws))
        return cls(ws[0], ws[1])

    def format(self):
        return "%s %s" % (self.dev, self.log_dev)

    def as_dict(self):
        return {"dev": devno_dict(self.dev), "log_dev": devno_dict(self.log_dev)}


# ------------------------------------------------------------------ mirror's dirty logs

_SYNC_WORDS = ("sync", "nosync")


def _sync_word(w, what):
    if w not in _SYNC_WORDS:
        raise ParseError("%s: unrecognised sync argument %r" % (what, w))
    return w


class DirtyLog(Record):
    """Base of mirror's dirty log part: ``<log type> <#args> <args...>``.

    ``args()`` are the log's arguments as the kernel prints them; ``parse_args(args)``
    builds the log from them."""

    __slots__ = ()
    log_type = None

    @classmethod
    def parse_args(cls, args: list) -> DirtyLog:
        raise NotImplementedError

    def args(self) -> list:
        raise NotImplementedError

    def format(self) -> str:
        a = self.args()
        return " ".join([self.log_type, str(len(a))] + a)

    def __str__(self):
        return self.format()

    def as_dict(self) -> dict:
        return {"type": self.log_type, "args": self.args()}


class CoreLog(DirtyLog):
    """``core <#args> <region size> [sync|nosync]``: the dirty log in memory only
    (a full resync at every activation unless ``nosync``).  ``sync`` is None,
    ``"sync"`` or ``"nosync"``."""

    __slots__ = ("region_size", "sync")
    log_type = "core"

    def __init__(self, region_size: int, sync: str | None = None):
        self.region_size = region_size
        self.sync = sync

    @classmethod
    def parse_args(cls, args):
        if not 1 <= len(args) <= 2:
            raise ParseError("mirror core log: expected 1 or 2 args, got %d" % len(args))
        return cls(to_uint(args[0], "mirror region size"),
                   _sync_word(args[1], "mirror core log") if len(args) > 1 else None)

    def args(self):
        return [str(self.region_size)] + ([self.sync] if self.sync else [])

    def as_dict(self):
        d = DirtyLog.as_dict(self)
        d["region_size"] = self.region_size
        if self.sync:
            d["sync"] = self.sync
        return d


class DiskLog(DirtyLog):
    """``disk <#args> <log dev> <region size> [sync|nosync]``: the dirty log kept on
    ``device`` (after a crash only dirty regions resync)."""

    __slots__ = ("device", "region_size", "sync")
    log_type = "disk"

    def __init__(self, device: str, region_size: int, sync: str | None = None):
        self.device = device
        self.region_size = region_size
        self.sync = sync

    @classmethod
    def parse_args(cls, args):
        if not 2 <= len(args) <= 3:
            raise ParseError("mirror disk log: expected 2 or 3 args, got %d" % len(args))
        return cls(args[0], to_uint(args[1], "mirror region size"),
                   _sync_word(args[2], "mirror disk log") if len(args) > 2 else None)

    def args(self):
        return [self.device, str(self.region_size)] + ([self.sync] if self.sync else [])

    def as_dict(self):
        d = DirtyLog.as_dict(self)
        d["device"] = devno_dict(self.device)
        d["region_size"] = self.region_size
        if self.sync:
            d["sync"] = self.sync
        return d


_USERSPACE_OPTIONS = ("sync", "nosync", "block_on_error")


class UserspaceLog(DirtyLog):
    """``userspace <#args> <uuid> [integrated_flush] <type> [<log dev>] <region size>
    [options...]``: a cluster-coherent log served by a userspace server (cmirrord,
    ``dmctl logd``).  ``userspace_type`` is ``clustered-core`` or ``clustered-disk``
    (which has a ``device``); ``options`` are ``sync``, ``nosync``,
    ``block_on_error`` in the order given."""

    __slots__ = ("uuid", "userspace_type", "device", "region_size", "options",
                 "integrated_flush")
    log_type = "userspace"

    def __init__(self, uuid: str, userspace_type: str, region_size: int,
                 device: str | None = None, options: tuple = (),
                 integrated_flush: bool = False):
        self.uuid = uuid
        self.userspace_type = userspace_type
        self.region_size = region_size
        self.device = device
        self.options = tuple(options)
        self.integrated_flush = integrated_flush

    @classmethod
    def parse_args(cls, args):
        if len(args) < 3:
            raise ParseError("mirror userspace log: expected at least 3 args, got %d"
                             % len(args))
        a = list(args)
        uuid = a.pop(0)
        flush = a[0].lower() == "integrated_flush"
        if flush:
            a.pop(0)
        need(a, 2, "mirror userspace log")
        utype = a.pop(0)
        device = None
        if not is_uint(a[0]):
            device = a.pop(0)
        need(a, 1, "mirror userspace log")
        region = to_uint(a.pop(0), "mirror region size")
        for w in a:
            if w not in _USERSPACE_OPTIONS:
                raise ParseError("mirror userspace log: unknown argument %r" % w)
        return cls(uuid, utype, region, device, a, flush)

    def args(self):
        return ([self.uuid] + (["integrated_flush"] if self.integrated_flush else [])
                + [self.userspace_type] + ([self.device] if self.device is not None else [])
                + [str(self.region_size)] + list(self.options))

    def as_dict(self):
        d = DirtyLog.as_dict(self)
        d["uuid"] = self.uuid
        d["userspace_type"] = self.userspace_type
        if self.integrated_flush:
            d["integrated_flush"] = True
        if self.device is not None:
            d["device"] = devno_dict(self.device)
        d["region_size"] = self.region_size
        if self.options:
            d["sync"] = self.options[0]
        return d


_LOGS = {c.log_type: c for c in (CoreLog, DiskLog, UserspaceLog)}

_FEATURES = ("handle_errors", "keep_log")


class MirrorParams(TargetParams):
    """``mirror <log> <#mirrors> (<dev> <offset>)... [<#features> <features>...]``.

    ``log`` is a :class:`CoreLog`, :class:`DiskLog` or :class:`UserspaceLog`;
    ``legs`` a list of :class:`Leg`; ``features`` the feature words as given
    (``handle_errors``, ``keep_log``; ``()`` prints no feature part)."""

    __slots__ = ("log", "legs", "features")
    target_type = "mirror"

    def __init__(self, log: DirtyLog, legs: list, features: tuple = ()):
        self.log = log
        self.legs = list(legs)
        self.features = tuple(features)

    @property
    def handle_errors(self) -> bool:
        """Failed legs are reported (and writes held) instead of hidden."""
        return "handle_errors" in self.features

    @property
    def keep_log(self) -> bool:
        """Writes that fail on a leg still complete; only a failed log fails them."""
        return "keep_log" in self.features

    @classmethod
    def parse(cls, text):
        ws = words(text)
        need(ws, 2, "mirror table")
        log_cls = _LOGS.get(ws[0])
        if log_cls is None:
            raise ParseError("mirror table: unknown dirty log type %r" % ws[0])
        argc = to_uint(ws[1], "mirror log argc")
        if len(ws) < 2 + argc:
            raise ParseError("mirror table: log args truncated")
        log = log_cls.parse_args(ws[2:2 + argc])
        rest = ws[2 + argc:]
        need(rest, 1, "mirror table")
        n = to_uint(rest[0], "mirror leg count")
        legs = _legs(rest[1:], n, "mirror leg")
        feats = rest[1 + 2 * n:]
        features = ()
        if feats:
            nf = to_uint(feats[0], "mirror feature count")
            features = tuple(feats[1:])
            if len(features) != nf:
                raise ParseError("mirror table: feature count mismatch")
            for f in features:
                if f not in _FEATURES:
                    raise ParseError("mirror table: unrecognised feature %r" % f)
            if "keep_log" in features and "handle_errors" not in features:
                raise ParseError("mirror table: keep_log requires handle_errors")
        return cls(log, legs, features)

    def format(self):
        out = [self.log.format(), str(len(self.legs))] + [g.format() for g in self.legs]
        if self.features:
            out += [str(len(self.features))] + list(self.features)
        return " ".join(out)

    def as_dict(self):
        return {"log": self.log.as_dict(), "nr_mirrors": len(self.legs),
                "legs": [g.as_dict() for g in self.legs],
                "features": list(self.features),
                "handle_errors": self.handle_errors, "keep_log": self.keep_log}


# ------------------------------------------------------------------ registry

_TYPES = {c.target_type: c for c in (LinearParams, StripedParams, ZeroParams, ErrorParams,
                                     EraParams, LogWritesParams, MirrorParams)}


def known_types() -> list:
    """Target types with a typed params class."""
    return sorted(_TYPES)


def params_class(target_type: str):
    """The TargetParams subclass for ``target_type``, or None."""
    return _TYPES.get(target_type)


def parse_params(target_type: str, text: str) -> TargetParams:
    """A table line's params -> typed params (:class:`RawParams` for an unknown type).
    ParseError if a known type's text does not have its shape."""
    cls = _TYPES.get(target_type)
    if cls is None:
        return RawParams(target_type, text)
    return cls.parse(text)


# ------------------------------------------------------------------ table lines

class TableLine(Record):
    """One typed table line: ``start`` and ``length`` in sectors, and ``params`` (a
    TargetParams; its ``target_type`` is the line's)."""

    __slots__ = ("start", "length", "params")

    def __init__(self, start: int, length: int, params: TargetParams):
        self.start = start
        self.length = length
        self.params = params

    @property
    def target_type(self) -> str:
        """The target type, from ``params``."""
        return self.params.target_type

    @classmethod
    def parse(cls, text: str) -> TableLine:
        """``"<start> <length> <type> <params>"`` (dmsetup's rules) -> TableLine.
        TableError for a blank or malformed line, ParseError for bad params."""
        t = _parse_line(text)
        if t is None:
            raise TableError("Invalid format on line 1 of table .")
        return cls.from_target_line(t)

    @classmethod
    def from_target_line(cls, line: TargetLine) -> TableLine:
        """A raw :class:`dmctl.records.TargetLine` (what a Mapper returns) -> typed."""
        return cls(line.start, line.length, parse_params(line.target_type, line.params))

    def to_target_line(self) -> TargetLine:
        """-> :class:`dmctl.records.TargetLine`, what ``Mapper.load`` takes."""
        return TargetLine(self.start, self.length, self.target_type, self.params.format())

    def format(self) -> str:
        """``"<start> <length> <type> <params>"`` as dmsetup prints it (a space after the
        type even when there are no params)."""
        return "%d %d %s %s" % (self.start, self.length, self.target_type,
                                self.params.format())

    def __str__(self):
        return self.format()


class Table(Record):
    """A whole table: a list of :class:`TableLine` (``lines``); iterable, indexable.

    ``Table.parse(text)`` reads dmsetup's table text (one line per target, ``#``
    comments and blank lines skipped); ``format()`` writes it back, one line each,
    newline-terminated; ``target_lines()`` is what ``Mapper.load`` takes."""

    __slots__ = ("lines",)

    def __init__(self, lines=()):
        self.lines = list(lines)

    @classmethod
    def parse(cls, text: str) -> Table:
        """Table text -> Table.  TableError for a malformed line (dmsetup's messages),
        ParseError for params that do not have their target's shape."""
        return cls(TableLine.from_target_line(t) for t in _parse_table(text))

    @classmethod
    def from_target_lines(cls, lines) -> Table:
        """Raw TargetLines (``Mapper.table(dev)[1]``) -> Table."""
        return cls(TableLine.from_target_line(t) for t in lines)

    def target_lines(self) -> list:
        """-> [:class:`dmctl.records.TargetLine`], what ``Mapper.load`` takes."""
        return [t.to_target_line() for t in self.lines]

    def format(self) -> str:
        """The table text: one ``<start> <length> <type> <params>`` line per target."""
        return "".join(t.format() + "\n" for t in self.lines)

    def __str__(self):
        return self.format()

    def __iter__(self):
        return iter(self.lines)

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        return self.lines[i]

    @property
    def size(self) -> int:
        """Sectors covered: the end of the last line."""
        return max((t.start + t.length for t in self.lines), default=0)


def parse_table(text: str) -> Table:
    """Table text -> :class:`Table` of typed lines (see :meth:`Table.parse`)."""
    return Table.parse(text)
