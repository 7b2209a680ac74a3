"""The dm_task: one device-mapper request and libdm's rules for running it
(libdm/ioctl/libdm-iface.c: ``struct dm_task``, ``dm_task_run``, ``_flatten``'s
persistent-device check and choice of lookup key, ``_do_dm_ioctl``'s
``device-mapper: <op> ioctl on <dev> failed: <strerror>`` line, the EBUSY retry of a
remove, ``_create_and_load_v4``, ``_mknodes_v4``; libdm-common.c's ``dm_mknodes``).

A program fills in a :class:`Task` (op, device, flags, arguments) and calls
``task.run(mapper, policy)``.  udev synchronisation and node operations follow
``policy`` (dmctl.libdm.udev.UdevPolicy) through dmctl.libdm.nodes, exactly where
libdm does them.  Messages -- the failed ioctl's line with the kernel's own reason
(``DmError.detail``) under it, ``_flatten``'s errors -- go to ``policy.log``; nothing
is printed.  The outcome is data: ``run`` returns True or False and leaves ``info``
(DeviceInfo), ``result`` (the backend's return value) and ``error`` (the DmError of
the last failure) on the task.
"""

import time

from dmctl.constants import DM_IOCTL_RETRIES, DM_RETRY_DELAY
from dmctl.errors import DmError
from dmctl.libdm import nodes
from dmctl.libdm.log import LOG_ERR

ENXIO = 6
EBUSY = 16
EINTR = 4

# _do_dm_ioctl: for these, ENXIO means "no such device" (info.exists = 0), no error
_EXISTS_OPS = ("info", "mknodes", "status")
# the ioctls that generate a uevent, so carry a udev cookie
_UEVENT_OPS = ("resume", "remove", "rename")
# ops whose reply is not a DeviceInfo
_NO_INFO_OPS = ("message", "setgeometry", "remove_all")


# ======================================================================== error text

def _failed_lines(op, name, uuid, dev, e):
    lines = ["device-mapper: %s ioctl on %s %s%s failed: %s" % (
        op, name or "", uuid or "", dev, e.strerror)]
    if e.detail:
        lines.extend(str(e.detail).splitlines())
    return lines


def task_error_lines(e, op, name="", uuid="", major=-1, minor=-1):
    """libdm's ``log_error`` for a failed ioctl of a task, then the kernel's own reason
    (``e.detail``): ``"device-mapper: %s ioctl on %s %s%s%.0d%s%.0d%s%s failed: %s"``
    with the name and uuid the request carried (kernel form) and ``(major:minor)`` only
    when the task had a major.  [] for EINTR (libdm logs it with log_verbose only)."""
    if e.errno == EINTR:
        return []
    dev = ""
    if major is not None and major > 0:
        mn = minor if minor is not None else -1
        dev = "(%d:%s%s)" % (major, str(mn) if mn > 0 else "", "0" if mn == 0 else "")
    return _failed_lines(op, name, uuid, dev, e)


def ioctl_error_lines(e, op=None, name=None, uuid=None, major=None, minor=None):
    """The same line for a DmError that names its own request (``e.op``, ``e.name``...,
    falling back to the arguments), then the kernel's reason.  Like libdm it shows
    dmi->name and dmi->uuid: the kernel's (mangled) strings."""
    op = e.op or op or "?"
    name = e.name if e.name is not None else (name or "")
    uuid = e.uuid if e.uuid is not None else (uuid or "")
    maj = e.major if e.major is not None else major
    mnr = e.minor if e.minor is not None else minor
    dev = "(%d:%d)" % (maj, mnr or 0) if maj else ""
    return _failed_lines(op, name, uuid, dev, e)


def _log_lines(policy, lines):
    for line in lines:
        policy.log(LOG_ERR, line)


# ======================================================================== the task

def dm_major(mapper):
    """The device-mapper block major (for libdm's persistent-minor fallback): the
    backend's (Mapper.dm_major), 0 when it has none."""
    return mapper.dm_major


def _default_policy():
    from dmctl.libdm.udev import UdevPolicy
    return UdevPolicy()


class Task:
    """A dm_task: what one request names and carries.

    ``op``: libdm's name of the ioctl as its error line shows it: ``create``,
    ``reload``, ``resume``, ``suspend``, ``remove``, ``remove_all``, ``rename``,
    ``clear``, ``message``, ``info``, ``table``, ``status``, ``deps``, ``waitevent``,
    ``setgeometry``, ``mknodes`` (may be set after the device, as dmsetup's
    ``_set_task_device`` fills in a task).  ``name``/``uuid`` are in kernel form;
    ``major``/``minor`` are -1 when unset; ``fallback`` is libdm's
    ``allow_default_major_fallback`` (cleared by ``dm_task_set_major``).

    Flags: ``read_only``, ``noflush``, ``nolockfs``, ``deferred``, ``retry`` (a remove
    retries EBUSY, ``--retry``), ``query_inactive`` (DM_QUERY_INACTIVE_TABLE_FLAG).
    Arguments: ``table`` ([TargetLine] as written, for create and reload),
    ``new_name`` and ``set_uuid`` (rename: the new name, or uuid with ``set_uuid``),
    ``event_nr`` (waitevent), ``sector`` and ``message``, ``geometry`` (four strings),
    ``read_ahead`` (``--readahead``'s ``(kind, n)``, applied after a resume).
    """

    __slots__ = ("op", "name", "uuid", "major", "minor", "fallback", "read_only",
                 "noflush", "nolockfs", "deferred", "retry", "query_inactive", "table",
                 "new_name", "set_uuid", "event_nr", "sector", "message", "geometry",
                 "read_ahead", "info", "result", "error")

    def __init__(self, op=None, name=None, uuid=None, major=-1, minor=-1, fallback=True):
        self.op = op
        self.name = name
        self.uuid = uuid
        self.major = major
        self.minor = minor
        self.fallback = fallback
        self.read_only = self.noflush = self.nolockfs = self.deferred = False
        self.retry = self.query_inactive = self.set_uuid = False
        self.table = None
        self.new_name = None
        self.event_nr = 0
        self.sector = 0
        self.message = ""
        self.geometry = None
        self.read_ahead = None
        self.info = self.result = self.error = None

    def copy_device(self, op, fallback=None):
        """A new task of type ``op`` for the same name, major and minor (no uuid)."""
        return Task(op, name=self.name, major=self.major, minor=self.minor,
                    fallback=self.fallback if fallback is None else fallback)

    def error_lines(self, e):
        """libdm's lines for DmError ``e`` of this task."""
        return task_error_lines(e, self.op, self.name or "", self.uuid or "", self.major,
                                self.minor)

    # ------------------------------------------------------------------ _flatten
    def flatten(self, mapper, policy):
        """libdm ``_flatten``: check the persistent device number and choose how the
        kernel will look the device up.  -> DevId, or None (error logged)."""
        from dmctl.records import DevId
        if self.minor is not None and self.minor >= 0:
            if self.fallback:
                dmj = dm_major(mapper)
                if self.major != dmj:
                    self.major = dmj
            if self.major is None or self.major <= 0:
                policy.err("Missing major number for persistent device.")
                policy.err("Couldn't create ioctl argument.")
                return None
        name_sent = bool(self.name) and (self.op not in ("resume", "reload")
                                         or self.minor < 0 or self.major < 0)
        persistent = self.minor is not None and self.minor >= 0
        # Everything the ioctl carries: the kernel looks up by uuid, else name, else
        # dev, and refuses a request naming the device twice (uuid or name plus a dev)
        # - libdm sends that for a remove with -j/-m, which is how its create revert
        # can fail.
        return DevId(name=self.name if name_sent else None, uuid=self.uuid or None,
                     major=self.major if persistent else None,
                     minor=self.minor if persistent else None)

    # ------------------------------------------------------------------ dm_task_run
    def run(self, mapper, policy=None):
        """``dm_task_run``: the ioctl, with the udev cookie and node operations of a
        uevent-generating one, the wait for udev at the end (unless the policy's
        cookie belongs to the caller), ``--readahead`` after a resume.  ``create``
        with a ``table`` is libdm's create-and-load.  -> True or False."""
        if policy is None:
            policy = _default_policy()
        op = self.op
        if op == "create" and self.table:
            return _create_and_load(self, mapper, policy)
        if op == "mknodes":
            return _mknodes(self, mapper, policy)
        if op == "create":
            ok = self._ioctl(mapper, policy)
            if ok and policy.add_node_on_create and not nodes.relies_on_udev(
                    policy.udev_flags()):
                nodes.add_node(policy, self.name, self.info.major, self.info.minor,
                               policy.uid, policy.gid, policy.mode)
            return ok
        if op not in _UEVENT_OPS:
            return self._ioctl(mapper, policy)
        cookie = nodes.sync_begin(policy, policy.udev_flags(), op)
        ok = self._ioctl(mapper, policy, cookie)
        if ok:
            nodes.sync_done(policy, cookie, self.info)
            if op == "remove":
                nodes.remove_node(policy, self.name, cookie)
            elif op == "rename":
                if not self.set_uuid:
                    nodes.rename_node(policy, self.name, self.new_name, cookie)
            elif self.info is not None:
                self._after_resume(mapper, policy, cookie, None, None, None)
        if not policy.user_cookie():
            nodes.sync_wait(policy, cookie)
        return ok

    def _after_resume(self, mapper, policy, cookie, uid, gid, mode):
        if not policy.add_node_on_create:
            nodes.add_node(policy, self.name, self.info.major, self.info.minor, uid, gid,
                           mode, cookie)
        if self.read_ahead:
            nodes.set_read_ahead(mapper, self.info, self.read_ahead)

    def _ioctl(self, mapper, policy, cookie=0):
        """One ioctl: _flatten, the call, libdm's error line; a failure completes
        ``cookie``.  A remove with ``retry`` is repeated on EBUSY (DM_IOCTL_RETRIES
        times, DM_RETRY_DELAY apart), each failure logged."""
        self.error = None
        dev = None
        if self.op != "remove_all":
            dev = self.flatten(mapper, policy)
            if dev is None:
                nodes.sync_complete(policy, cookie)
                return False
        tries = 1
        while True:
            try:
                res = self._call(mapper, dev, cookie)
            except DmError as e:
                self.error = e
                if e.errno == ENXIO and self.op in _EXISTS_OPS:
                    self.info = self.result = None      # the device does not exist
                    return True
                _log_lines(policy, self.error_lines(e))
                if (e.errno == EBUSY and self.op == "remove" and self.retry
                        and tries < DM_IOCTL_RETRIES):
                    tries += 1
                    time.sleep(DM_RETRY_DELAY)
                    continue
                nodes.sync_complete(policy, cookie)
                return False
            self.result = res
            if isinstance(res, tuple):
                self.info = res[0]
            elif self.op not in _NO_INFO_OPS:
                self.info = res
            return True

    def _call(self, m, dev, cookie):
        op = self.op
        if op == "suspend":
            return m.suspend(dev, noflush=self.noflush, nolockfs=self.nolockfs)
        if op == "resume":
            return m.resume(dev, noflush=self.noflush, nolockfs=self.nolockfs,
                            cookie=cookie, readonly=self.read_only)
        if op == "clear":
            return m.clear(dev)
        if op == "remove":
            return m.remove(dev, deferred=self.deferred, cookie=cookie)
        if op == "remove_all":
            return m.remove_all(deferred=self.deferred)
        if op == "rename":
            return m.rename(dev, self.new_name, set_uuid=self.set_uuid, cookie=cookie)
        if op == "reload":
            from dmctl.libdm.table import to_ioctl
            return m.load(dev, to_ioctl(self.table), readonly=self.read_only)
        if op == "create":
            return m.create(self.name, uuid=self.uuid or None,
                            minor=self.minor if self.minor >= 0 else None,
                            readonly=self.read_only)
        if op == "waitevent":
            return m.wait_event(dev, self.event_nr, inactive=self.query_inactive,
                                noflush=self.noflush)
        if op == "message":
            return m.message(dev, self.sector, self.message)
        if op == "setgeometry":
            return m.set_geometry(dev, *self.geometry)
        if op == "info":
            return m.info(dev, inactive=True) if self.query_inactive else m.info(dev)
        if op == "table":
            return m.table(dev, inactive=self.query_inactive)
        if op == "status":
            return m.status(dev, inactive=self.query_inactive, noflush=self.noflush)
        if op == "deps":
            return m.deps(dev, inactive=self.query_inactive)
        raise ValueError("unknown task op %r" % op)


# ======================================================================== create

def _create_and_load(dmt, mapper, policy):
    """libdm ``_create_and_load_v4``: DM_DEV_CREATE, DM_TABLE_LOAD by major:minor, then
    the resume with the original task (uuid dropped), all under one udev cookie set
    on the create task; a failed load or resume removes the device again, so bad input
    leaves nothing behind.  The wait for udev comes last."""
    flags = policy.udev_flags()
    user_cookie = policy.user_cookie()
    cookie = nodes.sync_begin(policy, flags, "create")
    ok = _create_load_resume(dmt, mapper, policy, cookie, flags)
    if not user_cookie:
        nodes.sync_wait(policy, cookie)
    return ok


def _create_load_resume(dmt, mapper, policy, cookie, flags):
    # A fresh create task: name, uuid, major/minor copied, the major fallback on.
    ct = Task("create", name=dmt.name, uuid=dmt.uuid, major=dmt.major, minor=dmt.minor)
    if not ct._ioctl(mapper, policy, cookie):
        dmt.error = ct.error
        return False
    info = ct.info
    if policy.add_node_on_create and not nodes.relies_on_udev(flags):
        nodes.add_node(policy, dmt.name, info.major, info.minor, policy.uid, policy.gid,
                       policy.mode)
    # Load the table by major:minor (the name only for messages).
    lt = Task("reload", name=dmt.name, major=info.major, minor=info.minor,
              fallback=False)
    lt.table = dmt.table
    lt.read_only = dmt.read_only
    if lt._ioctl(mapper, policy, cookie):
        # Resume with the original task, uuid dropped.
        rt = dmt.copy_device("resume")
        rt.noflush, rt.nolockfs, rt.read_only = dmt.noflush, dmt.nolockfs, dmt.read_only
        rt.read_ahead = dmt.read_ahead
        if rt._ioctl(mapper, policy, cookie):
            nodes.sync_done(policy, cookie, rt.info)
            rt._after_resume(mapper, policy, cookie, policy.uid, policy.gid, policy.mode)
            dmt.info, dmt.result = rt.info, rt.result
            return True
        dmt.error = rt.error
    else:
        dmt.error = lt.error
    # Revert: remove the device again with the same task.
    vt = dmt.copy_device("remove")
    if not vt._ioctl(mapper, policy):
        policy.err("Failed to revert device creation.")
    return False


# ======================================================================== mknodes

def _mknodes(t, mapper, policy):
    """``dm_mknodes``: make ``$DM_DEV_DIR/mapper`` match the kernel (one device with a
    name, else all); without device nodes (the simulator) only the query, so that a
    kernel that cannot be asked still fails the command."""
    name = t.name
    if policy.uevents:
        from dmctl.libdm import udev
        try:
            return bool(udev.mknodes(policy, mapper, name))
        except DmError as e:
            t.error = e
            _log_lines(policy, ioctl_error_lines(e, op="mknodes" if name else "names",
                                                 name=name or ""))
            return False
    try:
        if name is None:
            mapper.list_devices()
        else:
            try:
                mapper.info(name)
            except DmError as e:
                if e.errno != ENXIO:    # "does not exist" is not an error
                    raise
    except DmError as e:
        t.error = e
        _log_lines(policy, task_error_lines(e, "names" if name is None else "mknodes",
                                            name=name or ""))
        return False
    return True
