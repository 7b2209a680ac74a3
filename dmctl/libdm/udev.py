"""udev synchronisation and /dev/mapper node management: libdm/libdm-common.c's udev
support (``dm_udev_get_sync_support``, ``_check_udev_sync_requirements_once``,
``dm_task_set_cookie``, ``_udev_complete``, ``dm_udev_wait``, ``_stack_node_op``,
``update_devs``, ``_add_dev_node``/``_rm_dev_node``/``_rename_dev_node``) and
dmsetup.c's udev flag policy (``_set_up_udev_support``, ``_udev_only``), with dmctl's
timeout.

The only module that imports pyudev, and only inside functions.  Nothing here reads a
command line or prints: a :class:`UdevPolicy`, built once by the program (the CLI:
``Ctx.udev_policy()``), carries the settings and the log callback.

* :class:`UdevPolicy` -- dmsetup's udev switches and the environment as libdm sees
  them, the node directory, whether the backend sends uevents, the log callback.
* :func:`sync_support` -- libdm's ``dm_udev_get_sync_support``: not ``DM_DISABLE_UDEV``,
  SysV semaphores available, udev running (``/run/udev/control`` exists, the test
  libudev's ``udev_queue_get_udev_is_active`` makes) and no ``--noudevsync``.
* :class:`UdevTransaction` -- one command's udev transaction: dmsetup's flag policy
  (``--noudevrules``, ``--verifyudev``, ``--udevcookie``/``DM_UDEV_COOKIE``,
  ``DM_DISABLE_UDEV``, DISABLE_LIBRARY_FALLBACK, PRIMARY_SOURCE), the value for the
  ioctl's ``event_nr``, completing the cookie itself when the kernel sent no uevent,
  a wait that gives up after ``--udevtimeout`` seconds and says what it waited for, and
  libdm's node operations (queued, run after the wait, exactly when libdm runs them).
* :func:`add_node`, :func:`rm_node`, :func:`rename_node`, :func:`mknodes` -- the
  ``$DM_DEV_DIR/mapper/NAME`` block nodes libdm makes when udev does not.

With the simulator backend there are no uevents and no device numbers to make nodes
for: transactions are no-ops there.  dmctl.libdm.nodes runs these around a task's
ioctl (libdm's dm_task_run).
"""

import errno as _errno
import os
import stat as _stat

from dmctl.constants import DM_DEFERRED_REMOVE, DM_UEVENT_GENERATED_FLAG
from dmctl.libdm import cookie as _ck
from dmctl.libdm.log import LOG_DEBUG, LOG_ERR, to_logging

UDEV_CONTROL = "/run/udev/control"
UDEV_DEV_DIR = "/dev/"

# libdm's compile-time node defaults (upstream configure: --with-device-uid=0,
# --with-device-gid=0, --with-device-mode=0600).  Debian builds with gid 6 (disk), 0660.
# Debian's dmsetup makes nodes 0660 root:disk (golden/udev-disabled-ls-dev-mapper.txt);
# upstream's configure default is 0600 root:root.  dmctl follows the system it replaces.
DEFAULT_UID = 0


def _disk_gid():
    try:
        import grp
        return grp.getgrnam("disk").gr_gid
    except (ImportError, KeyError):
        return 0


DEFAULT_GID = _disk_gid()
DEFAULT_MODE = 0o660

TIMEOUT_ENV = "DMCTL_UDEV_TIMEOUT"

# dm task numbers as libdm's debug line shows them ("assigned to RESUME task(5)")
_TASK_TYPES = {"create": ("CREATE", 0), "remove": ("REMOVE", 2), "resume": ("RESUME", 5),
               "rename": ("RENAME", 8)}
# the uevent the kernel sends for each (dm_kobject_uevent)
_UEVENT_ACTION = {"create": "change", "resume": "change", "rename": "change",
                  "remove": "remove"}


# --------------------------------------------------------------------------------------
# environment
# --------------------------------------------------------------------------------------

def udev_running():
    """libudev's udev_queue_get_udev_is_active(): the control socket exists."""
    return os.access(UDEV_CONTROL, os.F_OK)


def udev_disabled():
    """``DM_DISABLE_UDEV`` is set (to anything, as libdm's getenv test)."""
    return os.environ.get("DM_DISABLE_UDEV") is not None


class UdevPolicy:
    """libdm's udev and node settings for one program run, built once (the CLI:
    ``Ctx.udev_policy()``, from dmsetup's switches) and given to every udev and node
    operation of dmctl.libdm.

    ``uevents``: the backend sends uevents and has device nodes (the kernel, not the
    simulator); a callable is asked once, when first needed.  ``dev_dir``:
    ``$DM_DEV_DIR``.  ``noudevsync``, ``verifyudev``, ``noudevrules``: dmsetup's
    switches.  ``udevcookie``: the ``--udevcookie`` value (0: none; ``DM_UDEV_COOKIE``
    is read when needed).  ``udevtimeout``: the ``--udevtimeout`` text (None:
    ``DMCTL_UDEV_TIMEOUT``, else 30 s).  ``uid``, ``gid``, ``mode``: the node of a
    created device (``-U``/``-G``/``-M``; None: libdm's defaults).
    ``add_node_on_create``: ``--addnodeoncreate``.  ``log``: ``log(level, text)``
    receives libdm's messages (levels of dmctl.libdm.log; default: Python's logging).

    It also keeps what libdm keeps per process: the results of the udev checks (made
    once, with their messages), and ``tx``, the open UdevTransaction.
    """

    __slots__ = ("_uevents", "dev_dir", "noudevsync", "verifyudev", "noudevrules",
                 "udevcookie", "udevtimeout", "uid", "gid", "mode", "add_node_on_create",
                 "log", "tx", "_checks")

    def __init__(self, uevents=False, dev_dir=UDEV_DEV_DIR, noudevsync=False,
                 verifyudev=False, noudevrules=False, udevcookie=0, udevtimeout=None,
                 uid=None, gid=None, mode=None, add_node_on_create=False, log=None):
        self._uevents = uevents
        self.dev_dir = dev_dir
        self.noudevsync = noudevsync
        self.verifyudev = verifyudev
        self.noudevrules = noudevrules
        self.udevcookie = udevcookie
        self.udevtimeout = udevtimeout
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.add_node_on_create = add_node_on_create
        self.log = log or to_logging
        self.tx = None
        self._checks = None

    @property
    def uevents(self):
        u = self._uevents
        if callable(u):
            try:
                u = bool(u())
            except Exception:       # no backend: nothing to synchronise with
                u = False
            self._uevents = u
        return u

    def err(self, msg):
        """libdm's log_error."""
        self.log(LOG_ERR, msg)

    def debug(self, msg):
        """libdm's log_debug (dmsetup prints it on stdout from -vvv on)."""
        self.log(LOG_DEBUG, msg)

    def user_cookie(self):
        """A transaction cookie came from ``--udevcookie`` or ``DM_UDEV_COOKIE``: then
        nobody waits at the end of a task (the caller will)."""
        if self.udevcookie:
            return True
        env = os.environ.get("DM_UDEV_COOKIE")
        if not env:
            return False
        from dmctl.libdm.cookies import parse_cookie
        return bool(parse_cookie(env))

    def udev_flags(self):
        """dmsetup's udev flags for create/resume/remove/rename: ``--noudevrules`` and
        ``_udev_only`` (DM_DEV_DIR is /dev and (cookie supplied or no --verifyudev)).
        0 where nothing would use them (the simulator)."""
        if not self.uevents:
            return 0
        flags = 0
        if self.noudevrules:
            flags |= _ck.DM_UDEV_DISABLE_DM_RULES_FLAG | _ck.DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG
        if dev_dir(self) == UDEV_DEV_DIR and (self.user_cookie() or not self.verifyudev):
            flags |= _ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK
        return flags


class _Checks:
    """Per-run results of libdm's _check_udev_sync_requirements_once."""
    __slots__ = ("sem", "running", "disabled")


def _state(policy):
    st = policy._checks
    if st is None:
        st = _Checks()
        st.disabled = udev_disabled()
        # libdm asks semctl(SEM_INFO); /proc/sys/kernel/sem exists exactly when the
        # kernel has System V IPC, and looking at it spares loading ctypes (libc) in
        # commands that end up not using a cookie (no udevd, DM_DISABLE_UDEV)
        st.sem = os.path.exists("/proc/sys/kernel/sem") or _ck.semaphores_supported()
        if not st.sem:
            policy.err("Kernel not configured for semaphores (System V IPC). "
                       "Not using udev synchronisation code.")
        st.running = udev_running()
        if not st.running:
            policy.debug("Udev is not running. Not using udev synchronisation code.")
        elif st.disabled:
            policy.err("Udev is running and DM_DISABLE_UDEV environment variable is set. "
                       "Bypassing udev, device-mapper library will manage device nodes in "
                       "device directory.")
        policy._checks = st
    return st


def sync_support(policy):
    """dm_udev_get_sync_support() for this run (``--noudevsync`` included)."""
    st = _state(policy)
    return (not st.disabled and st.sem and st.running
            and not policy.noudevsync)


def external_cookie(policy):
    """The cookie of an outer transaction: ``--udevcookie`` or ``DM_UDEV_COOKIE``
    (dmsetup's _set_up_udev_support), or 0."""
    if policy.udevcookie:
        policy.debug("Using udev transaction 0x%08X defined by --udevcookie option."
                     % policy.udevcookie)
        return policy.udevcookie
    env = os.environ.get("DM_UDEV_COOKIE")
    if env:
        from dmctl.libdm.cookies import parse_cookie
        c = parse_cookie(env)
        if c is None:
            policy.err("Incorrect cookie value.")
            return 0
        policy.debug("Using udev transaction 0x%08X defined by DM_UDEV_COOKIE "
                     "environment variable." % c)
        return c
    return 0


def dev_dir(policy):
    d = policy.dev_dir or UDEV_DEV_DIR
    return d if d.endswith("/") else d + "/"


def get_timeout(policy):
    """Seconds to wait for udev: ``--udevtimeout``, else ``DMCTL_UDEV_TIMEOUT``, else
    30.  Raises ValueError (with the message to print) for a bad --udevtimeout."""
    v = policy.udevtimeout
    if v is not None:
        t = _parse_timeout(v)
        if t is None:
            raise ValueError("Invalid --udevtimeout value '%s': expected a positive "
                             "number of seconds." % v)
        return t
    env = os.environ.get(TIMEOUT_ENV)
    if env:
        t = _parse_timeout(env)
        if t is not None:
            return t
        policy.err("Ignoring invalid %s value '%s'; waiting at most %g seconds."
                   % (TIMEOUT_ENV, env, _ck.DEFAULT_TIMEOUT))
    return _ck.DEFAULT_TIMEOUT


def _parse_timeout(s):
    try:
        t = float(s)
    except (TypeError, ValueError):
        return None
    if not (t > 0) or t != t or t > 10 ** 7:
        return None
    return t


# --------------------------------------------------------------------------------------
# the transaction
# --------------------------------------------------------------------------------------

class UeventTask:
    """One uevent-generating ioctl within a transaction (resume, remove, rename, or the
    internal resume of ``create``).  Pass ``event_nr`` as the backend's ``cookie=``,
    then call :meth:`done` with the reply's DeviceInfo, or :meth:`failed`."""

    __slots__ = ("tx", "op", "name", "new_name", "major", "minor", "uid", "gid", "mode",
                 "flags", "event_nr", "uses_sem", "state", "add_node", "set_uuid")

    def __init__(self, tx, op, name, new_name, major, minor, flags):
        self.tx = tx
        self.op = op
        self.name = name
        self.new_name = new_name
        self.major = major
        self.minor = minor
        self.flags = flags
        self.event_nr = 0
        self.uses_sem = False
        self.state = "pending"      # pending / uevent / completed / failed
        self.add_node = True
        self.set_uuid = False
        self.uid = self.gid = self.mode = None

    def done(self, info=None, uevent=None):
        """The ioctl succeeded.  ``info`` is the reply (DeviceInfo: its flags tell
        whether the kernel sent a uevent, its name/devno complete the node operation);
        ``uevent`` overrides the flag test.  Completes the cookie when no uevent went
        out and queues libdm's node operation."""
        tx = self.tx
        if info is not None:
            if getattr(info, "name", None) and self.op != "rename":
                self.name = info.name
            if getattr(info, "major", None):
                self.major, self.minor = info.major, info.minor
            if uevent is None:
                uevent = bool(getattr(info, "flags", 0) & DM_UEVENT_GENERATED_FLAG)
        if uevent is None:
            uevent = True
        if tx.inactive:
            self.state = "completed"
            return True
        if self.uses_sem and not uevent:
            self.state = "completed"
            tx._complete_one()
        else:
            self.state = "uevent" if uevent else "completed"
        tx._stack_for(self, info)
        return True

    def failed(self):
        """The ioctl failed: libdm completes the cookie itself (_udev_complete)."""
        if self.state == "pending" and self.uses_sem and not self.tx.inactive:
            self.tx._complete_one()
        self.state = "failed"


class UdevTransaction:
    """One command's udev transaction (dmsetup's per-command cookie), under ``policy``
    (a UdevPolicy).

    ``uevents``: whether the backend generates uevents (default: the policy's).  Use
    as a context manager or call :meth:`finish` at the end; ``finish`` waits for udev
    (unless the cookie came from ``--udevcookie``/``DM_UDEV_COOKIE``), never longer
    than the timeout, then runs the queued node operations.  Raises ValueError (the
    message to print) for a bad ``udevtimeout``.
    """

    def __init__(self, policy, uevents=None):
        self.policy = policy
        if uevents is None:
            uevents = policy.uevents
        self.inactive = not uevents
        self.tasks = []
        self.node_ops = []
        self.cookie = 0
        self.semid = None
        self.own_cookie = False
        self.finished = False
        self.wait_result = None
        self.error = False
        if self.inactive:
            self.sync = False
            self.external = 0
            self.udev_only = True
            self.checking = False
            self.disabled = False
            self.timeout = _ck.DEFAULT_TIMEOUT
            return
        self.timeout = get_timeout(policy)     # ValueError: caller reports it
        self.sync = sync_support(policy)
        self.disabled = _state(policy).disabled
        self.external = external_cookie(policy)
        ddir = dev_dir(policy)
        same_dir = ddir == UDEV_DEV_DIR
        if not same_dir:
            policy.debug("The path %s used for creating device nodes that is set via "
                         "DM_DEV_DIR environment variable differs from the path %s that "
                         "is used by udev. All warnings about udev not working correctly "
                         "while processing particular nodes will be suppressed. These "
                         "nodes and symlinks will be managed in each directory "
                         "separately." % (ddir, UDEV_DEV_DIR))
        # dmsetup: _udev_only = !dirs_diff && (_udev_cookie || !--verifyudev)
        self.udev_only = same_dir and bool(self.external or not policy.verifyudev)
        self.checking = same_dir
        if self.external:
            self.cookie = self.external

    # ------------------------------------------------------------------ flags
    def flags(self, extra=0):
        """The 16 udev flags dmsetup and libdm put on a task (before the base)."""
        f = extra & 0xFFFF
        if self.policy.noudevrules:
            f |= _ck.DM_UDEV_DISABLE_DM_RULES_FLAG | _ck.DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG
        if self.udev_only:
            f |= _ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK
        return f

    def _effective(self, f):
        # libdm _set_cookie_flags (DM_DISABLE_UDEV) and libdm-iface (PRIMARY_SOURCE)
        if self.disabled:
            f &= ~_ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK
            f |= _ck.DM_UDEV_DISABLE_DM_RULES_FLAG | _ck.DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG
        return f | _ck.DM_UDEV_PRIMARY_SOURCE_FLAG

    # ------------------------------------------------------------------ tasks
    def begin(self, op="resume", name=None, new_name=None, major=None, minor=None,
              flags=0, set_uuid=False, uid=None, gid=None, mode=None, sync=True):
        """Before a uevent-generating ioctl (libdm's dm_task_set_cookie): -> UeventTask
        whose ``event_nr`` goes into the ioctl (``cookie=``).  ``op``: the task the
        cookie is set on, ``resume``, ``remove``, ``rename`` or ``create`` (= the
        resume inside ``dmsetup create`` with a table: -U/-G/-M and --addnodeoncreate
        apply).  ``flags``: extra udev flags (e.g. subsystem flags).  ``sync`` False:
        flags only, no semaphore (dmsetup's ``create --notable``).  Returns None when
        the cookie could not be set up (libdm's error was logged; the command fails
        as dmsetup's does)."""
        if op not in _TASK_TYPES:
            raise ValueError("unknown udev task %r" % op)
        t = UeventTask(self, op, name, new_name, major, minor, 0)
        t.set_uuid = set_uuid
        policy = self.policy
        if op == "create":
            t.uid = uid if uid is not None else policy.uid
            t.gid = gid if gid is not None else policy.gid
            t.mode = mode if mode is not None else policy.mode
            t.add_node = not policy.add_node_on_create
        else:
            t.uid, t.gid, t.mode = uid, gid, mode
        self.tasks.append(t)
        if self.inactive:
            return t
        f16 = self.flags(flags)
        t.flags = self._effective(f16)
        base = 0
        if self.sync and sync:
            if not self.cookie:
                c, semid = _ck.create(policy.err, policy.debug)
                if not c:
                    return self._set_cookie_failed(t)
                self.cookie, self.semid, self.own_cookie = c, semid, True
            elif self.semid is None:
                semid = _ck.get_cookie_sem(self.cookie, policy.err)
                if semid is None:
                    return self._set_cookie_failed(t)
                self.semid = semid
            if not _ck.sem_inc(self.cookie, self.semid, policy.err, policy.debug):
                policy.err("Could not set notification semaphore identified by cookie "
                           "value %u (0x%x)" % (self.cookie, self.cookie))
                return self._set_cookie_failed(t)
            base = self.cookie & 0xFFFF
            t.uses_sem = True
            typ, num = _TASK_TYPES[op]
            policy.debug("Udev cookie 0x%x (semid %d) assigned to %s task(%d) with "
                         "flags%s (0x%x)" % (self.cookie, self.semid, typ, num,
                                             _flag_words(f16), f16))
        t.event_nr = (t.flags << 16) | base
        return t

    def _set_cookie_failed(self, t):
        self.error = True
        t.state = "failed"
        return None

    def _complete_one(self):
        _ck.complete(_ck.cookie_key(self.cookie), self.policy.err, self.policy.debug)

    # ------------------------------------------------------------------ nodes
    def _stack_for(self, t, info):
        """libdm's dm_task_run node bookkeeping for a finished task."""
        check_udev = not (t.flags & _ck.DM_UDEV_DISABLE_DM_RULES_FLAG)
        rely = bool(t.flags & _ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK)
        if t.op in ("resume", "create"):
            if t.add_node and t.name and t.major is not None:
                self.stack("add", t.name, major=t.major, minor=t.minor, uid=t.uid,
                           gid=t.gid, mode=t.mode, check_udev=check_udev, rely=rely)
        elif t.op == "remove":
            if info is not None and getattr(info, "flags", 0) & DM_DEFERRED_REMOVE:
                return
            if t.name:
                self.stack("del", t.name, check_udev=check_udev, rely=rely)
        elif t.op == "rename":
            if not t.set_uuid and t.name and t.new_name:
                self.stack("rename", t.new_name, old_name=t.name,
                           check_udev=check_udev, rely=rely)

    def stack(self, kind, name, major=None, minor=None, uid=None, gid=None, mode=None,
              old_name="", check_udev=False, rely=False):
        """libdm's _stack_node_op (with its cancellation rules)."""
        if self.inactive:
            return
        if kind == "del" and rely:
            # libdm's _dm_task_node_ops: "if (dev_name && !rely_on_udev) rm_dev_node()";
            # a remove that trusts udev stacks nothing (no NODE_DEL debug lines), unlike
            # the add of a resume and a rename, which are stacked and then skipped.
            return
        ops = self.node_ops
        if kind == "del":
            for op in [o for o in ops if o.name == name]:
                self._log_op("Unstacking", op)
                ops.remove(op)
        elif kind == "add":
            for op in ops:
                if op.kind == "del" and op.name == name:
                    self._log_op("Unstacking", op)
                    ops.remove(op)
                    break
        elif kind == "rename":
            for op in [o for o in ops if o.name == old_name]:
                self._log_op("Unstacking", op)
                ops.remove(op)
        op = _NodeOp(kind, name, major, minor,
                     DEFAULT_UID if uid is None else uid,
                     DEFAULT_GID if gid is None else gid,
                     DEFAULT_MODE if mode is None else mode,
                     old_name, check_udev and not rely, rely)
        ops.append(op)
        self._log_op("Stacking", op)

    def _log_op(self, action, op):
        rely = " [trust_udev]" if op.rely else ""
        verify = " [verify_udev]" if op.warn else ""
        if op.kind == "add":
            msg = "%s: %s NODE_ADD (%d,%d) %d:%d 0%o%s%s" % (
                op.name, action, op.major, op.minor, op.uid, op.gid, op.mode, rely, verify)
        elif op.kind == "del":
            msg = "%s: %s NODE_DEL%s%s" % (op.name, action, rely, verify)
        else:
            msg = "%s: %s NODE_RENAME to %s%s%s" % (op.old_name, action, op.name, rely,
                                                    verify)
        self.policy.debug(msg)

    def _run_node_ops(self):
        ok = True
        warn_possible = self.sync and self.checking
        for op in self.node_ops:
            if op.rely:
                self._log_op("Skipping", op)
                continue
            self._log_op("Processing", op)
            warn = op.warn and warn_possible
            if op.kind == "add":
                ok &= add_node(self.policy, op.name, op.major, op.minor, op.uid, op.gid,
                               op.mode, warn)
            elif op.kind == "del":
                ok &= rm_node(self.policy, op.name, warn)
            else:
                ok &= rename_node(self.policy, op.old_name, op.name, warn)
        self.node_ops = []
        return ok

    # ------------------------------------------------------------------ end
    def finish(self):
        """End of the command: wait for udev (own cookie only, with the timeout), then
        the node operations, then (``--verifyudev``) the udev database check.
        Returns False only when libdm's wait would have failed; a timeout is
        reported on stderr and is not a failure."""
        if self.finished:
            return True
        self.finished = True
        if self.inactive:
            return True
        ok = True
        if self.own_cookie and self.cookie:
            res = _ck.wait(self.cookie, self.timeout, self.policy.err, self.policy.debug)
            self.wait_result = res
            if res.timed_out:
                self._explain_timeout(res)
            ok = bool(res)
        self._run_node_ops()
        if (self.sync and self.policy.verifyudev and self.wait_result is not None
                and not self.wait_result.timed_out):
            self._verify_udev_db()
        return ok

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()
        return False

    def expected_uevents(self):
        return [t for t in self.tasks if t.state == "uevent"]

    def _explain_timeout(self, res):
        err = self.policy.err
        c = self.cookie
        err("Udev cookie 0x%x (semid %s) was not completed within %g s: udev has "
            "not acknowledged %d uevent(s) this command waited for."
            % (c, res.semid, self.timeout, max(res.pending, 0)))
        for t in self.expected_uevents():
            dev = t.name or "?"
            if t.op == "rename":
                dev = "%s (renamed to %s)" % (t.name, t.new_name)
            if t.major is not None:
                dev += " (%d:%d)" % (t.major, t.minor)
            err("  expected: \"%s\" uevent of %s after %s, DM_COOKIE=%u (0x%08x, flags %s)"
                % (_UEVENT_ACTION[t.op], dev, "create" if t.op == "create" else t.op,
                   t.event_nr, t.event_nr, _ck.flag_names(t.flags)))
        err("Is udevd running with the device-mapper rules installed (95-dm-notify.rules "
            "runs \"dmsetup udevcomplete $DM_COOKIE\")? The device-mapper operation "
            "itself succeeded; continuing without udev synchronisation (the cookie's "
            "semaphore was removed).")
        err("Use --udevtimeout SECS or %s to wait longer, --noudevsync not to wait."
            % TIMEOUT_ENV)

    def _verify_udev_db(self):
        for t in self.tasks:
            if t.state != "uevent" or t.op == "remove" or t.major is None:
                continue
            name = t.new_name if t.op == "rename" else t.name
            for problem in check_udev_properties(t.major, t.minor, name):
                self.policy.err(problem)


class _NodeOp:
    __slots__ = ("kind", "name", "major", "minor", "uid", "gid", "mode", "old_name",
                 "warn", "rely")

    def __init__(self, kind, name, major, minor, uid, gid, mode, old_name, warn, rely):
        self.kind = kind
        self.name = name
        self.major = major
        self.minor = minor
        self.uid = uid
        self.gid = gid
        self.mode = mode
        self.old_name = old_name
        self.warn = warn
        self.rely = rely


def _flag_words(f):
    """The flag words of libdm's "assigned to ... task" debug line (sic: subsystem
    flags that are not set print a single space)."""
    words = []
    for bit, name in ((0x1, " DISABLE_DM_RULES"), (0x2, " DISABLE_SUBSYSTEM_RULES"),
                      (0x4, " DISABLE_DISK_RULES"), (0x8, " DISABLE_OTHER_RULES"),
                      (0x10, " LOW_PRIORITY"), (0x20, " DISABLE_LIBRARY_FALLBACK"),
                      (0x40, " PRIMARY_SOURCE")):
        words.append(name if f & bit else "")
    for i in range(8):
        words.append(" SUBSYSTEM_%d" % i if f & (0x100 << i) else " ")
    return "".join(words)


# --------------------------------------------------------------------------------------
# nodes (libdm _add_dev_node / _rm_dev_node / _rename_dev_node)
# --------------------------------------------------------------------------------------

def node_path(policy, name):
    return dev_dir(policy) + "mapper/" + name


def _ensure_mapper_dir(policy):
    d = dev_dir(policy) + "mapper"
    if not os.path.isdir(d):
        old = os.umask(0o022)
        try:
            os.makedirs(d, 0o755, exist_ok=True)
        except OSError:
            pass
        finally:
            os.umask(old)


def _kernel_node(major, minor):
    """``/dev/dm-N`` when it exists and is this device (for DM_DEV_DIR != /dev)."""
    p = "/dev/dm-%d" % minor
    try:
        st = os.stat(p)
    except OSError:
        return None
    if _stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(major, minor):
        return p
    return None


def add_node(policy, name, major, minor, uid=DEFAULT_UID, gid=DEFAULT_GID,
             mode=DEFAULT_MODE, warn_if_udev_failed=False):
    """_add_dev_node: make ``$DM_DEV_DIR/mapper/NAME`` the block device major:minor."""
    path = node_path(policy, name)
    dev = os.makedev(major, minor)
    try:
        st = os.stat(path)
    except OSError:
        st = None
        try:
            if _stat.S_ISLNK(os.lstat(path).st_mode):
                os.unlink(path)         # dangling symlink
        except OSError:
            pass
        if warn_if_udev_failed:
            policy.err("%s not set up by udev: Falling back to direct node creation."
                       % path)
    if st is not None:
        if not _stat.S_ISBLK(st.st_mode):
            policy.err("A non-block device file at '%s' is already present" % path)
            return False
        if st.st_rdev == dev:
            return True
        try:
            os.unlink(path)
        except OSError:
            policy.err("Unable to unlink device node for '%s'" % name)
            return False
    _ensure_mapper_dir(policy)
    if dev_dir(policy) != UDEV_DEV_DIR:
        target = _kernel_node(major, minor)
        if target is not None:
            try:
                os.symlink(target, path)
                policy.debug("Created %s -> %s" % (path, target))
                return True
            except OSError:
                pass            # fall back to a node
    old = os.umask(0)
    try:
        os.mknod(path, _stat.S_IFBLK | (mode & 0o7777), dev)
    except OSError as e:
        if e.errno != _errno.EEXIST:
            policy.err("%s: mknod for %s failed: %s" % (path, name, os.strerror(e.errno)))
            return False
    finally:
        os.umask(old)
    try:
        os.chown(path, uid, gid)
    except OSError as e:
        policy.err("%s: chown failed: %s" % (path, os.strerror(e.errno)))
        return False
    policy.debug("Created %s" % path)
    return True


def rm_node(policy, name, warn_if_udev_failed=False):
    """_rm_dev_node: unlink ``$DM_DEV_DIR/mapper/NAME`` (absent is fine)."""
    path = node_path(policy, name)
    try:
        os.lstat(path)
    except OSError:
        return True
    if warn_if_udev_failed:
        policy.err("Node %s was not removed by udev. Falling back to direct node "
                   "removal." % path)
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != _errno.ENOENT:
            policy.err("Unable to unlink device node for '%s'" % name)
            return False
    policy.debug("Removed %s" % path)
    return True


def rename_node(policy, old_name, new_name, warn_if_udev_failed=False):
    """_rename_dev_node."""
    oldpath = node_path(policy, old_name)
    newpath = node_path(policy, new_name)
    try:
        info = os.lstat(newpath)
    except OSError:
        info = None
    if info is not None:
        if _stat.S_ISLNK(info.st_mode):
            try:
                info = os.stat(newpath)
            except OSError as e:
                policy.err("%s: stat failed: %s" % (newpath, os.strerror(e.errno)))
                return False
        if not _stat.S_ISBLK(info.st_mode):
            policy.err("A non-block device file at '%s' is already present" % newpath)
            return False
        if warn_if_udev_failed:
            if not os.path.lexists(oldpath):
                return True
            policy.err("The node %s should have been renamed to %s by udev but old node "
                       "is still present. Falling back to direct old node removal."
                       % (oldpath, newpath))
            return rm_node(policy, old_name, False)
        try:
            os.unlink(newpath)
        except OSError as e:
            if e.errno == _errno.EPERM:
                return True
            policy.err("Unable to unlink device node for '%s'" % new_name)
            return False
    elif warn_if_udev_failed:
        policy.err("The node %s should have been renamed to %s by udev but new node is "
                   "not present. Falling back to direct node rename." % (oldpath, newpath))
    try:
        os.rename(oldpath, newpath)
    except OSError as e:
        if e.errno != _errno.ENOENT:
            policy.err("Unable to rename device node from '%s' to '%s'"
                       % (old_name, new_name))
            return False
    policy.debug("Renamed %s to %s" % (oldpath, newpath))
    return True


def ensure_control_node(policy):
    """``$DM_DEV_DIR/mapper/control`` (char 10:236, or /proc/misc's minor), 0600."""
    path = dev_dir(policy) + "mapper/control"
    minor = 236
    try:
        with open("/proc/misc") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] == "device-mapper":
                    minor = int(parts[0])
    except (OSError, ValueError):
        pass
    dev = os.makedev(10, minor)
    try:
        st = os.stat(path)
        if _stat.S_ISCHR(st.st_mode) and st.st_rdev == dev:
            return True
        os.unlink(path)
    except OSError:
        pass
    _ensure_mapper_dir(policy)
    old = os.umask(0o177)
    try:
        os.mknod(path, _stat.S_IFCHR | 0o600, dev)
    except OSError as e:
        if e.errno != _errno.EEXIST:
            policy.err("%s: mknod failed: %s" % (path, os.strerror(e.errno)))
            return False
    finally:
        os.umask(old)
    return True


def mknodes(policy, mapper, name=None):
    """dm_mknodes (``dmsetup mknodes [NAME]``) for the kernel backend: make
    ``$DM_DEV_DIR/mapper`` match the kernel.  With a name: node for it, or remove a
    stale node.  Without: every non-control entry of the directory is checked (stale
    ones unlinked), then nodes are made for every kernel device, and the control node
    is (re)created.  Nodes are made with libdm's defaults (mode 0600 root:root); an
    existing node or symlink to the right device is kept.  Backend errors other than
    ENXIO propagate (DmError).  No-op for the simulator."""
    if not mapper.has_device_nodes:
        return True
    from dmctl.errors import DmError
    ok = True

    def one(n):
        try:
            info = mapper.info(n)
        except DmError as e:
            if e.errno in (_errno.ENXIO, _errno.ENODEV):
                return rm_node(policy, n, False)
            raise
        return add_node(policy, info.name or n, info.major, info.minor)

    if name is not None:
        return one(name)
    d = dev_dir(policy) + "mapper"
    try:
        entries = sorted(os.listdir(d))
    except OSError:
        entries = []
    for e in entries:
        if e == "control":
            continue
        ok &= one(e)
    for ent in mapper.list_devices():
        ok &= add_node(policy, ent.name, ent.major, ent.minor)
    ok &= ensure_control_node(policy)
    return ok


# --------------------------------------------------------------------------------------
# pyudev (optional)
# --------------------------------------------------------------------------------------

def udev_properties(major, minor):
    """The udev database properties of block device major:minor (dict), or None when
    pyudev or the device is unavailable."""
    try:
        import pyudev
    except ImportError:
        return None
    try:
        context = pyudev.Context()
        dev = pyudev.Devices.from_device_number(context, "block",
                                                os.makedev(major, minor))
        return dict(dev.properties)
    except Exception:
        return None


def check_udev_properties(major, minor, name=None, uuid=None, props=None):
    """What is missing from udev's view of a dm device after its uevent was processed:
    a list of messages (empty when DM_NAME/DM_UUID match and the dm rules ran, i.e.
    DM_UDEV_RULES_VSN is set).  ``props`` may be given (tests); otherwise pyudev is
    asked, and nothing is reported when pyudev cannot tell."""
    if props is None:
        props = udev_properties(major, minor)
        if props is None:
            return []
    where = "%s (%d:%d)" % (name or "?", major, minor)
    out = []
    if not props.get("DM_UDEV_RULES_VSN"):
        out.append("udev has no DM_UDEV_RULES_VSN for %s: the device-mapper udev rules "
                   "(10-dm.rules) did not run for it." % where)
    if name is not None and props.get("DM_NAME") not in (None, name):
        out.append("udev's DM_NAME for %s is '%s', not '%s'."
                   % (where, props.get("DM_NAME"), name))
    elif name is not None and props.get("DM_NAME") is None and out == []:
        out.append("udev has no DM_NAME for %s." % where)
    if uuid and props.get("DM_UUID") != uuid:
        out.append("udev's DM_UUID for %s is '%s', not '%s'."
                   % (where, props.get("DM_UUID", ""), uuid))
    return out


def udev_flags_of(props):
    """The DM_UDEV_* / DM_SUBSYSTEM_UDEV_* flags set in a property dict, as the
    16-bit value ``udevflags`` would decode."""
    f = 0
    names = ("DM_UDEV_DISABLE_DM_RULES_FLAG", "DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG",
             "DM_UDEV_DISABLE_DISK_RULES_FLAG", "DM_UDEV_DISABLE_OTHER_RULES_FLAG",
             "DM_UDEV_LOW_PRIORITY_FLAG", "DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG",
             "DM_UDEV_PRIMARY_SOURCE_FLAG", "DM_UDEV_FLAG7")
    for i, n in enumerate(names):
        if props.get(n) == "1":
            f |= 1 << i
    for i in range(8):
        if props.get("DM_SUBSYSTEM_UDEV_FLAG%d" % i) == "1":
            f |= 0x100 << i
    return f
