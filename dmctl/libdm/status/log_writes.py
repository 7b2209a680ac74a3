"""log-writes: INFO ``<logged entries> <highest allocated sector>[ logging_disabled]``
(reference/targets.md §3.5)."""

from __future__ import annotations

from dmctl.libdm.fields import ParseError, to_int, words
from dmctl.libdm.status.base import TargetStatus


class LogWritesStatus(TargetStatus):
    """log-writes' status: ``logged_entries``, ``highest_allocated_sector`` (of the log
    device, 512-byte units) and ``logging_disabled`` (logging stopped, e.g. the log
    device is full)."""

    __slots__ = ("logged_entries", "highest_allocated_sector", "logging_disabled")
    target_type = "log-writes"

    def __init__(self, logged_entries: int, highest_allocated_sector: int,
                 logging_disabled: bool = False):
        self.logged_entries = logged_entries
        self.highest_allocated_sector = highest_allocated_sector
        self.logging_disabled = logging_disabled

    @classmethod
    def parse(cls, text):
        ws = words(text)
        if len(ws) not in (2, 3) or (len(ws) == 3 and ws[2] != "logging_disabled"):
            raise ParseError("log-writes status: unexpected %r" % text)
        return cls(to_int(ws[0], "log-writes logged entries"),
                   to_int(ws[1], "log-writes next sector"), len(ws) == 3)

    def format(self):
        return "%d %d%s" % (self.logged_entries, self.highest_allocated_sector,
                            " logging_disabled" if self.logging_disabled else "")

    def as_dict(self):
        return {"logged_entries": self.logged_entries,
                "highest_allocated_sector": self.highest_allocated_sector,
                "logging_enabled": not self.logging_disabled}
