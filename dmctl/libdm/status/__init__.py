"""Typed target status, and the named fields ``status --json`` / ``table --json`` show.

``parse_status(target_type, text)`` -> a :class:`TargetStatus` (LinearStatus,
StripedStatus, ZeroStatus, ErrorStatus, EraStatus, LogWritesStatus, MirrorStatus) or
None for a target type without a typed status.  Each has ``as_dict()``, which is what
``--json`` prints.

``parse(target_type, params, kind)`` -> that dict, or None when ``--json`` shows no
fields for the type (callers then show only the raw text).  ``kind`` is ``"status"``
(the INFO line, ``dmsetup status``, typed here) or ``"table"`` (``dmsetup table``,
typed by :mod:`dmctl.libdm.params`).  A line of a known target that does not have
the expected shape raises StatusParseError (:class:`dmctl.libdm.fields.ParseError`).

Formats: reference/targets.md §2.3 (era), §3.5 (log-writes), §4.3 and §5 (mirror and
its dirty logs); linear/zero/error/striped are the kernel's.
"""

from __future__ import annotations

from dmctl.libdm import params as _params
from dmctl.libdm.fields import ParseError
from dmctl.libdm.status.base import TargetStatus
from dmctl.libdm.status.basic import ErrorStatus, LinearStatus, ZeroStatus
from dmctl.libdm.status.era import EraStatus
from dmctl.libdm.status.log_writes import LogWritesStatus
from dmctl.libdm.status.mirror import MirrorLegStatus, MirrorLogStatus, MirrorStatus
from dmctl.libdm.status.striped import StripedStatus, StripeStatus

__all__ = ["TargetStatus", "LinearStatus", "StripedStatus", "StripeStatus", "ZeroStatus",
           "ErrorStatus", "EraStatus", "LogWritesStatus", "MirrorStatus",
           "MirrorLegStatus", "MirrorLogStatus", "parse_status", "status_class",
           "StatusParseError", "parse", "parse_or_none", "known_types"]

StatusParseError = ParseError

_TYPES = {c.target_type: c for c in (LinearStatus, StripedStatus, ZeroStatus, ErrorStatus,
                                     EraStatus, LogWritesStatus, MirrorStatus)}

# the types ``--json`` shows fields for (striped: its raw text only, as before)
_JSON_TYPES = ("linear", "zero", "error", "era", "log-writes", "mirror")


def status_class(target_type: str):
    """The TargetStatus subclass for ``target_type``, or None."""
    return _TYPES.get(target_type)


def parse_status(target_type: str, text: str) -> TargetStatus | None:
    """A target's status text -> typed status, or None for a type without one.
    ParseError if a known type's text does not have its shape."""
    cls = _TYPES.get(target_type)
    return None if cls is None else cls.parse(text)


def known_types():
    """Target types ``--json`` shows fields for."""
    return sorted(_JSON_TYPES)


def parse(target_type, params, kind="status"):
    """The ``fields`` of ``--json`` for one line (see the module's doc)."""
    if target_type not in _JSON_TYPES:
        return None
    if kind == "status":
        return _TYPES[target_type].parse(params).as_dict()
    return _params.parse_params(target_type, params).as_dict()


def parse_or_none(target_type, params, kind="status"):
    """Like parse() but a malformed line gives {"parse_error": msg}."""
    try:
        return parse(target_type, params, kind)
    except ParseError as e:
        return {"parse_error": str(e)}
