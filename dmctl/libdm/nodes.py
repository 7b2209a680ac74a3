"""udev synchronisation and device nodes around one task's ioctl: what libdm's
``dm_task_run`` (libdm/ioctl/libdm-iface.c) does before and after the ioctl, and
``dm_udev_wait`` (libdm/libdm-common.c).

dmctl.libdm.task calls these at the points where libdm does the work:

* :func:`sync_begin` before an ioctl that generates a uevent (create with a table,
  resume, remove, rename; ``dm_task_set_cookie``): returns the value for the ioctl's
  ``event_nr`` (udev flags << 16 | cookie base), 0 when udev is not in play;
* :func:`sync_complete` when that ioctl failed (libdm's ``_udev_complete``);
* :func:`sync_done` after it succeeded: completes the cookie when the kernel sent no
  uevent (DM_UEVENT_GENERATED_FLAG clear in the reply);
* :func:`sync_wait` at the end of the task (``dm_udev_wait``), unless the caller
  supplied the cookie (``--udevcookie``/``DM_UDEV_COOKIE``);
* :func:`add_node` / :func:`remove_node` / :func:`rename_node` /
  :func:`set_read_ahead`: ``_dm_task_node_ops``'s node operations after a successful
  create/resume/remove/rename, queued and run when libdm runs them.

``policy`` is the program's dmctl.libdm.udev.UdevPolicy; it holds the open
dmctl.libdm.udev.UdevTransaction (``policy.tx``), whose ``cookie`` arguments are the
event_nr values sync_begin returned, from which libdm's node policy is read exactly as
libdm reads ``dmt->event_nr``.  Without uevents (the simulator: no udev, no device
nodes) all of this is a no-op.
"""

from dmctl.constants import DM_UDEV_DISABLE_DM_RULES_FLAG, DM_UDEV_DISABLE_LIBRARY_FALLBACK


def _tx(policy, create=True):
    tx = policy.tx
    if tx is None and create:
        from dmctl.libdm import udev
        try:
            tx = udev.UdevTransaction(policy, uevents=True)
        except ValueError as e:          # bad --udevtimeout: say so, use the default
            policy.err(str(e))
            policy.udevtimeout = None
            tx = udev.UdevTransaction(policy, uevents=True)
        policy.tx = tx
    return tx


def _task(tx, cookie, states=("pending", "uevent")):
    for t in tx.tasks:
        if t.event_nr == cookie and t.state in states:
            return t
    return None


def relies_on_udev(flags):
    """libdm's ``rely_on_udev``: no library node creation."""
    return bool(flags & DM_UDEV_DISABLE_LIBRARY_FALLBACK)


def sync_begin(policy, flags=0, op="resume"):
    """Before a uevent-generating ioctl of task ``op``: -> event_nr (never 0 with
    uevents: PRIMARY_SOURCE is always set).  0 without uevents, or when libdm would
    fail the task (its error was logged)."""
    if not policy.uevents:
        return 0
    t = _tx(policy).begin(op, flags=flags)
    return t.event_nr if t is not None else 0


def sync_complete(policy, cookie):
    """The ioctl failed: complete the cookie ourselves."""
    if not cookie:
        return
    tx = _tx(policy, create=False)
    if tx is None:
        return
    t = _task(tx, cookie, ("pending",))
    if t is not None:
        t.done(uevent=False)


def sync_done(policy, cookie, info):
    """After a successful uevent-generating ioctl: ``info`` is the reply (DeviceInfo).
    When the kernel sent no uevent (DM_UEVENT_GENERATED_FLAG unset: e.g. resume of a
    device that was not suspended) the cookie is completed here, as libdm does;
    otherwise the wait at the end expects udev's udevcomplete."""
    if not cookie:
        return
    tx = _tx(policy, create=False)
    if tx is None:
        return
    t = _task(tx, cookie, ("pending",))
    if t is not None:
        t.done(uevent=info is not None and info.uevent_generated)


def sync_wait(policy, cookie):
    """End of the task (dm_udev_wait): wait (bounded) for udev, then run the queued node
    operations.  False only when libdm's wait would have failed."""
    if not cookie:
        return True
    tx = _tx(policy, create=False)
    if tx is None:
        return True
    policy.tx = None
    for t in tx.tasks:
        if t.state == "pending":
            t.state = "uevent"
    return tx.finish()


def _node_policy(tx, cookie):
    """(check_udev, rely_on_udev) as libdm's dm_task_run derives them from event_nr;
    without a cookie value, from this command's flags."""
    f = (cookie >> 16) & 0xFFFF if cookie else tx._effective(tx.flags())
    return (not f & DM_UDEV_DISABLE_DM_RULES_FLAG,
            bool(f & DM_UDEV_DISABLE_LIBRARY_FALLBACK))


def _stack(policy, kind, name, cookie, op, **kw):
    tx = _tx(policy)
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


def add_node(policy, name, major, minor, uid=None, gid=None, mode=None, cookie=0):
    """libdm add_dev_node after a successful resume (or create with
    --addnodeoncreate)."""
    if policy.uevents and name:
        _stack(policy, "add", name, cookie, "resume", major=major, minor=minor, uid=uid,
               gid=gid, mode=mode)


def remove_node(policy, name, cookie=0):
    """libdm rm_dev_node after a successful remove."""
    if policy.uevents and name:
        _stack(policy, "del", name, cookie, "remove")


def rename_node(policy, old, new, cookie=0):
    """libdm rename_dev_node after a successful rename (not --setuuid)."""
    if policy.uevents and old:
        _stack(policy, "rename", new, cookie, "rename", old_name=old)


def set_read_ahead(mapper, info, spec):
    """Apply ``--readahead`` after a resume (libdm ``set_dev_node_read_ahead``).

    ``spec`` is the CLI's ``(kind, n)``: auto (or ``set -1``) leaves the kernel's
    value; none sets 0; ``min`` raises only."""
    if not spec:
        return
    kind, n = spec
    if kind == "auto" or (kind in ("set", "min") and n == -1):
        return
    sectors = 0 if kind == "none" else n
    try:
        mapper.set_read_ahead(info, sectors, minimum=(kind == "min"))
    except Exception:
        pass
