"""Cookie values on the command line (dmsetup's ``_get_cookie_value``).

Kept tiny: main.py imports it while parsing ``--udevcookie`` and udev runs
``dmsetup udevcomplete $env{DM_COOKIE}`` for every dm uevent.
"""

UINT32_MAX = 0xFFFFFFFF


def c_number_start(s):
    """Where C's strto*/scanf number parsing starts: -> (index after leading
    whitespace and one optional sign, negative?)."""
    i, n = 0, len(s)
    while i < n and s[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and s[i] in "+-":
        neg = s[i] == "-"
        i += 1
    return i, neg


def strtoul0(s):
    """C ``strtoul(s, &end, 0)`` on a 64-bit unsigned long.

    -> (value, rest, overflow): leading whitespace and one sign are accepted; base 16
    after ``0x``/``0X``, base 8 after a leading ``0``, else base 10; ``rest`` is the
    unparsed tail.  A ``-`` negates modulo 2**64 as C does.
    """
    i, neg = c_number_start(s)
    n = len(s)
    base = 10
    if s[i:i + 2] in ("0x", "0X") and i + 2 < n and s[i + 2] in "0123456789abcdefABCDEF":
        base, i = 16, i + 2
    elif s[i:i + 1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    j = i
    while j < n and s[j].lower() in digits:
        j += 1
    if j == i:
        # no digits at all: strtoul returns 0 and end = the original string
        return 0, s, False
    value = int(s[i:j], base)
    overflow = value > 0xFFFFFFFFFFFFFFFF
    if overflow:
        value = 0xFFFFFFFFFFFFFFFF
    elif neg:
        value = (-value) & 0xFFFFFFFFFFFFFFFF
    return value, s[j:], overflow


def parse_cookie(s):
    """A cookie as dmsetup accepts it, or None for what dmsetup rejects with
    ``Incorrect cookie value.``: 0, trailing junk, overflow or > UINT32_MAX."""
    if s is None:
        return None
    value, rest, overflow = strtoul0(s)
    if overflow or not value or rest or value > UINT32_MAX:
        return None
    return value


# --------------------------------------------------------------------------------------
# The functions dmctl.libdm.nodes (the lifecycle commands' seam) delegates to on the
# kernel backend.  They keep one dmctl.libdm.udev.UdevTransaction per command on the Ctx;
# ``cookie`` arguments are the event_nr values sync_begin returned (flags << 16 | base),
# from which libdm's node policy is read exactly as libdm reads dmt->event_nr.
# dmctl.libdm.udev is imported only here, so that parse_cookie stays cheap.
# --------------------------------------------------------------------------------------

def _tx(ctx, create=True):
    tx = getattr(ctx, "_dmctl_udev_tx", None)
    if tx is None and create:
        from dmctl.libdm import udev
        try:
            tx = udev.UdevTransaction(ctx, uevents=True)
        except ValueError as e:          # bad --udevtimeout: say so, use the default
            ctx.err(str(e))
            ctx.sw.clear("udevtimeout")
            tx = udev.UdevTransaction(ctx, uevents=True)
        ctx._dmctl_udev_tx = tx
    return tx


def _task(tx, cookie, states=("pending", "uevent")):
    for t in tx.tasks:
        if t.event_nr == cookie and t.state in states:
            return t
    return None


def sync_begin(ctx, flags=0, enabled=True):
    """Before a uevent-generating ioctl: -> event_nr (never 0: PRIMARY_SOURCE is
    always set).  0 only when libdm would fail the task (its error was printed)."""
    tx = _tx(ctx)
    t = tx.begin(None, flags=flags, sync=enabled)
    return t.event_nr if t is not None else 0


def sync_complete(ctx, cookie):
    """The ioctl failed or the kernel sent no uevent: complete the cookie ourselves."""
    tx = _tx(ctx, create=False)
    if tx is None:
        return
    t = _task(tx, cookie, ("pending",))
    if t is not None:
        t.done(uevent=False)


def sync_wait(ctx, cookie):
    """End of the command: wait (bounded) for udev, then run the queued node ops."""
    tx = _tx(ctx, create=False)
    if tx is None:
        return True
    ctx._dmctl_udev_tx = None
    for t in tx.tasks:
        if t.state == "pending":
            t.state = "uevent"
    return tx.finish()


def _node_policy(tx, cookie):
    """(check_udev, rely_on_udev) as libdm's dm_task_run derives them from event_nr;
    without a cookie value, from this command's flags."""
    from dmctl.libdm import cookie as ck
    f = (cookie >> 16) & 0xFFFF if cookie else tx._effective(tx.flags())
    return (not f & ck.DM_UDEV_DISABLE_DM_RULES_FLAG,
            bool(f & ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK))


def _stack(ctx, kind, name, cookie, op, **kw):
    tx = _tx(ctx)
    check_udev, rely = _node_policy(tx, cookie)
    t = _task(tx, cookie) if cookie else None
    if t is not None:
        t.op = op
        if op == "rename":
            t.name, t.new_name = kw.get("old_name"), name
        else:
            t.name = name
        if kw.get("major") is not None:
            t.major, t.minor = kw["major"], kw["minor"]
    tx.stack(kind, name, check_udev=check_udev, rely=rely, **kw)
    if tx.external or not cookie:
        # No dm_udev_wait will come for an outer transaction: libdm runs the
        # queued operations at exit; so do we, now.
        tx._run_node_ops()


def add_node(ctx, name, major, minor, uid=None, gid=None, mode=None, cookie=0):
    """libdm add_dev_node after a successful resume (or create with
    --addnodeoncreate)."""
    _stack(ctx, "add", name, cookie, "resume", major=major, minor=minor, uid=uid,
           gid=gid, mode=mode)


def remove_node(ctx, name, cookie=0):
    """libdm rm_dev_node after a successful remove."""
    _stack(ctx, "del", name, cookie, "remove")


def rename_node(ctx, old, new, cookie=0):
    """libdm rename_dev_node after a successful rename (not --setuuid)."""
    _stack(ctx, "rename", new, cookie, "rename", old_name=old)


def mknodes(ctx, name=None):
    """dm_mknodes for the kernel backend (``dmsetup mknodes [NAME]``)."""
    from dmctl.libdm import udev
    from dmctl.errors import DmError
    try:
        return udev.mknodes(ctx, ctx.mapper(), name)
    except DmError as e:
        ctx.ioctl_error(e, op="mknodes" if name else "names", name=name or "")
        return False


def sync_done(ctx, cookie, info):
    """After a successful uevent-generating ioctl: ``info`` is the reply (DeviceInfo).
    When the kernel sent no uevent (DM_UEVENT_GENERATED_FLAG unset: e.g. resume of a
    device that was not suspended) the cookie is completed here, as libdm does;
    otherwise the wait at the end expects udev's udevcomplete."""
    tx = _tx(ctx, create=False)
    if tx is None or not cookie:
        return
    t = _task(tx, cookie, ("pending",))
    if t is not None:
        t.done(uevent=bool(getattr(info, "flags", 0) & (1 << 13)))
