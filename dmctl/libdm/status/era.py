"""era: INFO ``<meta block size> <used>/<total> <current era> <snap block|->`` (or
``Error``); TABLE ``<metadata dev> <origin dev> <block size>``."""

from dmctl.libdm.status import StatusParseError, devno, need, to_int, words


def parse_status(target_type, params):
    ws = words(params)
    if ws == ["Error"]:
        return {"error": True}
    need(ws, 4, "era status")
    if len(ws) != 4:
        raise StatusParseError("era status: expected 4 words, got %d" % len(ws))
    used, sep, total = ws[1].partition("/")
    if not sep:
        raise StatusParseError("era status: expected <used>/<total>, got %r" % ws[1])
    snap = ws[3]
    return {
        "metadata_block_size": to_int(ws[0], "era metadata block size"),
        "metadata_used_blocks": to_int(used, "era used metadata blocks"),
        "metadata_total_blocks": to_int(total, "era total metadata blocks"),
        "current_era": to_int(ws[2], "era current era"),
        "metadata_snap": None if snap == "-" else to_int(snap, "era metadata snap"),
    }


def parse_table(target_type, params):
    ws = words(params)
    if len(ws) != 3:
        raise StatusParseError("era table: expected 3 words, got %d" % len(ws))
    return {
        "metadata_dev": devno(ws[0], "era metadata device"),
        "origin_dev": devno(ws[1], "era origin device"),
        "block_size": to_int(ws[2], "era block size"),
    }
