"""dmsetup's device-lifecycle commands: remove, remove_all, suspend, resume, clear,
wipe_table, rename, message, wait, mknodes, mangle, setgeometry.

Each follows dmsetup 1.02.185 (``_simple``, ``_error_device``, ``_remove``,
``_remove_all``, ``_do_rename``, ``_message``, ``_wait``, ``_mknodes``, ``_mangle``,
``_setgeometry``): the arguments become a dmctl.libdm.task.Task (``_set_task_device``,
``dm_task_set_name``), which the library runs under the command's udev policy
(``Ctx.udev_policy()``: libdm's rules, the ``device-mapper: <op> ioctl on ...`` line,
``--retry`` on EBUSY, udev cookies and nodes), its messages printed by the policy's
log callback.  The helpers at the top are shared with ``cmd_create``.

Every command is ``fn(ctx, args, entry, multiple) -> bool``.
"""

from dmctl.constants import DM_NAME_LEN, DM_UUID_LEN
from dmctl.errors import DmError
from dmctl.libdm.task import Task, task_error_lines


# ======================================================================== task helpers

def run(ctx, t, op=None):
    """Run task ``t`` (as ``op``, if given) on the backend under the command's udev
    policy.  -> bool; ``t.info``/``t.result`` hold what the kernel replied."""
    if op is not None:
        t.op = op
    return t.run(ctx.mapper(), ctx.udev_policy())


def print_lines(ctx, lines):
    for line in lines:
        ctx.err(line)


def set_name(ctx, arg, creating=False):
    """``dm_task_set_name``: a name or path -> kernel name, or None (error printed)."""
    return ctx.set_name(arg, creating=creating)


def set_uuid(ctx, uuid):
    """``dm_task_set_uuid`` (no length check: the kernel truncates to 128 bytes)."""
    return ctx.mangle_name(uuid, "UUID")


def set_task_device(ctx, name_arg, optional=False, entry=None):
    """dmsetup's ``_set_task_device``: an explicit name, else ``-u``, else ``-j/-m``.
    Returns a Task, or None (error printed)."""
    if entry is not None:
        return Task(name=entry.name)
    dev = ctx.resolve_device(name_arg, optional)
    if dev is None:
        return None
    if dev.major is not None:
        return Task(major=dev.major, minor=dev.minor, fallback=False)
    return Task(name=dev.name, uuid=dev.uuid)


def display_info(ctx, info):
    """``_display_info`` after a successful task with ``-v``: the long info block, or
    a report row with ``-c`` (and dmctl's ``--json``), as ``info`` prints them."""
    if info is None:
        ctx.err("Device does not exist.")
        return False
    from dmctl.cli import cmd_query
    return cmd_query._display_info(ctx, info, verbose=True)


def user_cookie(ctx):
    """The udev cookie belongs to the caller (``--udevcookie``/``DM_UDEV_COOKIE``)."""
    return ctx.udev_policy().user_cookie()


# ======================================================================== _simple

def simple(ctx, op, name_arg, event_nr=0, display=True, entry=None):
    """dmsetup's ``_simple``: one suspend/resume/clear/remove/remove_all/waitevent."""
    sw = ctx.sw
    t = set_task_device(ctx, name_arg, entry=entry)
    if t is None:
        return False
    t.noflush = bool(sw["noflush"])
    t.nolockfs = bool(sw["nolockfs"])
    t.read_only = bool(sw["readonly"])
    t.deferred = bool(sw["deferred"])
    t.retry = bool(sw["retry"])
    t.query_inactive = bool(sw["inactive"])
    t.event_nr = event_nr
    if sw["readahead"]:
        t.read_ahead = sw.get("readahead")
    r = run(ctx, t, op)
    if r and display and sw["verbose"]:
        r = display_info(ctx, t.info)
    return r


def suspend(ctx, args, entry, multiple):
    return simple(ctx, "suspend", args[0] if args else None, entry=entry)


def resume(ctx, args, entry, multiple):
    return simple(ctx, "resume", args[0] if args else None, entry=entry)


def clear(ctx, args, entry, multiple):
    return simple(ctx, "clear", args[0] if args else None, entry=entry)


def wait(ctx, args, entry, multiple):
    """``wait <device> [<event_nr>]``: blocks until the event counter differs."""
    from dmctl.numbers import atoi
    sw = ctx.sw
    name = None
    if entry is None and not sw["uuid"] and not sw["major"]:
        if not args:
            ctx.err("No device specified.")
            return False
        name = args[0]
        args = args[1:]
    event_nr = (atoi(args[-1]) & 0xFFFFFFFF) if args else 0
    return simple(ctx, "waitevent", name, event_nr, display=True, entry=entry)


# ======================================================================== remove

def _device_size(ctx, name, entry=None):
    """``_get_device_size``: the sum of the table's lengths (0 on any failure)."""
    t = set_task_device(ctx, name, entry=entry)
    if t is None:
        return 0
    t.query_inactive = bool(ctx.sw["inactive"])
    if not run(ctx, t, "table"):
        return 0
    return sum(int(x.length) for x in t.result[1]) & ((1 << 64) - 1)


def wipe_table(ctx, args, entry, multiple):
    """``_error_device``: load ``0 <size> error`` and resume (clear on failure)."""
    from dmctl.records import TargetLine
    sw = ctx.sw
    name = entry.name if entry is not None else (args[0] if args else None)
    if not name:
        ctx.err("No device specified.")
        return False
    size = _device_size(ctx, name if entry is None else None, entry)
    t = set_task_device(ctx, name if entry is None else None, entry=entry)
    if t is None:
        return False
    t.table = [TargetLine(0, size, "error", "")]
    t.read_only = bool(sw["readonly"])
    if not run(ctx, t, "reload"):
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
        print_lines(ctx, task_error_lines(e, "names"))
        return 0, False


def remove_all(ctx, args, entry, multiple):
    """``_remove_all``: DM_REMOVE_ALL then mknodes; the result is the bitwise OR of
    the steps' results (so it reports success while devices remain, as dmsetup)."""
    from dmctl.cli.common import process_all
    sw = ctx.sw
    r = int(simple(ctx, "remove_all", "", display=False)) | int(run(ctx, Task("mknodes")))
    if not sw["force"]:
        return bool(r)
    n, ok = _count_devices(ctx)
    r |= int(ok)
    if not n:
        return bool(r)
    r |= int(process_all(ctx, wipe_table, args, silent=True))
    r |= int(simple(ctx, "remove_all", "", display=False)) | int(run(ctx, Task("mknodes")))
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
    t.new_name = new
    t.set_uuid = new_uuid is not None
    return run(ctx, t, "rename")


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
    from dmctl.numbers import strtoull
    t, args = _device_then_args(ctx, args)
    if t is None:
        return False
    # dmsetup: errno = 0; strtoull(argv[0], &endptr, 10); errno, *endptr or
    # endptr == argv[0] is an invalid sector ("-1" wraps, overflow does not)
    sector, end, erange = strtoull(args[0], 10) if args else (None, 0, True)
    if erange or not end or end != len(args[0]):
        ctx.err("Invalid sector.")
        return False
    words = args[1:]
    if not words:
        ctx.err("No message supplied.")
    t.sector = sector
    t.message = " ".join(words)
    if not run(ctx, t, "message"):
        return False
    reply = t.result
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
    t.geometry = tuple(args[:4])
    return run(ctx, t, "setgeometry")


# ======================================================================== mknodes

def mknodes(ctx, args, entry, multiple):
    """``_mknodes``: libdm's ``dm_mknodes`` for one device, or all."""
    if entry is not None:
        return run(ctx, Task("mknodes", name=entry.name))
    if not args:
        return run(ctx, Task("mknodes"))
    n = set_name(ctx, args[0])
    if n is None:
        return False
    return run(ctx, Task("mknodes", name=n))


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
    if not run(ctx, t, "info") or t.info is None:
        return False
    info = t.info
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
