"""mirror (dm-raid1) with core, disk and userspace dirty logs.

INFO: ``<n> <dev>... <in sync>/<regions> 1 <health chars> <log status>``, the log's
status being ``<argc> <args...>`` (``1 core``, ``3 disk <dev> <A|D|F>``, a userspace
server's own text such as ``3 clustered-disk <dev> A``), or ``userspace 1 COM_FAILURE``
when the userspace log server cannot be reached (reference/targets.md §4.3, §5).
"""

from __future__ import annotations

from dmctl.libdm.fields import (ParseError, Record, devno_dict, need, to_int, to_uint,
                                words)
from dmctl.libdm.status.base import DeviceHealth, TargetStatus

HEALTH = {"A": "alive", "F": "flush_error", "D": "write_error", "S": "sync_error",
          "R": "read_error", "U": "unknown_error"}


class MirrorLegStatus(DeviceHealth):
    """One leg's device and health character: ``A`` alive, ``F`` flush, ``D`` write,
    ``S`` sync (resync), ``R`` read failure, ``U`` unknown."""

    __slots__ = ()

    @property
    def health_name(self) -> str:
        """``alive``, ``flush_error``, ``write_error``, ``sync_error``, ``read_error``..."""
        return HEALTH.get(self.health, "unknown")

    def as_dict(self) -> dict:
        d = DeviceHealth.as_dict(self)
        d["health_name"] = self.health_name
        return d


class MirrorLogStatus(Record):
    """The dirty log's part of mirror's status: ``args`` as printed after the count
    (``["core"]``, ``["disk", "7:6", "A"]``, ``["clustered-disk", "7:6", "A"]``).
    ``com_failure``: the kernel printed ``userspace 1 COM_FAILURE`` (no log server)."""

    __slots__ = ("args", "com_failure")

    def __init__(self, args: list, com_failure: bool = False):
        self.args = list(args)
        self.com_failure = com_failure

    @property
    def log_type(self) -> str | None:
        """``core``, ``disk``, ``clustered-core``, ``clustered-disk``, or ``userspace``
        for a COM_FAILURE."""
        if self.com_failure:
            return "userspace"
        return self.args[0] if self.args else None

    @property
    def _has_device(self):
        return len(self.args) >= 3 and self.args[0] in ("disk", "clustered-disk")

    @property
    def device(self) -> str | None:
        """The log device of a disk log."""
        return self.args[1] if self._has_device else None

    @property
    def health(self) -> str | None:
        """A disk log's health: ``A`` alive, ``D`` write failed, ``F`` flush failed."""
        return self.args[2] if self._has_device else None

    @classmethod
    def parse_words(cls, ws: list) -> MirrorLogStatus:
        failure = bool(ws) and ws[0] == "userspace"
        if failure:
            ws = ws[1:]
        need(ws, 1, "mirror log status")
        argc = to_uint(ws[0], "mirror log argc")
        args = ws[1:]
        if len(args) != argc:
            raise ParseError("mirror log status: %d args announced, %d present"
                             % (argc, len(args)))
        return cls(args, failure)

    def format(self) -> str:
        return " ".join((["userspace"] if self.com_failure else [])
                        + [str(len(self.args))] + self.args)

    def as_dict(self) -> dict:
        d = {"type": self.log_type, "args": list(self.args)}
        if self.com_failure:
            d["com_failure"] = True
        elif self._has_device:
            d["device"] = devno_dict(self.device)
            d["health"] = self.health
            d["health_name"] = HEALTH.get(self.health, "unknown")
        return d


class MirrorStatus(TargetStatus):
    """mirror's status: ``legs`` (:class:`MirrorLegStatus`), ``in_sync_regions`` of
    ``total_regions``, and the dirty ``log`` (:class:`MirrorLogStatus`)."""

    __slots__ = ("legs", "in_sync_regions", "total_regions", "log")
    target_type = "mirror"

    def __init__(self, legs: list, in_sync_regions: int, total_regions: int,
                 log: MirrorLogStatus):
        self.legs = list(legs)
        self.in_sync_regions = in_sync_regions
        self.total_regions = total_regions
        self.log = log

    @property
    def nr_mirrors(self) -> int:
        return len(self.legs)

    @property
    def in_sync(self) -> bool:
        """Every region is in sync."""
        return self.in_sync_regions == self.total_regions

    @classmethod
    def parse(cls, text):
        ws = words(text)
        # libdevmapper's dm_get_status_mirror skips a leading ``userspace`` word
        if ws and ws[0] == "userspace":
            ws = ws[1:]
        need(ws, 1, "mirror status")
        n = to_uint(ws[0], "mirror leg count")
        need(ws, n + 4, "mirror status")
        devs = ws[1:1 + n]
        sync, sep, regions = ws[1 + n].partition("/")
        if not sep:
            raise ParseError("mirror status: expected <in sync>/<regions>, got %r"
                             % ws[1 + n])
        nhealth = to_int(ws[2 + n], "mirror health word count")
        health = ws[3 + n] if nhealth >= 1 else ""
        if len(health) != n:
            raise ParseError("mirror status: %d health chars for %d legs" % (len(health), n))
        log = MirrorLogStatus.parse_words(ws[3 + n + max(nhealth, 0):])
        return cls([MirrorLegStatus(d, h) for d, h in zip(devs, health)],
                   to_int(sync, "mirror in-sync regions"), to_int(regions, "mirror regions"),
                   log)

    def format(self):
        return " ".join([str(len(self.legs))] + [g.device for g in self.legs]
                        + ["%d/%d" % (self.in_sync_regions, self.total_regions), "1",
                           "".join(g.health for g in self.legs), self.log.format()])

    def as_dict(self):
        return {"nr_mirrors": self.nr_mirrors,
                "legs": [g.as_dict() for g in self.legs],
                "in_sync_regions": self.in_sync_regions,
                "total_regions": self.total_regions,
                "in_sync": self.in_sync,
                "log": self.log.as_dict()}
