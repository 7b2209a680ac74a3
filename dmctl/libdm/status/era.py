"""era: INFO ``<metadata block size> <used>/<total> <current era> <snap block|->``, or
``Error`` when the worker could not answer (reference/targets.md §2.3)."""

from __future__ import annotations

from dmctl.libdm.fields import ParseError, to_int, words
from dmctl.libdm.status.base import TargetStatus


class EraStatus(TargetStatus):
    """era's status: ``metadata_block_size`` (sectors, 8), ``metadata_used_blocks`` /
    ``metadata_total_blocks`` (4 KiB metadata blocks), ``current_era``, and
    ``metadata_snap`` (the metadata snapshot's block, None without one).

    ``error`` is True (and the other fields None) when the kernel printed ``Error``."""

    __slots__ = ("metadata_block_size", "metadata_used_blocks", "metadata_total_blocks",
                 "current_era", "metadata_snap", "error")
    target_type = "era"

    def __init__(self, metadata_block_size: int | None = None,
                 metadata_used_blocks: int | None = None,
                 metadata_total_blocks: int | None = None,
                 current_era: int | None = None, metadata_snap: int | None = None,
                 error: bool = False):
        self.metadata_block_size = metadata_block_size
        self.metadata_used_blocks = metadata_used_blocks
        self.metadata_total_blocks = metadata_total_blocks
        self.current_era = current_era
        self.metadata_snap = metadata_snap
        self.error = error

    @classmethod
    def parse(cls, text):
        ws = words(text)
        if ws == ["Error"]:
            return cls(error=True)
        if len(ws) != 4:
            raise ParseError("era status: expected 4 words, got %d" % len(ws))
        used, sep, total = ws[1].partition("/")
        if not sep:
            raise ParseError("era status: expected <used>/<total>, got %r" % ws[1])
        snap = ws[3]
        return cls(to_int(ws[0], "era metadata block size"),
                   to_int(used, "era used metadata blocks"),
                   to_int(total, "era total metadata blocks"),
                   to_int(ws[2], "era current era"),
                   None if snap == "-" else to_int(snap, "era metadata snap"))

    def format(self):
        if self.error:
            return "Error"
        return "%d %d/%d %d %s" % (
            self.metadata_block_size, self.metadata_used_blocks, self.metadata_total_blocks,
            self.current_era, "-" if self.metadata_snap is None else self.metadata_snap)

    def as_dict(self):
        if self.error:
            return {"error": True}
        return {"metadata_block_size": self.metadata_block_size,
                "metadata_used_blocks": self.metadata_used_blocks,
                "metadata_total_blocks": self.metadata_total_blocks,
                "current_era": self.current_era,
                "metadata_snap": self.metadata_snap}
