"""dmsetup's query commands: help, version, targets, target-version, ls, info, deps,
status/table/measure, splitname (and the stats stub).

Each command is ``fn(ctx, args, entry, multiple) -> bool`` (dmctl.cli.commands).
Output formats are dmsetup 1.02.185's, byte for byte.  Heavy modules (the report
engine, json, the status parsers, the tree) are imported only when used.
"""

import os

from dmctl.errors import DmError

ENXIO = 6

# ls/deps name styles (dmsetup's _dev_name_type)
DN_DEVNO, DN_BLK, DN_MAP = 0, 1, 2


# ------------------------------------------------------------------ helpers

def _options_error(ctx, msg):
    """An -o error is fatal before any command runs in dmsetup."""
    ctx.err(msg)
    ctx.err("Couldn't process command line.")
    ctx.finish()
    raise SystemExit(1)


def process_options(ctx):
    """dmsetup's _process_options for the non-report, non-tree case: the ``-o``
    name style of ls/deps.  Returns DN_*; prints and exits on a bad word."""
    sw = ctx.sw
    if sw["tree"]:
        from dmctl.libdm import tree as T
        try:
            T.parse_options(sw.get("options") if sw["options"] else "")
        except T.TreeOptionError as e:
            _options_error(ctx, str(e))
        return DN_DEVNO
    if sw["columns"] or not sw["options"]:
        return DN_DEVNO
    from dmctl.libdm.tree import option_words
    kind = DN_DEVNO
    for w, rest in option_words(sw.get("options") or ""):
        if "devno".startswith(w):
            kind = DN_DEVNO
        elif "blkdevname".startswith(w):
            kind = DN_BLK
        elif "devname".startswith(w):
            kind = DN_MAP
        else:
            _options_error(ctx, "Option not recognised: %s." % rest)
    return kind


def _all_devices(ctx, fn, args):
    from dmctl.cli.common import process_all
    return process_all(ctx, fn, args, silent=ctx.json)


def _json_sink(ctx):
    """ctx.report doubles as the --json collector for per-device commands."""
    if ctx.report is None:
        ctx.report = _JsonSink()
    return ctx.report


class _JsonSink:
    is_json = True

    def __init__(self):
        self.items = []

    def flush(self, ctx):
        import json
        ctx.out(json.dumps(self.items, indent=2) + "\n")
        self.items = []


def _info_dict(ctx, info, read_ahead=None):
    d = {
        "name": ctx.display_name(info.name),
        "uuid": ctx.display_name(info.uuid) if info.uuid else "",
        "major": info.major,
        "minor": info.minor,
        "state": "SUSPENDED" if info.suspended else "ACTIVE",
        "suspended": info.suspended,
        "read_only": info.read_only,
        "deferred_remove": info.deferred_remove,
        "live_table": info.live_table,
        "inactive_table": info.inactive_table,
        "open_count": info.open_count,
        "event_nr": info.event_nr,
        "target_count": info.target_count,
    }
    if read_ahead is not None:
        d["read_ahead"] = read_ahead
    return d


# ------------------------------------------------------------------ help / version

def help(ctx, args, entry, multiple):
    from dmctl.cli.commands import usage_text
    ctx._stdout.flush()
    ctx._stderr.write(usage_text())
    ctx._stderr.flush()
    if ctx.sw["columns"]:
        from dmctl.cli import report_cli
        report_cli.print_field_help(ctx, "help")
    return True


def version(ctx, args, entry, multiple):
    from dmctl import LIBRARY_VERSION
    ctx.out("Library version:   %s\n" % LIBRARY_VERSION)
    from dmctl.cli.ctx import BackendUnavailable
    try:
        m = ctx.mapper()
        v = m.version()
    except BackendUnavailable:
        return False
    except DmError as e:
        ctx.ioctl_error(e, op="version")
        return False
    ctx.out("Driver version:    %d.%d.%d%s\n" % (tuple(v[:3]) + (
        " (simulated)" if m.simulated else "",)))
    # no column headings for 'version'
    if ctx.report is not None and not getattr(ctx.report, "is_json", False):
        ctx.report = None
    return True


def _version_line(tv):
    v = tuple(tv.version) + (0, 0, 0)
    return "%-16s v%d.%d.%d\n" % (tv.name, v[0], v[1], v[2])


def targets(ctx, args, entry, multiple):
    try:
        tvs = ctx.mapper().target_versions()
    except DmError as e:
        ctx.ioctl_error(e, op="versions")
        return False
    if ctx.json:
        import json
        ctx.out(json.dumps([{"name": t.name, "version": ".".join(str(x) for x in t.version)}
                            for t in tvs], indent=2) + "\n")
        return True
    ctx.out("".join(_version_line(t) for t in tvs))
    return True


def target_version(ctx, args, entry, multiple):
    name = args[0]
    try:
        tv = ctx.mapper().target_version(name)
    except DmError as e:
        ctx.ioctl_error(e.with_context(op="target-version", name=name))
        return False
    if ctx.json:
        _json_sink(ctx).items.append(
            {"name": tv.name, "version": ".".join(str(x) for x in tv.version)})
        return True
    ctx.out(_version_line(tv))
    return True


def stats(ctx, args, entry, multiple):
    ctx.err("dmctl does not implement 'stats' (use dmsetup stats / dmstats).")
    return False


# ------------------------------------------------------------------ info

def info(ctx, args, entry, multiple):
    sw = ctx.sw
    process_options(ctx)
    if entry is None and not args and not sw["uuid"] and not sw["major"]:
        if ctx.json and not sw["columns"]:
            _json_sink(ctx)
        return _all_devices(ctx, info, args)
    dev = ctx.dev_from_args(args, entry)
    if dev is None:
        return False
    m = ctx.mapper()
    try:
        i = m.info(dev, inactive=bool(sw["inactive"]))
    except DmError as e:
        if e.errno == ENXIO:
            ctx.err("Device does not exist.")
            return False
        ctx.ioctl_error(e.with_context(op="info", name=dev.name, uuid=dev.uuid,
                                       major=dev.major, minor=dev.minor))
        return False
    return _display_info(ctx, i)


def _display_info(ctx, i, verbose=False):
    # (-S forces report mode; the selected command's -v must not re-enter it)
    if ctx.sw["columns"] and not (verbose and ctx.selection_cmd is not None):
        from dmctl.cli import report_cli
        return report_cli.add_device(ctx, i)
    if ctx.json:
        ra = ctx.mapper().read_ahead(i)
        _json_sink(ctx).items.append(_info_dict(ctx, i, ra))
        return True
    from dmctl.cli.common import display_info_long
    display_info_long(ctx, i)
    return True


# ------------------------------------------------------------------ deps

def deps(ctx, args, entry, multiple):
    sw = ctx.sw
    dn = process_options(ctx)
    if entry is None and not args and not sw["uuid"] and not sw["major"]:
        if ctx.json:
            _json_sink(ctx)
        return _all_devices(ctx, deps, args)
    dev = ctx.dev_from_args(args, entry)
    if dev is None:
        return False
    try:
        i, dl = ctx.mapper().deps(dev, inactive=bool(sw["inactive"]))
    except DmError as e:
        # DM_TABLE_DEPS is not among the ioctls whose ENXIO libdm turns into
        # "Device does not exist."
        ctx.ioctl_error(e.with_context(op="deps", name=dev.name, uuid=dev.uuid,
                                       major=dev.major, minor=dev.minor))
        return False
    name = ctx.display_name(entry.name if entry is not None else (dev.name or i.name))
    if ctx.json:
        items = []
        for maj, mnr in dl:
            d = {"major": maj, "minor": mnr}
            n = ctx.device_name(maj, mnr, False)
            if n is not None:
                d["name"] = n
            b = ctx.device_name(maj, mnr, True)
            if b is not None:
                d["blkdevname"] = b
            items.append(d)
        _json_sink(ctx).items.append({"name": name, "deps": items})
        return True
    if sw["verbose"]:
        _display_info(ctx, i, True)
    parts = []
    if multiple and not sw["verbose"]:
        parts.append("%s: " % name)
    parts.append("%d dependencies\t:" % len(dl))
    for maj, mnr in dl:
        n = None
        if dn in (DN_BLK, DN_MAP):
            n = ctx.device_name(maj, mnr, dn == DN_BLK)
        if n is not None:
            parts.append(" (%s)" % n)
        else:
            parts.append(" (%d, %d)" % (maj, mnr))
    parts.append("\n")
    if multiple and sw["verbose"]:
        parts.append("\n")
    ctx.out("".join(parts))
    return True


# ------------------------------------------------------------------ status/table/measure

def _hide_key(params, key):
    i = params.find(key)
    if i < 0:
        return params
    i += len(key)
    j = i
    while j < len(params) and params[j] not in " :":
        j += 1
    if j >= len(params) or params[j] != ":":
        return params
    j += 1
    k = j
    while k < len(params) and params[k] != " ":
        k += 1
    return params[:j] + "0" * (k - j) + params[k:]


def hide_keys(target_type, params):
    """dmsetup table without --showkeys: zero crypt/integrity keys."""
    if target_type == "crypt":
        i = params.find(" ")
        if i < 0:
            return params
        j = i + 1
        if j < len(params) and params[j] == ":":
            return params
        k = j
        while k < len(params) and params[k] != " ":
            k += 1
        return params[:j] + "0" * (k - j) + params[k:]
    if target_type == "integrity":
        for key in ("internal_hash:", "journal_crypt:", "journal_mac:"):
            params = _hide_key(params, key)
    return params


def _quote_concise(s):
    from dmctl.libdm.table import quote_concise
    return quote_concise(s)


def status(ctx, args, entry, multiple, ls_only=False):
    sw = ctx.sw
    process_options(ctx)
    cmd = "ls" if ls_only else (ctx.command or "status")
    if entry is None and not args and not sw["uuid"] and not sw["major"]:
        if ctx.json and not ls_only:
            _json_sink(ctx)
        if ls_only:
            return _all_devices(ctx, lambda c, a, e, mu: status(c, a, e, mu, True), args)
        return _all_devices(ctx, status, args)
    dev = ctx.dev_from_args(args, entry)
    if dev is None:
        return False
    is_table = cmd == "table"
    concise = is_table and bool(sw["concise"])
    m = ctx.mapper()
    inactive = bool(sw["inactive"])
    try:
        if is_table:
            i, lines = m.table(dev, inactive=inactive)
        elif cmd == "measure":
            i, lines = m.measure(dev, inactive=inactive)
        else:
            i, lines = m.status(dev, inactive=inactive, noflush=bool(sw["noflush"]))
    except DmError as e:
        if e.errno == ENXIO and not is_table:
            ctx.err("Device does not exist.")
            return False
        ctx.ioctl_error(e.with_context(op="table" if is_table else "status", name=dev.name,
                                       uuid=dev.uuid, major=dev.major, minor=dev.minor))
        return False
    name = ctx.display_name(entry.name if entry is not None else (dev.name or i.name))
    target = sw.get("target") if sw["target"] else None
    exec_cmd = sw.get("exec") if sw["exec"] else None
    verbose = sw["verbose"]
    show = not exec_cmd or verbose

    if ctx.json and not ls_only:
        return _status_json(ctx, i, name, lines, target, is_table, cmd)

    out = []
    matched = False
    # dm_get_next_target yields one (empty) entry for a device without a table
    seq = lines if lines else [None]
    for tl in seq:
        ttype = tl.target_type if tl is not None else None
        if target is not None and ttype != target:
            continue
        if ls_only:
            if show:
                out.append("%s\t(%u, %u)\n" % (name, i.major, i.minor))
            matched = True
            break
        if show:
            if not concise:
                if not matched and verbose:
                    ctx.out("".join(out))
                    out = []
                    _display_info(ctx, i, True)
                if multiple and not verbose:
                    out.append("%s: " % name)
            elif not matched:
                if ctx.concise_output_produced:
                    out.append(";")
                ctx.concise_output_produced = True
                out.append("%s,%s,%u,%s" % (_quote_concise(name),
                                            _quote_concise(ctx.display_name(i.uuid) if i.uuid else ""),
                                            i.minor, "ro" if i.read_only else "rw"))
            if tl is not None:
                params = tl.params
                if is_table and not sw["showkeys"]:
                    params = hide_keys(ttype, params)
                if concise:
                    out.append(",")
                out.append("%d %d %s " % (tl.start, tl.length, ttype))
                out.append(_quote_concise(params) if concise else params)
            if not concise:
                out.append("\n")
        matched = True
    if multiple and verbose and matched and not ls_only and (not concise or verbose > 1):
        out.append("\n")
    ctx.out("".join(out))
    if matched and exec_cmd:
        if not _exec_command(ctx, exec_cmd, name):
            return False
    return True


def _status_json(ctx, i, name, lines, target, is_table, cmd):
    from dmctl.libdm import status as S
    items = []
    for tl in lines:
        if target is not None and tl.target_type != target:
            continue
        params = tl.params
        if is_table and not ctx.sw["showkeys"]:
            params = hide_keys(tl.target_type, params)
        d = {"start": tl.start, "length": tl.length, "target_type": tl.target_type,
             "params": params}
        if cmd != "measure":
            parsed = S.parse_or_none(tl.target_type, params, "table" if is_table else "status")
            if parsed is not None:
                d["fields"] = parsed
        items.append(d)
    if target is not None and not items:
        return True
    _json_sink(ctx).items.append({"name": name, "targets": items})
    return True


def _exec_command(ctx, command, name):
    """ls --exec: run COMMAND ... /dev/mapper/NAME (exit status ignored)."""
    argv = command.split()
    if not argv:
        return False
    if len(argv) >= 255:
        ctx.err("Too many args to --exec.")
        return False
    import subprocess
    path = os.path.join(ctx.dev_dir + "mapper", name)
    ctx._stdout.flush()
    try:
        subprocess.call(argv + [path])
    except OSError:
        pass
    return True


# ------------------------------------------------------------------ ls

def ls(ctx, args, entry, multiple):
    sw = ctx.sw
    if (sw["target"] and sw.get("target")) or (sw["exec"] and sw.get("exec")):
        if ctx.json:
            return _ls_json(ctx)
        return status(ctx, [], None, 0, ls_only=True)
    if sw["tree"]:
        return _display_tree(ctx)
    dn = process_options(ctx)
    if ctx.json:
        return _ls_json(ctx)
    try:
        entries = ctx.mapper().list_devices()
    except DmError as e:
        ctx.ioctl_error(e, op="names")
        return False
    if not entries:
        ctx.out("No devices found\n")
        return True
    out = []
    for e in entries:
        n = None
        if dn in (DN_BLK, DN_MAP):
            n = ctx.device_name(e.major, e.minor, dn == DN_BLK)
        nm = ctx.display_name(e.name)
        if n is not None:
            out.append("%s\t(%s)\n" % (nm, n))
        else:
            out.append("%s\t(%d:%d)\n" % (nm, e.major, e.minor))
    ctx.out("".join(out))
    return True


def _ls_json(ctx):
    import json
    m = ctx.mapper()
    try:
        entries = m.list_devices(uuid=True)
    except DmError as e:
        ctx.ioctl_error(e, op="names")
        return False
    target = ctx.sw.get("target") if ctx.sw["target"] else None
    items = []
    for e in entries:
        if target is not None:
            try:
                _i, lines = m.table(e.name)
            except DmError:
                continue
            if not any(tl.target_type == target for tl in lines):
                continue
        d = {"name": ctx.display_name(e.name), "major": e.major, "minor": e.minor}
        if e.uuid is not None:
            d["uuid"] = ctx.display_name(e.uuid) if e.uuid else ""
        d["blkdevname"] = "dm-%d" % e.minor
        items.append(d)
    ctx.out(json.dumps(items, indent=2) + "\n")
    return True


def _utf8_locale():
    """nl_langinfo(CODESET) == "UTF-8" after setlocale(LC_ALL, ""), from the
    environment (Python's own locale may be coerced to C.UTF-8, PEP 538: it then
    sets LC_CTYPE=C.UTF-8 although the user's locale is C)."""
    env = os.environ
    if (not env.get("LC_ALL") and env.get("LC_CTYPE") == "C.UTF-8"
            and env.get("LANG", "C") in ("", "C", "POSIX")):
        return False
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        v = os.environ.get(var)
        if v:
            v = v.lower()
            return "utf-8" in v or "utf8" in v
    return False


def _termwidth(opts):
    from dmctl.libdm import tree as T
    if opts.symbols is T.VT100:
        return 80
    try:
        cols = os.get_terminal_size(1).columns
    except OSError:
        return 80
    return cols - 3 if cols > 3 else 80


def _display_tree(ctx):
    from dmctl.libdm import tree as T
    try:
        opts = T.parse_options(ctx.sw.get("options") if ctx.sw["options"] else "",
                               utf_default=_utf8_locale())
    except T.TreeOptionError as e:
        _options_error(ctx, str(e))
    try:
        tree, any_dev = T.build(ctx.mapper(), ctx.display_name)
    except DmError as e:
        ctx.ioctl_error(e, op="names")
        return False
    if not any_dev:
        ctx.out("No devices found\n")
        return True
    if ctx.json:
        import json
        ctx.out(json.dumps(_tree_json(tree.root, opts.inverted, set()), indent=2) + "\n")
        return True
    data = T.render(tree, opts, _termwidth(opts),
                    lambda maj, mnr: ctx.device_name(maj, mnr, True))
    buf = getattr(ctx._stdout, "buffer", None)
    if buf is not None:
        ctx._stdout.flush()
        buf.write(data)
        buf.flush()
    else:
        ctx.out(data.decode("utf-8", "surrogateescape"))
    return True


def _tree_json(node, inverted, seen):
    out = []
    for c in node.children(inverted):
        if c is node.tree.root:
            continue
        d = {"name": c.name, "major": c.major, "minor": c.minor}
        if c.uuid:
            d["uuid"] = c.uuid
        if c.num_children(inverted):
            d["children"] = _tree_json(c, inverted, seen)
        out.append(d)
    return out


# ------------------------------------------------------------------ splitname

def splitname(ctx, args, entry, multiple):
    from dmctl.libdm import names
    from dmctl.cli import report_cli
    if ctx.report is None:
        if not report_cli.report_init(ctx, "splitname"):
            return False
    subsystem = args[1] if len(args) == 2 else "LVM"
    return report_cli.add_split(ctx, names.split_name(subsystem, args[0], ""))
