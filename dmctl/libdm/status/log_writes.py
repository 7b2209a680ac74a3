"""log-writes: INFO ``<logged entries> <highest allocated sector>[ logging_disabled]``;
TABLE ``<dev> <log dev>``."""

from dmctl.libdm.status import StatusParseError, devno, to_int, words


def parse_status(target_type, params):
    ws = words(params)
    if len(ws) not in (2, 3) or (len(ws) == 3 and ws[2] != "logging_disabled"):
        raise StatusParseError("log-writes status: unexpected %r" % params)
    return {
        "logged_entries": to_int(ws[0], "log-writes logged entries"),
        "highest_allocated_sector": to_int(ws[1], "log-writes next sector"),
        "logging_enabled": len(ws) == 2,
    }


def parse_table(target_type, params):
    ws = words(params)
    if len(ws) != 2:
        raise StatusParseError("log-writes table: expected 2 words, got %d" % len(ws))
    return {"dev": devno(ws[0], "log-writes device"),
            "log_dev": devno(ws[1], "log-writes log device")}
