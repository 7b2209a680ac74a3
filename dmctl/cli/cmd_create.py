"""dmsetup's ``create`` (also ``--concise``) and ``load``/``reload``.

Follows dmsetup 1.02.185 (``_create``, ``_create_one_device``, ``_create_concise``,
``_load``, ``_parse_file``): the arguments and the table become a
dmctl.libdm.task.Task that the library runs -- with a table, libdm's
``_create_and_load_v4`` (create -> load by major:minor -> resume, the device removed
again on a failed load or resume, so bad input leaves nothing behind); without one
(``--notable``, empty stdin, only comments) only the create ioctl.
"""

import os
import sys

from dmctl.constants import DM_UUID_LEN


# ------------------------------------------------------------------------ table input

def _decode(b):
    return b.decode("utf-8", "surrogateescape")


def read_table(ctx, file, table_text=None):
    """``_parse_file``: the table from ``--table``, a file, or stdin -> [TargetLine],
    or None (error printed)."""
    from dmctl.libdm import table
    try:
        if table_text is not None:
            return table.parse_table(table_text, "")
        if file is not None:
            if os.path.isdir(file):
                # fopen() of a directory succeeds and reading it fails at once:
                # dmsetup sees an empty table.
                if not os.access(file, os.R_OK):
                    ctx.err("Couldn't open '%s' for reading." % file)
                    return None
                return []
            try:
                with open(file, "rb") as f:
                    data = f.read()
            except OSError:
                ctx.err("Couldn't open '%s' for reading." % file)
                return None
            return table.parse_table(_decode(data), file)
        return table.parse_table(_read_stdin(), "on stdin")
    except table.TableError as e:
        for line in e.lines:
            ctx.err(line)
        return None


def _read_stdin():
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        if sys.stdin is None:
            return ""
        return sys.stdin.read()
    try:
        return _decode(stream.read())
    except OSError:
        return ""


def _slurp_stdin(ctx):
    """``_slurp_stdin`` for ``create --concise`` without an argument."""
    stream = getattr(sys.stdin, "buffer", None)
    try:
        if stream is None:
            return "" if sys.stdin is None else sys.stdin.read()
        return _decode(stream.read())
    except OSError as e:
        ctx.err("Read from stdin aborted: %s" % os.strerror(e.errno or 5))
        return None


# ------------------------------------------------------------------------ create

def create(ctx, args, entry, multiple):
    sw = ctx.sw
    if sw["concise"]:
        if len(args) > 1:
            ctx.err("dmsetup create --concise takes at most one argument")
            return False
        return _create_concise(ctx, args)
    if not args:
        ctx.err("Please provide a name for the new device.")
        return False
    name = args[0]
    file = args[1] if len(args) == 2 else None
    uuid = sw.get("uuid") if sw["uuid"] else None
    minor = sw.get("minor") if sw["minor"] else -1
    major = sw.get("major") if sw["major"] else -1
    table_text = sw.get("table") if sw["table"] else None
    return create_one_device(ctx, name, file, uuid=uuid, major=major, minor=minor,
                             read_only=bool(sw["readonly"]), table_text=table_text,
                             major_set=bool(sw["major"]))


def create_one_device(ctx, name, file, uuid=None, major=-1, minor=-1, read_only=False,
                      table_text=None, major_set=False):
    """``_create_one_device``: name and uuid checks, the table, then libdm's create
    (-> load -> resume, reverted on failure)."""
    from dmctl.cli import cmd_lifecycle as lc
    sw = ctx.sw
    kname = lc.set_name(ctx, name, creating=True)
    if kname is None:
        return False
    kuuid = None
    if uuid is not None:
        kuuid = lc.set_uuid(ctx, uuid)
        if kuuid is None:
            return False
        # The kernel keeps at most DM_UUID_LEN - 1 bytes.
        b = kuuid.encode("utf-8", "surrogateescape")
        if len(b) >= DM_UUID_LEN:
            kuuid = b[:DM_UUID_LEN - 1].decode("utf-8", "surrogateescape")
    lines = []
    if not sw["notable"]:
        lines = read_table(ctx, file, table_text)
        if lines is None:
            return False
    # The dmt: the user's major/minor (dm_task_set_major clears the fallback).
    dmt = lc.Task("create", name=kname, uuid=kuuid, major=major, minor=minor,
                  fallback=not major_set)
    dmt.read_only = read_only
    dmt.table = lines
    dmt.noflush = bool(sw["noflush"])
    dmt.nolockfs = bool(sw["nolockfs"])
    if sw["readahead"]:
        dmt.read_ahead = sw.get("readahead")
    r = lc.run(ctx, dmt)
    if r and sw["verbose"]:
        r = lc.display_info(ctx, dmt.info)
    return r


def _create_concise(ctx, args):
    """``_create_concise``: devices are created one by one as their entries are
    parsed; the first error stops (devices already created stay)."""
    from dmctl.libdm import table
    sw = ctx.sw
    if sw["table"] or sw["minor"] or sw["uuid"] or sw["notable"] or sw["inactive"]:
        ctx.err("--concise is incompatible with --[no]table, --minor, --uuid and "
                "--inactive.")
        return False
    if args:
        spec = args[0]
    else:
        spec = _slurp_stdin(ctx)
        if spec is None:
            return False
    read_only = bool(sw["readonly"])
    try:
        for dev in table.parse_concise(spec):
            ok = create_one_device(
                ctx, dev.name, None, uuid=dev.uuid,
                minor=dev.minor if dev.minor is not None else -1,
                read_only=read_only or dev.read_only, table_text=dev.table)
            if not ok:
                return False
            # dmsetup clears -r (with uuid and minor) after the first device.
            read_only = False
    except table.TableError as e:
        for line in e.lines:
            ctx.err(line)
        return False
    return True


# ------------------------------------------------------------------------ load

def load(ctx, args, entry, multiple):
    """``load``/``reload``: DM_TABLE_LOAD into the inactive slot."""
    from dmctl.cli import cmd_lifecycle as lc
    sw = ctx.sw
    if sw["notable"]:
        ctx.err("--notable only available when creating new device.")
        return False
    name = None
    if not sw["uuid"] and not sw["major"]:
        if not args:
            ctx.err("Please specify device.")
            return False
        name = args[0]
        args = args[1:]
    elif len(args) > 1:
        ctx.err("Too many command line arguments.")
        return False
    file = args[0] if len(args) == 1 else None
    t = lc.set_task_device(ctx, name)
    if t is None:
        return False
    lines = read_table(ctx, file, sw.get("table") if sw["table"] else None)
    if lines is None:
        return False
    t.table = lines
    t.read_only = bool(sw["readonly"])
    if not lc.run(ctx, t, "reload"):
        return False
    if sw["verbose"]:
        return lc.display_info(ctx, t.info)
    return True
