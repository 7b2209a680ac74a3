"""linear, zero and error: their INFO status is empty."""

from dmctl.libdm.fields import NoFields
from dmctl.libdm.status.base import TargetStatus


class LinearStatus(NoFields, TargetStatus):
    """``linear``'s status: no fields."""
    __slots__ = ()
    target_type = "linear"


class ZeroStatus(NoFields, TargetStatus):
    """``zero``'s status: no fields."""
    __slots__ = ()
    target_type = "zero"


class ErrorStatus(NoFields, TargetStatus):
    """The ``error`` target's status: no fields."""
    __slots__ = ()
    target_type = "error"
