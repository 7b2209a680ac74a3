"""Bios: the unit of I/O travelling down a stack of simulated devices.

Modelled on the kernel's struct bio, reduced to what the targets need: an operation,
a start sector and length (512-byte sectors), flags (PREFLUSH, FUA, META), a data
buffer, an error, and a completion callback.  Submission and completion are separate
events: ``submit_bio`` hands a bio to a device, ``bio_endio`` completes it later (at
once for ordinary I/O, or when a script says so).
"""

# map() and end_io() results (include/linux/device-mapper.h)
from dmctl.constants import (  # noqa: F401
    DM_ENDIO_DONE, DM_ENDIO_INCOMPLETE, DM_ENDIO_REQUEUE, DM_MAPIO_DELAY_REQUEUE,
    DM_MAPIO_KILL, DM_MAPIO_REMAPPED, DM_MAPIO_REQUEUE, DM_MAPIO_SUBMITTED)

READ = 0
WRITE = 1
DISCARD = 3

# flags
PREFLUSH = 1
FUA = 2
META = 4

OP_NAMES = {READ: "read", WRITE: "write", DISCARD: "discard"}


class Bio:
    __slots__ = ("op", "sector", "nr_sectors", "flags", "data", "error", "end_io",
                 "private", "parent", "remaining", "dev", "root", "target", "done",
                 "per_io", "target_bio_nr")

    def __init__(self, op, sector, nr_sectors, data=None, flags=0, end_io=None,
                 private=None):
        self.op = op
        self.sector = sector
        self.nr_sectors = nr_sectors
        self.flags = flags
        self.data = data
        self.error = 0
        self.end_io = end_io
        self.private = private
        self.parent = None
        self.remaining = 1
        self.dev = None
        self.root = None
        self.target = None
        self.done = False
        self.per_io = None
        self.target_bio_nr = 0

    @property
    def is_write(self):
        return self.op != READ

    @property
    def is_flush(self):
        return bool(self.flags & PREFLUSH)

    @property
    def is_empty_flush(self):
        return self.nr_sectors == 0 and bool(self.flags & PREFLUSH)

    @property
    def nbytes(self):
        return self.nr_sectors << 9

    def clone(self, sector=None, nr_sectors=None, data=None):
        c = Bio(self.op, self.sector if sector is None else sector,
                self.nr_sectors if nr_sectors is None else nr_sectors,
                self.data if data is None else data, self.flags)
        c.root = self.root if self.root is not None else self
        return c

    def __repr__(self):
        return "Bio(%s %d+%d flags=%d err=%d)" % (OP_NAMES.get(self.op, self.op), self.sector,
                                                  self.nr_sectors, self.flags, self.error)


def bio_endio(bio, error=0):
    """Complete a bio: record the error and run its completion callback once."""
    if error and not bio.error:
        bio.error = error
    if bio.done:
        return
    bio.done = True
    cb = bio.end_io
    if cb is not None:
        cb(bio)


class RootBio(Bio):
    """A bio submitted by a user (``dmctl io``): may hold its leaf completions back
    until the user completes it (``submit ID`` / ``complete ID``)."""
    __slots__ = ("hold", "held", "ident")

    def __init__(self, *a, **kw):
        Bio.__init__(self, *a, **kw)
        self.hold = False
        self.held = []
        self.ident = None
