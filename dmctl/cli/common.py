"""Helpers shared by the dmsetup-compatible commands (dmsetup.c's static helpers), and
what the CLI hands the library: the log callback that prints libdm's messages as
dmsetup does, and the udev policy built once from the switches."""

from dmctl.errors import DmError
from dmctl.libdm.log import LOG_NOTICE, LOG_WARN


def libdm_log(ctx):
    """The ``log(level, text)`` callback for dmctl.libdm: errors and warnings on
    stderr; log_print, log_verbose and log_debug on stdout from -v, -vv and -vvv."""
    def log(level, msg):
        if level <= LOG_WARN:
            ctx.err(msg)
        elif ctx.verbose(level - LOG_NOTICE + 1):   # NOTICE -v, INFO -vv, DEBUG -vvv
            ctx.out(msg + "\n")
    return log


def udev_policy(ctx):
    """dmctl.libdm.udev.UdevPolicy from dmsetup's switches (``Ctx.udev_policy()``
    builds it once per command).  Whether the backend sends uevents is asked only when
    a task needs to know, so that the udev cookie commands never open a backend."""
    from dmctl.libdm.udev import UdevPolicy
    sw = ctx.sw

    def uevents():
        return ctx.mapper().emits_uevents

    return UdevPolicy(
        uevents=uevents, dev_dir=ctx.dev_dir, noudevsync=bool(sw["noudevsync"]),
        verifyudev=bool(sw["verifyudev"]), noudevrules=bool(sw["noudevrules"]),
        udevcookie=sw.get("udevcookie", 0) if sw["udevcookie"] else 0,
        udevtimeout=sw.get("udevtimeout") if sw["udevtimeout"] else None,
        uid=sw.get("uid") if sw["uid"] else None, gid=sw.get("gid") if sw["gid"] else None,
        mode=sw.get("mode") if sw["mode"] else None,
        add_node_on_create=bool(sw["addnodeoncreate"]), log=libdm_log(ctx))


def process_all(ctx, fn, args, silent=False):
    """dmsetup's _process_all: run ``fn(ctx, args, entry, 1)`` for every device from
    DM_LIST_DEVICES; ``No devices found`` when there are none.  Returns bool."""
    m = ctx.mapper()
    try:
        entries = m.list_devices()
    except DmError as e:
        ctx.ioctl_error(e, op="names")
        return False
    if not entries:
        if not silent:
            ctx.out("No devices found\n")
        return True
    r = True
    with m.batch():
        for entry in entries:
            if not fn(ctx, args, entry, 1):
                r = False
    return r


def display_info_long(ctx, info, name=None):
    """_display_info_long: the ``info`` block (also printed by -v)."""
    m = ctx.mapper()
    out = []
    out.append("Name:              %s\n" % ctx.display_name(name if name is not None else info.name))
    out.append("State:             %s%s%s\n" % (
        "SUSPENDED" if info.suspended else "ACTIVE",
        " (READ-ONLY)" if info.read_only else "",
        " (DEFERRED REMOVE)" if info.deferred_remove else ""))
    ra = m.read_ahead(info)
    if ra is not None:
        out.append("Read Ahead:        %d\n" % ra)
    else:
        # libdm's fallback (BLKRAGET on the node) failed: it logs why
        why = m.read_ahead_error
        if why:
            ctx.out("".join(out))
            out = []
            ctx.err(why)
    if not info.live_table and not info.inactive_table:
        out.append("Tables present:    None\n")
    else:
        out.append("Tables present:    %s%s%s\n" % (
            "LIVE" if info.live_table else "",
            " & " if info.live_table and info.inactive_table else "",
            "INACTIVE" if info.inactive_table else ""))
    if info.open_count != -1:
        out.append("Open count:        %d\n" % info.open_count)
    out.append("Event number:      %d\n" % info.event_nr)
    out.append("Major, minor:      %d, %d\n" % (info.major, info.minor))
    if info.target_count != -1:
        out.append("Number of targets: %d\n" % info.target_count)
    if info.uuid:
        out.append("UUID: %s\n" % ctx.display_name(info.uuid))
    out.append("\n")
    ctx.out("".join(out))
