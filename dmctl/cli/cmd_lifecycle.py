"""dmsetup's device-lifecycle commands: remove, remove_all, suspend, resume, clear,
wipe_table, rename, message, wait, mknodes, mangle, setgeometry.

Each follows dmsetup 1.02.185 (``_simple``, ``_error_device``, ``_remove``,
``_remove_all``, ``_do_rename``, ``_message``, ``_wait``, ``_mknodes``, ``_mangle``,
``_setgeometry``) and libdm's task rules (``_set_task_device``, ``dm_task_set_name``,
``_flatten``'s persistent-device check, the ``device-mapper: <op> ioctl on ...`` line,
``--retry`` on EBUSY).  The helpers at the top are shared with ``cmd_create``.

Every command is ``fn(ctx, args, entry, multiple) -> bool``.
"""

import sys

from dmctl.errors import DmError

ENXIO = 6
EBUSY = 16
EINTR = 4

DM_NAME_LEN = 128
DM_UUID_LEN = 129
DM_IOCTL_RETRIES = 25
DM_RETRY_DELAY = 0.2


# ======================================================================== task helpers

class Task(object):
    """What one libdm task names.  ``name``/``uuid`` are in kernel (mangled) form;
    ``major``/``minor`` are -1 when unset; ``fallback`` is libdm's
    ``allow_default_major_fallback`` (cleared by ``dm_task_set_major``)."""
    __slots__ = ("name", "uuid", "major", "minor", "fallback")

    def __init__(self, name=None, uuid=None, major=-1, minor=-1, fallback=True):
        self.name = name
        self.uuid = uuid
        self.major = major
        self.minor = minor
        self.fallback = fallback


def dm_major(ctx):
    """The device-mapper block major (for libdm's persistent-minor fallback)."""
    m = ctx.mapper()
    v = getattr(m, "dm_major", None)
    if not (isinstance(v, int) and v > 0):
        probe = getattr(m, "_dm_block_major", None)     # the kernel: /proc/devices
        v = probe() if callable(probe) else None
    if not (isinstance(v, int) and v > 0):
        v = getattr(sys.modules.get(type(m).__module__), "DM_MAJOR", None)
    return v if isinstance(v, int) and v > 0 else 254


def libdm_fail(ctx, e, op, name="", uuid="", major=-1, minor=-1):
    """libdm's line for a failed ioctl, then the kernel's own reason (``e.detail``).

    Format ``"device-mapper: %s ioctl on %s %s%s%.0d%s%.0d%s%s failed: %s"``: the
    name and uuid the request carried (kernel form), ``(major:minor)`` only when the
    task had a major."""
    dev = ""
    if major is not None and major > 0:
        mn = minor if minor is not None else -1
        dev = "(%d:%s%s)" % (major, str(mn) if mn > 0 else "", "0" if mn == 0 else "")
    if e.errno == EINTR:
        return          # log_verbose only
    ctx.err("device-mapper: %s ioctl on %s %s%s failed: %s" % (
        op, name or "", uuid or "", dev, e.strerror))
    if e.detail:
        for line in str(e.detail).splitlines():
            ctx.err(line)


def task_fail(ctx, e, op, t):
    libdm_fail(ctx, e, op, t.name or "", t.uuid or "", t.major, t.minor)


def set_name(ctx, arg, creating=False):
    """``dm_task_set_name``: a name or path -> kernel name, or None (error printed)."""
    if "/" in arg:
        n = ctx.name_from_arg(arg, creating=creating)
        if n is None:
            return None
        arg = n
        if len(arg.encode("utf-8", "surrogateescape")) >= DM_NAME_LEN:
            ctx.err('Name "%s" too long.' % arg)
            return None
        return arg
    if len(arg.encode("utf-8", "surrogateescape")) >= DM_NAME_LEN:
        ctx.err('Name "%s" too long.' % arg)
        return None
    return ctx.mangle_name(arg, "name")


def set_uuid(ctx, uuid):
    """``dm_task_set_uuid`` (no length check: the kernel truncates to 128 bytes)."""
    return ctx.mangle_name(uuid, "UUID")


def set_task_device(ctx, name_arg, optional=False, entry=None):
    """dmsetup's ``_set_task_device``: an explicit name, else ``-u``, else ``-j/-m``.
    Returns a Task, or None (error printed)."""
    sw = ctx.sw
    if entry is not None:
        return Task(name=entry.name)
    if name_arg is not None:
        n = set_name(ctx, name_arg)
        return None if n is None else Task(name=n)
    if sw["uuid"]:
        u = set_uuid(ctx, sw.get("uuid"))
        return None if u is None else Task(uuid=u)
    if sw["major"] and sw["minor"]:
        return Task(major=sw.get("major"), minor=sw.get("minor"), fallback=False)
    if not optional:
        ctx.err("No device specified.")
        return None
    return Task()


def flatten(ctx, t, op):
    """libdm ``_flatten``: check the persistent device number and choose how the
    kernel will look the device up (uuid, else name, else dev).  -> DevId or None."""
    from dmctl.backend.base import DevId
    if t.minor is not None and t.minor >= 0:
        if t.fallback:
            dmj = dm_major(ctx)
            if t.major != dmj:
                t.major = dmj
        if t.major is None or t.major <= 0:
            ctx.err("Missing major number for persistent device.")
            ctx.err("Couldn't create ioctl argument.")
            return None
    name_sent = bool(t.name) and (op not in ("resume", "reload") or t.minor < 0
                                  or t.major < 0)
    persistent = t.minor is not None and t.minor >= 0
    # Everything the ioctl carries: the kernel looks up by uuid, else name, else dev,
    # and refuses a request naming the device twice (uuid or name plus a dev) - libdm
    # sends that for a remove with -j/-m, which is how its create revert can fail.
    return DevId(name=t.name if name_sent else None, uuid=t.uuid or None,
                 major=t.major if persistent else None,
                 minor=t.minor if persistent else None)


_FAILED = object()


def run_task(ctx, t, op, call, quiet_enxio=False):
    """Flatten task ``t`` and run ``call(devid)``; a DmError prints libdm's line.
    -> the call's result, or ``_FAILED`` (test with ``failed()``).  With
    ``quiet_enxio`` (libdm's info/mknodes/status) a missing device gives None."""
    dev = flatten(ctx, t, op)
    if dev is None:
        return _FAILED
    try:
        return call(dev)
    except DmError as e:
        if quiet_enxio and e.errno == ENXIO:
            return None
        task_fail(ctx, e, op, t)
        return _FAILED


def failed(result):
    return result is _FAILED


def display_info(ctx, info):
    """``_display_info`` after a successful task with ``-v``: the long info block, or
    a report row with ``-c`` (and dmctl's ``--json``), as ``info`` prints them."""
    if info is None:
        ctx.err("Device does not exist.")
        return False
    from dmctl.cli import cmd_query
    return cmd_query._display_info(ctx, info, verbose=True)


def user_cookie(ctx):
    from dmctl.libdm import nodes
    return nodes.user_cookie(ctx)


# ======================================================================== _simple

_UEVENT_OPS = ("resume", "remove")


def simple(ctx, op, name_arg, event_nr=0, display=True, entry=None):
    """dmsetup's ``_simple``: one suspend/resume/clear/remove/remove_all/waitevent."""
    from dmctl.libdm import nodes
    sw = ctx.sw
    t = set_task_device(ctx, name_arg, entry=entry)
    if t is None:
        return False
    m = ctx.mapper()
    cookie = 0
    if op in _UEVENT_OPS:
        cookie = nodes.sync_begin(ctx, nodes.udev_flags(ctx))
    info = None
    r = False
    dev = flatten(ctx, t, op) if op != "remove_all" else None
    if dev is not None or op == "remove_all":
        tries = 1
        while True:
            try:
                if op == "suspend":
                    info = m.suspend(dev, noflush=bool(sw["noflush"]),
                                     nolockfs=bool(sw["nolockfs"]))
                elif op == "resume":
                    info = m.resume(dev, noflush=bool(sw["noflush"]),
                                    nolockfs=bool(sw["nolockfs"]), cookie=cookie,
                                    readonly=bool(sw["readonly"]))
                elif op == "clear":
                    info = m.clear(dev)
                elif op == "remove":
                    info = m.remove(dev, deferred=bool(sw["deferred"]), cookie=cookie)
                elif op == "remove_all":
                    m.remove_all(deferred=bool(sw["deferred"]))
                elif op == "waitevent":
                    res = m.wait_event(dev, event_nr, inactive=bool(sw["inactive"]),
                                       noflush=bool(sw["noflush"]))
                    info = res[0] if isinstance(res, tuple) else res
                else:   # pragma: no cover
                    raise ValueError(op)
                r = True
            except DmError as e:
                task_fail(ctx, e, op, t)
                if (e.errno == EBUSY and op == "remove" and sw["retry"]
                        and tries < DM_IOCTL_RETRIES):
                    tries += 1
                    import time
                    time.sleep(DM_RETRY_DELAY)
                    continue
                nodes.sync_complete(ctx, cookie)
            break
    else:
        nodes.sync_complete(ctx, cookie)
    if r and op in _UEVENT_OPS:
        nodes.sync_done(ctx, cookie, info)
    if r:
        if op == "remove" and t.name:
            nodes.remove_node(ctx, t.name, cookie)
        elif op == "resume" and info is not None:
            if not sw["addnodeoncreate"] and t.name:
                nodes.add_node(ctx, t.name, info.major, info.minor, cookie=cookie)
            if sw["readahead"]:
                nodes.set_read_ahead(ctx, info, sw.get("readahead"))
    if op in _UEVENT_OPS and not user_cookie(ctx):
        nodes.sync_wait(ctx, cookie)
    if r and display and sw["verbose"]:
        r = display_info(ctx, info)
    return r


def suspend(ctx, args, entry, multiple):
    return simple(ctx, "suspend", args[0] if args else None, entry=entry)


def resume(ctx, args, entry, multiple):
    return simple(ctx, "resume", args[0] if args else None, entry=entry)


def clear(ctx, args, entry, multiple):
    return simple(ctx, "clear", args[0] if args else None, entry=entry)


def wait(ctx, args, entry, multiple):
    """``wait <device> [<event_nr>]``: blocks until the event counter differs."""
    from dmctl.libdm.table import c_atoi
    sw = ctx.sw
    name = None
    if entry is None and not sw["uuid"] and not sw["major"]:
        if not args:
            ctx.err("No device specified.")
            return False
        name = args[0]
        args = args[1:]
    event_nr = (c_atoi(args[-1]) & 0xFFFFFFFF) if args else 0
    return simple(ctx, "waitevent", name, event_nr, display=True, entry=entry)


# ======================================================================== remove

def _device_size(ctx, name, entry=None):
    """``_get_device_size``: the sum of the table's lengths (0 on any failure)."""
    t = set_task_device(ctx, name, entry=entry)
    if t is None:
        return 0
    res = run_task(ctx, t, "table",
                   lambda dev: ctx.mapper().table(dev, inactive=bool(ctx.sw["inactive"])))
    if failed(res):
        return 0
    lines = res[1]
    return sum(int(x.length) for x in lines) & ((1 << 64) - 1)


def wipe_table(ctx, args, entry, multiple):
    """``_error_device``: load ``0 <size> error`` and resume (clear on failure)."""
    from dmctl.backend.base import TargetLine
    sw = ctx.sw
    name = entry.name if entry is not None else (args[0] if args else None)
    if not name:
        ctx.err("No device specified.")
        return False
    size = _device_size(ctx, name if entry is None else None, entry)
    t = set_task_device(ctx, name if entry is None else None, entry=entry)
    if t is None:
        return False
    if failed(run_task(ctx, t, "reload", lambda dev: ctx.mapper().load(
            dev, [TargetLine(0, size, "error", "")], readonly=bool(sw["readonly"])))):
        return False
    if sw["force"]:
        # Avoid a hang on flushing with --force (dmsetup sets these globally).
        if not sw["nolockfs"]:
            sw.set("nolockfs")
        if not sw["noflush"]:
            sw.set("noflush")
    rname = name if entry is None else None
    if not simple(ctx, "resume", rname, display=False, entry=entry):
        simple(ctx, "clear", rname, display=False, entry=entry)
        return False
    return True


def remove(ctx, args, entry, multiple):
    sw = ctx.sw
    if sw["force"] and args:
        if user_cookie(ctx):
            ctx.err("WARNING: Use of cookie and --force is not compatible.")
        wipe_table(ctx, args, None, 0)
    return simple(ctx, "remove", args[0] if args else None, display=False, entry=entry)


def _count_devices(ctx):
    try:
        return len(ctx.mapper().list_devices()), True
    except DmError as e:
        libdm_fail(ctx, e, "names")
        return 0, False


def remove_all(ctx, args, entry, multiple):
    """``_remove_all``: DM_REMOVE_ALL then mknodes; the result is the bitwise OR of
    the steps' results (so it reports success while devices remain, as dmsetup)."""
    from dmctl.libdm import nodes
    from dmctl.cli.common import process_all
    sw = ctx.sw
    r = int(simple(ctx, "remove_all", "", display=False)) | int(nodes.mknodes(ctx, None))
    if not sw["force"]:
        return bool(r)
    n, ok = _count_devices(ctx)
    r |= int(ok)
    if not n:
        return bool(r)
    r |= int(process_all(ctx, wipe_table, args, silent=True))
    r |= int(simple(ctx, "remove_all", "", display=False)) | int(nodes.mknodes(ctx, None))
    n, ok = _count_devices(ctx)
    r |= int(ok)
    if not n:
        return bool(r)
    ctx.err("Unable to remove %d device(s)." % n)
    return bool(r)


# ======================================================================== rename

def do_rename(ctx, name_arg, new_name=None, new_uuid=None, kernel_form=False,
              entry=None):
    """``_do_rename``: DM_DEV_RENAME to a new name, or (``--setuuid``) a new uuid."""
    from dmctl.libdm import nodes
    t = set_task_device(ctx, name_arg, entry=entry)
    if t is None:
        return False
    if new_uuid is not None:
        if len(new_uuid.encode("utf-8", "surrogateescape")) >= DM_UUID_LEN:
            ctx.err('Uuid "%s" too long' % new_uuid)
            return False
        new = new_uuid if kernel_form else ctx.mangle_name(new_uuid, "new UUID")
        if new is None:
            return False
    else:
        if "/" in new_name:
            ctx.err('Name "%s" invalid. It contains "/".' % new_name)
            return False
        if len(new_name.encode("utf-8", "surrogateescape")) >= DM_NAME_LEN:
            ctx.err('Name "%s" too long' % new_name)
            return False
        if not new_name:
            ctx.err("Non empty new name is required.")
            return False
        new = new_name if kernel_form else ctx.mangle_name(new_name, "new name")
        if new is None:
            return False
    cookie = nodes.sync_begin(ctx, nodes.udev_flags(ctx))
    r = False
    dev = flatten(ctx, t, "rename")
    if dev is not None:
        try:
            info = ctx.mapper().rename(dev, new, set_uuid=new_uuid is not None,
                                       cookie=cookie)
            r = True
            nodes.sync_done(ctx, cookie, info)
        except DmError as e:
            task_fail(ctx, e, "rename", t)
            nodes.sync_complete(ctx, cookie)
    else:
        nodes.sync_complete(ctx, cookie)
    if r and new_uuid is None and t.name:
        nodes.rename_node(ctx, t.name, new, cookie)
    if not user_cookie(ctx):
        nodes.sync_wait(ctx, cookie)
    return r


def rename(ctx, args, entry, multiple):
    name = args[0] if len(args) == 2 else None
    if ctx.sw["setuuid"]:
        return do_rename(ctx, name, new_uuid=args[-1])
    return do_rename(ctx, name, new_name=args[-1])


# ======================================================================== message

def _device_then_args(ctx, args):
    """The device from ``-u``/``-j -m``, else the first argument: -> (Task, rest)."""
    if ctx.sw["uuid"] or ctx.sw["major"]:
        return set_task_device(ctx, None), args
    return set_task_device(ctx, args[0]), args[1:]


def message(ctx, args, entry, multiple):
    """``message <device> <sector> <message...>``: the words joined by spaces; the
    target's reply is printed with a newline added when it lacks one."""
    from dmctl.libdm.table import strtoull_strict
    t, args = _device_then_args(ctx, args)
    if t is None:
        return False
    sector = strtoull_strict(args[0]) if args else None
    if sector is None:
        ctx.err("Invalid sector.")
        return False
    words = args[1:]
    if not words:
        ctx.err("No message supplied.")
    text = " ".join(words)
    reply = run_task(ctx, t, "message", lambda dev: ctx.mapper().message(dev, sector, text))
    if failed(reply):
        return False
    if reply is not None:
        if not reply or reply.endswith("\n"):
            ctx.out(reply)
        else:
            ctx.out(reply + "\n")
    return True


# ======================================================================== setgeometry

def setgeometry(ctx, args, entry, multiple):
    t, args = _device_then_args(ctx, args)
    if t is None:
        return False
    return not failed(run_task(ctx, t, "setgeometry", lambda dev: ctx.mapper().set_geometry(
        dev, args[0], args[1], args[2], args[3])))


# ======================================================================== mknodes

def mknodes(ctx, args, entry, multiple):
    from dmctl.libdm import nodes
    if entry is not None:
        return nodes.mknodes(ctx, entry.name)
    if not args:
        return nodes.mknodes(ctx, None)
    n = set_name(ctx, args[0])
    if n is None:
        return False
    return nodes.mknodes(ctx, n)


# ======================================================================== mangle

def _target_form(ctx, s, target, what):
    """dm_task_get_{name,uuid}_{un,}mangled: ``s`` in the ``--manglename`` form (the
    library mode is ``none`` during mangle, which libdm's mangler treats as auto)."""
    from dmctl.libdm import names
    try:
        if target == "none":
            return names.unmangle(s, "none", what)
        return names.mangle(s, "auto", what)
    except names.ManglingError as e:
        ctx.err(str(e))
        ctx.err('Failed to %s device %s "%s".' % (
            "unmangle" if target == "none" else "mangle", what.lower(), s))
        return None


def mangle(ctx, args, entry, multiple):
    """``_mangle``: rename devices whose names are not in the ``--manglename`` form
    (names are read raw: main.py sets mangling ``none`` for this command)."""
    from dmctl.cli.common import process_all
    sw = ctx.sw
    if entry is not None:
        name = entry.name
    else:
        if not args and not sw["uuid"] and not sw["major"]:
            return process_all(ctx, mangle, args)
        name = args[0] if args else None
    t = set_task_device(ctx, name, entry=entry)
    if t is None:
        return False
    info = run_task(ctx, t, "info", lambda dev: ctx.mapper().info(dev), quiet_enxio=True)
    if failed(info) or info is None:
        return False
    if name is None:
        name = info.name
    uuid = info.uuid or ""
    target = sw.get("manglename") or "auto"
    if target == "auto":
        if "\\x5cx" in name:
            ctx.err('The name "%s" seems to be mangled more than once. '
                    'Manual intervention required to rename the device.' % name)
            return False
        if "\\x5cx" in uuid:
            ctx.err('The UUID "%s" seems to be mangled more than once. '
                    'Manual intervention required to correct the device UUID.' % uuid)
            return False
    new_name = _target_form(ctx, info.name, target, "name")
    if new_name is None:
        return False
    new_uuid = _target_form(ctx, uuid, target, "UUID")
    if new_uuid is None:
        return False
    if uuid != new_uuid:
        ctx.err("%s: %s: UUID in incorrect form. " % (name, uuid))
        ctx.err("Unable to change device UUID. The device must be deactivated first.")
        return False
    if name == new_name:
        ctx.out("%s: %s: name %salready in correct form\n" % (
            name, uuid if uuid else "[no UUID]", "and UUID " if uuid else ""))
        return True
    ctx.out("%s: renaming to %s\n" % (name, new_name))
    return do_rename(ctx, name, new_name=new_name, kernel_form=True)
