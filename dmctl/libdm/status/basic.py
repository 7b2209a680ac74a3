"""linear, zero and error: status lines are empty; linear's table is ``dev offset``."""

from dmctl.libdm.status import StatusParseError, devno, to_int, words


def parse_status(target_type, params):
    if params.strip():
        raise StatusParseError("%s: status has no fields, got %r" % (target_type, params))
    return {}


def parse_table(target_type, params):
    ws = words(params)
    if target_type != "linear":
        if ws:
            raise StatusParseError("%s: table has no fields, got %r" % (target_type, params))
        return {}
    if len(ws) != 2:
        raise StatusParseError("linear: expected <device> <offset>, got %r" % params)
    d = devno(ws[0], "linear device")
    d["offset"] = to_int(ws[1], "linear offset")
    return d
