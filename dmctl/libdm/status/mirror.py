"""mirror (dm-raid1) with core, disk and userspace dirty logs.

INFO: ``<n> <dev>... <in sync>/<regions> 1 <health chars> <log argc> <log args>``
(a leading ``userspace`` word, as in ``userspace 1 COM_FAILURE``, is skipped the
way libdevmapper's dm_get_status_mirror does).
TABLE: ``<log type> <log argc> <log args> <n> (<dev> <offset>)... [<f> features]``.
"""

from dmctl.libdm.status import StatusParseError, devno, need, to_int, words

HEALTH = {"A": "alive", "F": "flush_error", "D": "write_error", "S": "sync_error",
          "R": "read_error", "U": "unknown_error"}


def _log_status(ws):
    """``<argc> <type> [<dev> <health>]`` of the dirty log's INFO status."""
    need(ws, 1, "mirror log status")
    argc = to_int(ws[0], "mirror log argc")
    args = ws[1:1 + argc]
    if len(args) != argc:
        raise StatusParseError("mirror log status: %d args announced, %d present"
                               % (argc, len(args)))
    log = {"type": args[0] if args else None, "args": args}
    if len(args) >= 3 and args[0] in ("disk", "clustered-disk"):
        log["device"] = devno(args[1], "mirror log device")
        log["health"] = args[2]
        log["health_name"] = HEALTH.get(args[2], "unknown")
    elif len(args) == 2 and args[0] == "COM_FAILURE":
        log["type"] = "userspace"
    return log, ws[1 + argc:]


def parse_status(target_type, params):
    ws = words(params)
    if ws and ws[0] == "userspace":
        ws = ws[1:]
    need(ws, 1, "mirror status")
    n = to_int(ws[0], "mirror leg count")
    need(ws, n + 4, "mirror status")
    legs = [devno(w, "mirror leg") for w in ws[1:1 + n]]
    sync, sep, regions = ws[1 + n].partition("/")
    if not sep:
        raise StatusParseError("mirror status: expected <in sync>/<regions>, got %r"
                               % ws[1 + n])
    nhealth = to_int(ws[2 + n], "mirror health word count")
    health = ws[3 + n] if nhealth >= 1 else ""
    if len(health) != n:
        raise StatusParseError("mirror status: %d health chars for %d legs" % (len(health), n))
    for leg, ch in zip(legs, health):
        leg["health"] = ch
        leg["health_name"] = HEALTH.get(ch, "unknown")
    rest = ws[3 + n + (1 if nhealth >= 1 else 0) + max(nhealth - 1, 0):]
    log, rest = _log_status(rest)
    if rest:
        raise StatusParseError("mirror status: trailing words %r" % rest)
    sync_i = to_int(sync, "mirror in-sync regions")
    reg_i = to_int(regions, "mirror regions")
    return {
        "nr_mirrors": n,
        "legs": legs,
        "in_sync_regions": sync_i,
        "total_regions": reg_i,
        "in_sync": sync_i == reg_i,
        "log": log,
    }


def parse_table(target_type, params):
    ws = words(params)
    need(ws, 2, "mirror table")
    log_type = ws[0]
    argc = to_int(ws[1], "mirror log argc")
    largs = ws[2:2 + argc]
    if len(largs) != argc:
        raise StatusParseError("mirror table: log args truncated")
    log = {"type": log_type, "args": largs}
    a = list(largs)
    if log_type == "disk" and a:
        log["device"] = devno(a.pop(0), "mirror log device")
    elif log_type == "userspace" and len(a) >= 2:
        log["uuid"] = a.pop(0)
        log["userspace_type"] = a.pop(0)
        if log["userspace_type"] == "clustered-disk" and a:
            log["device"] = devno(a.pop(0), "mirror log device")
    if a:
        log["region_size"] = to_int(a[0], "mirror region size")
        if len(a) > 1:
            log["sync"] = a[1]
    rest = ws[2 + argc:]
    need(rest, 1, "mirror table")
    n = to_int(rest[0], "mirror leg count")
    need(rest, 1 + 2 * n, "mirror table")
    legs = []
    for i in range(n):
        d = devno(rest[1 + 2 * i], "mirror leg")
        d["offset"] = to_int(rest[2 + 2 * i], "mirror leg offset")
        legs.append(d)
    feats = rest[1 + 2 * n:]
    features = []
    if feats:
        nf = to_int(feats[0], "mirror feature count")
        features = feats[1:1 + nf]
        if len(features) != nf or len(feats) != nf + 1:
            raise StatusParseError("mirror table: feature count mismatch")
    return {"log": log, "nr_mirrors": n, "legs": legs, "features": features,
            "handle_errors": "handle_errors" in features, "keep_log": "keep_log" in features}
