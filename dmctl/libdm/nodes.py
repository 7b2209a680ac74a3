"""The seam between the device-lifecycle commands and udev / device-node handling.

The commands (``cmd_create``, ``cmd_lifecycle``) call only these functions, at the
points where libdm does the corresponding work:

* ``sync_begin(ctx, flags)`` before an ioctl that generates a uevent (create with a
  table, resume, remove, rename): returns the value for the ioctl's ``event_nr``
  (udev cookie | flags << 16), 0 when no udev synchronisation is in use;
* ``sync_complete(ctx, cookie)`` when that ioctl failed or generated no uevent
  (libdm ``_udev_complete``);
* ``sync_wait(ctx, cookie)`` at the end of the command (``dm_udev_wait``), unless the
  user supplied ``--udevcookie``/``DM_UDEV_COOKIE``;
* ``add_node`` / ``remove_node`` / ``rename_node`` / ``set_read_ahead``: libdm's
  queued node operations after a successful create/resume/remove/rename;
* ``mknodes(ctx, name)``: ``dm_mknodes``.

On the simulator all of this is a no-op (it has no device nodes and no udev).  On the
kernel the work is delegated to ``dmctl.libdm.cookies`` (udev cookies, node creation),
written separately, when it provides a function of the same name; until then these
functions do nothing beyond what the kernel itself does.
"""

_MISSING = object()


def _delegate(ctx, fname):
    """The kernel-side implementation of ``fname``, or None (simulator, or not
    provided)."""
    try:
        if ctx.mapper().kind == "sim":
            return None
    except Exception:
        return None
    try:
        from dmctl.libdm import cookies
    except ImportError:
        return None
    fn = getattr(cookies, fname, _MISSING)
    return None if fn is _MISSING or not callable(fn) else fn


def udev_flags(ctx):
    """dmsetup's udev flags for create/resume/remove/rename: ``--noudevrules`` and
    ``_udev_only`` (DM_DEV_DIR is /dev and (cookie supplied or no --verifyudev)).
    0 where nothing would use them (the simulator)."""
    if _delegate(ctx, "sync_begin") is None:
        return 0
    from dmctl.libdm import cookie as ck
    sw = ctx.sw
    flags = 0
    if sw["noudevrules"]:
        flags |= ck.DM_UDEV_DISABLE_DM_RULES_FLAG | ck.DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG
    if ctx.dev_dir.rstrip("/") == "/dev" and (user_cookie(ctx) or not sw["verifyudev"]):
        flags |= ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK
    return flags


def user_cookie(ctx):
    """A udev transaction cookie came from ``--udevcookie`` or ``DM_UDEV_COOKIE``
    (then nobody waits at the end of the command: the caller will)."""
    import os
    if ctx.sw["udevcookie"]:
        return True
    env = os.environ.get("DM_UDEV_COOKIE")
    if not env:
        return False
    from dmctl.libdm.cookies import parse_cookie
    return bool(parse_cookie(env))


def relies_on_udev(flags):
    """libdm's ``rely_on_udev``: no library node creation."""
    if not flags:
        return False
    from dmctl.libdm import cookie as ck
    return bool(flags & ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK)


def sync_begin(ctx, flags=0, enabled=True):
    fn = _delegate(ctx, "sync_begin")
    if fn is None:
        return 0
    return fn(ctx, flags, enabled) or 0


def sync_complete(ctx, cookie):
    if not cookie:
        return
    fn = _delegate(ctx, "sync_complete")
    if fn is not None:
        fn(ctx, cookie)


def sync_done(ctx, cookie, info):
    """After a successful uevent ioctl: libdm completes the cookie itself when the
    kernel says it sent no uevent (DM_UEVENT_GENERATED_FLAG clear in the reply)."""
    if not cookie:
        return
    fn = _delegate(ctx, "sync_done")
    if fn is not None:
        fn(ctx, cookie, info)
    elif info is not None and not info.uevent_generated:
        sync_complete(ctx, cookie)


def sync_wait(ctx, cookie):
    if not cookie:
        return
    fn = _delegate(ctx, "sync_wait")
    if fn is not None:
        fn(ctx, cookie)


def add_node(ctx, name, major, minor, uid=None, gid=None, mode=None, cookie=0):
    fn = _delegate(ctx, "add_node")
    if fn is not None and name:
        fn(ctx, name, major, minor, uid, gid, mode, cookie)


def remove_node(ctx, name, cookie=0):
    fn = _delegate(ctx, "remove_node")
    if fn is not None and name:
        fn(ctx, name, cookie)


def rename_node(ctx, old, new, cookie=0):
    fn = _delegate(ctx, "rename_node")
    if fn is not None and old:
        fn(ctx, old, new, cookie)


def set_read_ahead(ctx, info, spec):
    """Apply ``--readahead`` after a resume (libdm ``set_dev_node_read_ahead``).

    ``spec`` is main.py's ``(kind, n)``: auto (or ``set -1``) leaves the kernel's
    value; none sets 0; ``min`` raises only."""
    if not spec:
        return
    kind, n = spec
    if kind == "auto" or (kind in ("set", "min") and n == -1):
        return
    sectors = 0 if kind == "none" else n
    try:
        ctx.mapper().set_read_ahead(info, sectors, minimum=(kind == "min"))
    except Exception:
        pass


def mknodes(ctx, name=None):
    """``dm_mknodes``: True unless the kernel could not be asked."""
    fn = _delegate(ctx, "mknodes")
    if fn is not None:
        return bool(fn(ctx, name))
    from dmctl.errors import DmError
    m = ctx.mapper()
    try:
        if name is None:
            m.list_devices()
        else:
            try:
                m.info(name)
            except DmError as e:
                if e.errno != 6:        # ENXIO: "does not exist", not an error
                    raise
    except DmError as e:
        from dmctl.cli.cmd_lifecycle import libdm_fail
        libdm_fail(ctx, e, "names" if name is None else "mknodes", name=name or "")
        return False
    return True
