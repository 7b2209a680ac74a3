"""striped: INFO ``<#stripes> <dev>... 1 <A|D per stripe>`` (dm-stripe.c)."""

from __future__ import annotations

from dmctl.libdm.fields import ParseError, need, to_uint, words
from dmctl.libdm.status.base import DeviceHealth, TargetStatus


class StripeStatus(DeviceHealth):
    """One stripe's device and health: ``A`` alive, ``D`` an I/O error was seen."""

    __slots__ = ()

    @property
    def alive(self) -> bool:
        return self.health == "A"


class StripedStatus(TargetStatus):
    """striped's status: ``stripes``, a list of :class:`StripeStatus` in table order."""

    __slots__ = ("stripes",)
    target_type = "striped"

    def __init__(self, stripes: list):
        self.stripes = list(stripes)

    @classmethod
    def parse(cls, text):
        ws = words(text)
        need(ws, 1, "striped status")
        n = to_uint(ws[0], "striped stripe count")
        if len(ws) != n + 3 or ws[n + 1] != "1":
            raise ParseError("striped status: expected <n> <devs> 1 <health>, got %r" % text)
        health = ws[n + 2]
        if len(health) != n or not set(health) <= set("AD"):
            raise ParseError("striped status: %r is not one A or D per stripe" % health)
        return cls(StripeStatus(d, h) for d, h in zip(ws[1:1 + n], health))

    def format(self):
        return " ".join([str(len(self.stripes))] + [s.device for s in self.stripes]
                        + ["1", "".join(s.health for s in self.stripes)])

    def as_dict(self):
        return {"nr_stripes": len(self.stripes),
                "stripes": [s.as_dict() for s in self.stripes]}
