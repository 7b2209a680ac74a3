"""The words of a target's table or status text, and the base of the typed records
built from them (``dmctl.libdm.params``, ``dmctl.libdm.status``).

No dataclasses or typing at run time: annotations are strings
(``from __future__ import annotations``), so importing this costs nothing.
"""

from __future__ import annotations

from dmctl.errors import DmctlError


class ParseError(DmctlError, ValueError):
    """A target's table params or status text does not have the expected shape
    (wrong word count, a number that is not one, an unknown keyword)."""


_DIGITS = frozenset("0123456789")


def words(text: str) -> list:
    """Whitespace-separated words (the kernel's ``dm_split_args`` without escapes)."""
    return text.split()


def to_int(word: str, what: str) -> int:
    """A decimal integer word (an optional leading ``-``), or ParseError naming ``what``."""
    digits = word[1:] if word[:1] == "-" else word
    if not digits or not _DIGITS.issuperset(digits):
        raise ParseError("%s: expected a number, got %r" % (what, word))
    return int(word)


def is_uint(word: str) -> bool:
    """True for a non-negative decimal integer word (ASCII digits only)."""
    return bool(word) and _DIGITS.issuperset(word)


def to_uint(word: str, what: str) -> int:
    """A non-negative decimal integer word (C ``%u``/``%llu`` as the kernel prints it)."""
    if not is_uint(word):
        raise ParseError("%s: expected a number, got %r" % (what, word))
    return int(word)


def need(ws: list, n: int, what: str) -> None:
    """At least ``n`` words, or ParseError."""
    if len(ws) < n:
        raise ParseError("%s: expected %d words, got %d" % (what, n, len(ws)))


def split_devno(word: str):
    """``"254:3"`` -> ``(254, 3)``; a path (or anything else) -> None."""
    a, sep, b = word.partition(":")
    if sep and a and b and _DIGITS.issuperset(a) and _DIGITS.issuperset(b):
        return int(a), int(b)
    return None


def devno_dict(word: str) -> dict:
    """A device word as ``--json`` shows it: ``{"major", "minor", "device"}`` for
    ``maj:min``, ``{"device"}`` for a path."""
    d = split_devno(word)
    if d is not None:
        return {"major": d[0], "minor": d[1], "device": word}
    return {"device": word}


class Record:
    """Base of the typed records: fields are the ``__slots__``; equality compares the
    type and every field; ``repr`` shows them."""

    __slots__ = ()
    __hash__ = None

    def _fields(self):
        out = []
        for k in type(self).__mro__:
            for s in k.__dict__.get("__slots__", ()):
                if s not in out:
                    out.append(s)
        return out

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (k, getattr(self, k)) for k in self._fields()))

    def __eq__(self, other):
        if type(self) is not type(other):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self._fields())


class TargetText(Record):
    """Base of a target's typed text, table params (``dmctl.libdm.params``) or status
    (``dmctl.libdm.status``): ``parse(text)`` builds one, ``format()`` (and ``str()``)
    gives the kernel's text back, ``as_dict()`` is what ``--json`` shows as the line's
    ``fields``.  ``target_type`` names the target."""

    __slots__ = ()
    target_type = None
    kind = "text"           # "table" or "status": what error messages call it

    @classmethod
    def parse(cls, text: str) -> TargetText:
        """The text -> object; ParseError if the text does not have the shape."""
        raise NotImplementedError

    def format(self) -> str:
        """The text, as the kernel prints it."""
        raise NotImplementedError

    def __str__(self):
        return self.format()

    def as_dict(self) -> dict:
        """The fields ``--json`` prints for this line."""
        raise NotImplementedError


class NoFields:
    """Mixin for a TargetText without fields (zero's params, linear's status...)."""

    __slots__ = ()

    @classmethod
    def parse(cls, text):
        if words(text):
            raise ParseError("%s: %s has no fields, got %r" % (cls.target_type, cls.kind, text))
        return cls()

    def format(self):
        return ""

    def as_dict(self):
        return {}
