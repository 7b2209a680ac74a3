"""The bases of the typed status classes (``dmctl.libdm.status``)."""

from __future__ import annotations

from dmctl.libdm.fields import Record, TargetText, devno_dict


class TargetStatus(TargetText):
    """A target's INFO status line (``dmsetup status``), parsed.

    ``parse(text)`` builds one from the status text of one target line; ``format()``
    (and ``str()``) gives the kernel's text back; ``as_dict()`` is what
    ``dmctl status --json`` shows as the line's ``fields``.  Fields are named as in
    the kernel's documentation of the target."""

    __slots__ = ()
    kind = "status"


class DeviceHealth(Record):
    """A device of a target's status and its health character (``A``: alive)."""

    __slots__ = ("device", "health")

    def __init__(self, device: str, health: str = "A"):
        self.device = device
        self.health = health

    def as_dict(self) -> dict:
        d = devno_dict(self.device)
        d["health"] = self.health
        return d
