"""Target status and table lines parsed into named fields (for ``--json``).

``parse(target_type, params, kind)`` -> dict, or None when the target type is not
known here (callers then show only the raw text).  ``kind`` is ``"status"`` (the
INFO line, ``dmsetup status``) or ``"table"`` (``dmsetup table``).  A line of a
known target that does not have the expected shape raises StatusParseError.

Formats: reference/targets.md §2.3 (era), §3.5 (log-writes), §4.3 and §5 (mirror and
its dirty logs); linear/zero/error are the kernel's.
"""


class StatusParseError(ValueError):
    pass


def _registry():
    from dmctl.libdm.status import basic, era, log_writes, mirror
    return {
        "linear": basic,
        "zero": basic,
        "error": basic,
        "era": era,
        "log-writes": log_writes,
        "mirror": mirror,
    }


def known_types():
    return sorted(_registry())


def parse(target_type, params, kind="status"):
    mod = _registry().get(target_type)
    if mod is None:
        return None
    fn = mod.parse_status if kind == "status" else mod.parse_table
    return fn(target_type, params)


def parse_or_none(target_type, params, kind="status"):
    """Like parse() but a malformed line gives {"parse_error": msg}."""
    try:
        return parse(target_type, params, kind)
    except StatusParseError as e:
        return {"parse_error": str(e)}


def words(params):
    return params.split()


def to_int(word, what):
    try:
        if not word or not (word.isdigit() or (word[0] == "-" and word[1:].isdigit())):
            raise ValueError(word)
        return int(word)
    except ValueError:
        raise StatusParseError("%s: expected a number, got %r" % (what, word))


def need(ws, n, what):
    if len(ws) < n:
        raise StatusParseError("%s: expected %d words, got %d" % (what, n, len(ws)))


def devno(word, what):
    """``maj:min`` -> {"major", "minor"}; anything else is kept as ``path``."""
    a, sep, b = word.partition(":")
    if sep and a.isdigit() and b.isdigit():
        return {"major": int(a), "minor": int(b), "device": word}
    return {"device": word}
