"""libdm-compatible udev cookies: SysV semaphores through ctypes (libdm/libdm-common.c's
``_udev_notify_sem_create``/``_inc``/``_dec``/``_destroy``, ``_udev_wait``,
``dm_udev_complete``; dmsetup.c's ``udevcookies`` and ``udevcomplete_all`` walks).

A cookie is a 32-bit value.  Its upper 16 bits carry udev rule flags (``udevflags``),
its lower 16 bits (the *base*) name a SysV semaphore whose IPC key is
``DM_COOKIE_MAGIC << 16 | base``.  The protocol is libdevmapper's (libdm-common.c,
1.02.185) so that a cookie created here is released by the system's
``dmsetup udevcomplete`` (run by udev's 95-dm-notify.rules) and vice versa:

1. create: ``semget(key, 1, 0600|IPC_CREAT|IPC_EXCL)`` with a random non-zero base from
   /dev/urandom (another one on EEXIST), value set to 1;
2. before each uevent-generating ioctl: +1 (value 2, 3, ...);
3. udev (or we, when the ioctl failed or the kernel sent no uevent): -1 with IPC_NOWAIT;
4. wait: own -1, then wait for zero, then IPC_RMID.  EIDRM (somebody ran
   ``udevcomplete_all``) counts as success.

Unlike libdm, the wait for zero has a time limit (``semtimedop``): dmctl never hangs on
a lost uevent.

Only the standard library is used (ctypes); this module is imported by the
``udevcomplete``/``udevflags`` commands that udev runs for every dm uevent, so it keeps
its import cost low.  64-bit Linux layouts of ``struct semid_ds``/``seminfo``.
"""

import errno as _errno
import os
import sys
import time

from dmctl.errors import DmctlError
# libdevmapper's cookie magic and udev flags (the upper 16 bits of a cookie)
from dmctl.constants import (  # noqa: F401
    DM_COOKIE_MAGIC, DM_SUBSYSTEM_UDEV_FLAG0, DM_SUBSYSTEM_UDEV_FLAG1,
    DM_SUBSYSTEM_UDEV_FLAG2, DM_SUBSYSTEM_UDEV_FLAG3, DM_SUBSYSTEM_UDEV_FLAG4,
    DM_SUBSYSTEM_UDEV_FLAG5, DM_SUBSYSTEM_UDEV_FLAG6, DM_SUBSYSTEM_UDEV_FLAG7,
    DM_UDEV_DISABLE_DISK_RULES_FLAG, DM_UDEV_DISABLE_DM_RULES_FLAG,
    DM_UDEV_DISABLE_LIBRARY_FALLBACK, DM_UDEV_DISABLE_OTHER_RULES_FLAG,
    DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG, DM_UDEV_FLAGS_MASK, DM_UDEV_FLAGS_SHIFT,
    DM_UDEV_LOW_PRIORITY_FLAG, DM_UDEV_PRIMARY_SOURCE_FLAG)

# dmsetup's _udevflags names for bits 0..6
_DM_FLAG_NAMES = ("DISABLE_DM_RULES", "DISABLE_SUBSYSTEM_RULES", "DISABLE_DISK_RULES",
                  "DISABLE_OTHER_RULES", "LOW_PRIORITY", "DISABLE_LIBRARY_FALLBACK",
                  "PRIMARY_SOURCE")

# <sys/ipc.h>, <sys/sem.h> (Linux)
IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_NOWAIT = 0o4000
IPC_RMID = 0
IPC_SET = 1
IPC_STAT = 2
GETVAL = 12
SETVAL = 16
SEM_STAT = 18
SEM_INFO = 19

DEFAULT_TIMEOUT = 30.0


def udevflags_lines(cookie):
    """dmsetup udevflags: one ``KEY='1'`` line per flag bit of the upper 16 bits."""
    flags = (cookie >> DM_UDEV_FLAGS_SHIFT) & 0xFFFF
    out = []
    for i in range(DM_UDEV_FLAGS_SHIFT):
        if flags & (1 << i):
            if i < 8 and i < len(_DM_FLAG_NAMES):
                out.append("DM_UDEV_%s_FLAG='1'" % _DM_FLAG_NAMES[i])
            elif i < 8:
                out.append("DM_UDEV_FLAG%d='1'" % i)
            else:
                out.append("DM_SUBSYSTEM_UDEV_FLAG%d='1'" % (i - 8))
    return out


def flag_names(flags):
    """Short names of the 16-bit flags (for messages): ``DISABLE_DM_RULES|...``."""
    names = []
    for i in range(16):
        if flags & (1 << i):
            if i < len(_DM_FLAG_NAMES):
                names.append(_DM_FLAG_NAMES[i])
            elif i < 8:
                names.append("FLAG%d" % i)
            else:
                names.append("SUBSYSTEM_%d" % (i - 8))
    return "|".join(names) or "none"


def cookie_key(cookie):
    """The semaphore key libdm uses for a cookie (flags replaced by the magic)."""
    return (DM_COOKIE_MAGIC << DM_UDEV_FLAGS_SHIFT) | (cookie & 0xFFFF)


# --------------------------------------------------------------------------------------
# libc
# --------------------------------------------------------------------------------------

# struct semid_ds (x86_64 / generic 64-bit): ipc_perm is 48 bytes: __key, uid, gid, cuid,
# cgid, mode (4 bytes each), __seq, __pad2 (2 each), 2 reserved longs; then sem_otime,
# reserved, sem_ctime, reserved, sem_nsems, 2 reserved.
_SEMID_DS_SIZE = 104
_OFF_KEY = 0
_OFF_UID = 4
_OFF_MODE = 20
_OFF_OTIME = 48
_OFF_CTIME = 64
_OFF_NSEMS = 80

_libc = None
ctypes = None           # imported on first use: udevflags needs no libc
_Sembuf = _Timespec = None


def _lib():
    global _libc, ctypes, _Sembuf, _Timespec
    if _libc is None:
        import ctypes as _ct

        class Sembuf(_ct.Structure):
            _fields_ = [("sem_num", _ct.c_ushort), ("sem_op", _ct.c_short),
                        ("sem_flg", _ct.c_short)]

        class Timespec(_ct.Structure):
            _fields_ = [("tv_sec", _ct.c_long), ("tv_nsec", _ct.c_long)]

        lib = _ct.CDLL(None, use_errno=True)
        lib.semget.argtypes = (_ct.c_int, _ct.c_int, _ct.c_int)
        lib.semget.restype = _ct.c_int
        lib.semop.argtypes = (_ct.c_int, _ct.POINTER(Sembuf), _ct.c_size_t)
        lib.semop.restype = _ct.c_int
        lib.semtimedop.argtypes = (_ct.c_int, _ct.POINTER(Sembuf), _ct.c_size_t,
                                   _ct.POINTER(Timespec))
        lib.semtimedop.restype = _ct.c_int
        # semctl is variadic: argtypes are left unset and every argument is passed as
        # an explicit ctypes object (c_int or c_void_p), which is ABI-correct on x86_64
        # and aarch64 alike.
        lib.semctl.restype = _ct.c_int
        ctypes, _Sembuf, _Timespec = _ct, Sembuf, Timespec
        _libc = lib
    return _libc


class SemError(OSError, DmctlError):
    pass


def _raise(what):
    e = ctypes.get_errno()
    raise SemError(e, "%s: %s" % (what, os.strerror(e)))


def semget(key, nsems=1, flags=0):
    r = _lib().semget(ctypes.c_int(_signed32(key)), nsems, flags)
    if r < 0:
        _raise("semget")
    return r


def _signed32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def semop(semid, op, flags=0, timeout=None):
    """One operation on semaphore 0.  ``timeout`` in seconds uses semtimedop."""
    lib = _lib()
    sb = _Sembuf(0, op, flags)
    if timeout is None:
        r = lib.semop(semid, ctypes.byref(sb), 1)
    else:
        sec = int(timeout)
        ts = _Timespec(sec, int((timeout - sec) * 1e9))
        r = lib.semtimedop(semid, ctypes.byref(sb), 1, ctypes.byref(ts))
    if r < 0:
        _raise("semop")


def getval(semid):
    r = _lib().semctl(ctypes.c_int(semid), ctypes.c_int(0), ctypes.c_int(GETVAL))
    if r < 0:
        _raise("semctl GETVAL")
    return r


def setval(semid, value):
    r = _lib().semctl(ctypes.c_int(semid), ctypes.c_int(0), ctypes.c_int(SETVAL),
                      ctypes.c_int(value))
    if r < 0:
        _raise("semctl SETVAL")


def rmid(semid):
    r = _lib().semctl(ctypes.c_int(semid), ctypes.c_int(0), ctypes.c_int(IPC_RMID),
                      ctypes.c_int(0))
    if r < 0:
        _raise("semctl IPC_RMID")


def sem_info():
    """``semctl(0, 0, SEM_INFO)``: the highest used index in the kernel's array, or
    raises (no SysV IPC)."""
    lib = _lib()
    buf = ctypes.create_string_buffer(64)
    r = lib.semctl(ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(SEM_INFO),
                      ctypes.cast(buf, ctypes.c_void_p))
    if r < 0:
        _raise("semctl SEM_INFO")
    return r


class SemStat:
    """One semaphore set as SEM_STAT/IPC_STAT reports it."""
    __slots__ = ("semid", "key", "uid", "mode", "otime", "ctime", "nsems")

    def __init__(self, semid, raw):
        import struct
        self.semid = semid
        self.key = struct.unpack_from("=I", raw, _OFF_KEY)[0]
        self.uid = struct.unpack_from("=I", raw, _OFF_UID)[0]
        self.mode = struct.unpack_from("=I", raw, _OFF_MODE)[0] & 0xFFFF
        self.otime = struct.unpack_from("=q", raw, _OFF_OTIME)[0]
        self.ctime = struct.unpack_from("=q", raw, _OFF_CTIME)[0]
        self.nsems = struct.unpack_from("=Q", raw, _OFF_NSEMS)[0]


def _stat(id_or_index, cmd):
    lib = _lib()
    buf = ctypes.create_string_buffer(_SEMID_DS_SIZE + 64)
    r = lib.semctl(ctypes.c_int(id_or_index), ctypes.c_int(0), ctypes.c_int(cmd),
                      ctypes.cast(buf, ctypes.c_void_p))
    if r < 0:
        _raise("semctl")
    return r, buf.raw


def ipc_stat(semid):
    _r, raw = _stat(semid, IPC_STAT)
    return SemStat(semid, raw)


def sem_stat_all():
    """Every semaphore set in the system: [SemStat] (SEM_INFO + SEM_STAT walk)."""
    max_id = sem_info()
    out = []
    for idx in range(max_id + 1):
        try:
            sid, raw = _stat(idx, SEM_STAT)
        except SemError:
            continue
        out.append(SemStat(sid, raw))
    return out


def semaphores_supported():
    """libdm's _check_semaphore_is_supported (without the warning)."""
    try:
        sem_info()
        return True
    except (SemError, AttributeError, OSError):
        return False


# --------------------------------------------------------------------------------------
# libdm's cookie operations, with libdm's messages.
# ``err`` receives an error line, ``debug`` (optional) a -vvv debug line: callbacks of
# the caller's (the library prints nothing itself).
# Each returns a truth value like libdm's functions.
# --------------------------------------------------------------------------------------

def _error(msg):
    """libdm's log_error when the caller gave no ``err``: Python's logging (the
    library never prints; the CLI always passes its own)."""
    from dmctl.libdm.log import error
    error(msg)


def _nodebug(msg):
    pass


def get_cookie_sem(cookie, err=_error):
    """_get_cookie_sem: the semid for an existing cookie, or None (error logged through ``err``).
    ``cookie`` must carry the magic prefix."""
    if cookie >> 16 != DM_COOKIE_MAGIC:
        err("Could not continue to access notification semaphore identified by cookie "
            "value %u (0x%x). Incorrect cookie prefix." % (cookie, cookie))
        return None
    try:
        return semget(cookie, 1, 0)
    except SemError as e:
        if e.errno == _errno.ENOENT:
            err("Could not find notification semaphore identified by cookie value "
                "%u (0x%x)" % (cookie, cookie))
        elif e.errno == _errno.EACCES:
            # (sic) libdm's spelling
            err("No permission to access notificaton semaphore identified by cookie "
                "value %u (0x%x)" % (cookie, cookie))
        else:
            err("Failed to access notification semaphore identified by cookie value "
                "%u (0x%x): %s" % (cookie, cookie, os.strerror(e.errno)))
        return None


def sem_inc(cookie, semid, err=_error, debug=_nodebug):
    """_udev_notify_sem_inc."""
    try:
        semop(semid, 1, 0)
    except SemError as e:
        err("semid %d: semop failed for cookie 0x%x: %s"
            % (semid, cookie, os.strerror(e.errno)))
        return False
    val = _getval_logged(cookie, semid, err)
    if val is None:
        return False
    debug("Udev cookie 0x%x (semid %d) incremented to %d" % (cookie, semid, val))
    return True


def _getval_logged(cookie, semid, err):
    """GETVAL, or None after libdm's message."""
    try:
        return getval(semid)
    except SemError as e:
        err("semid %d: sem_ctl GETVAL failed for cookie 0x%x: %s"
            % (semid, cookie, os.strerror(e.errno)))
        return None


def sem_dec(cookie, semid, err=_error, debug=_nodebug):
    """_udev_notify_sem_dec: -1 with IPC_NOWAIT."""
    val = _getval_logged(cookie, semid, err)
    if val is None:
        return False
    try:
        semop(semid, -1, IPC_NOWAIT)
    except SemError as e:
        if e.errno == _errno.EAGAIN:
            err("semid %d: semop failed for cookie 0x%x: incorrect semaphore state"
                % (semid, cookie))
        else:
            err("semid %d: semop failed for cookie 0x%x: %s"
                % (semid, cookie, os.strerror(e.errno)))
        return False
    debug("Udev cookie 0x%x (semid %d) decremented to %d" % (cookie, semid, val - 1))
    return True


def sem_destroy(cookie, semid, err=_error, debug=_nodebug):
    """_udev_notify_sem_destroy."""
    try:
        rmid(semid)
    except SemError as e:
        err("Could not cleanup notification semaphore identified by cookie value "
            "%u (0x%x): %s" % (cookie, cookie, os.strerror(e.errno)))
        return False
    debug("Udev cookie 0x%x (semid %d) destroyed" % (cookie, semid))
    return True


def _random_base(fd):
    data = os.read(fd, 2)
    if len(data) != 2:
        raise OSError(_errno.EIO, "short read")
    return int.from_bytes(data, sys.byteorder)


def create(err=_error, debug=_nodebug):
    """_udev_notify_sem_create: -> (cookie, semid), or (0, None) on failure (error
    logged).  The cookie is ``0x0D4D____`` and the semaphore's value is 1."""
    try:
        fd = os.open("/dev/urandom", os.O_RDONLY)
    except OSError:
        err("Failed to open /dev/urandom to create random cookie value")
        return 0, None
    try:
        while True:
            try:
                base = _random_base(fd)
            except OSError:
                err("Failed to initialize notification cookie")
                return 0, None
            if not base:
                continue
            cookie = DM_COOKIE_MAGIC << 16 | base
            try:
                semid = semget(cookie, 1, 0o600 | IPC_CREAT | IPC_EXCL)
                break
            except SemError as e:
                if e.errno == _errno.EEXIST:
                    continue
                if e.errno == _errno.ENOMEM:
                    err("Not enough memory to create notification semaphore")
                elif e.errno == _errno.ENOSPC:
                    err("Limit for the maximum number of semaphores reached. You can "
                        "check and set the limits in /proc/sys/kernel/sem.")
                else:
                    err("Failed to create notification semaphore: %s"
                        % os.strerror(e.errno))
                return 0, None
    finally:
        os.close(fd)
    debug("Udev cookie 0x%x (semid %d) created" % (cookie, semid))
    try:
        setval(semid, 1)
    except SemError as e:
        err("semid %d: semctl failed: %s" % (semid, os.strerror(e.errno)))
        sem_destroy(cookie, semid, err, debug)
        return 0, None
    val = _getval_logged(cookie, semid, err)
    if val is None:
        return 0, None
    debug("Udev cookie 0x%x (semid %d) incremented to %d" % (cookie, semid, val))
    return cookie, semid


def complete(cookie, err=_error, debug=_nodebug):
    """dm_udev_complete for a cookie with the magic prefix (the caller decided that
    udev sync is in use and stripped the flags): -1 with IPC_NOWAIT."""
    if not cookie:
        return True
    semid = get_cookie_sem(cookie, err)
    if semid is None:
        return False
    if not sem_dec(cookie, semid, err, debug):
        err("Could not signal waiting process using notification semaphore identified "
            "by cookie value %u (0x%x)" % (cookie, cookie))
        return False
    return True


class WaitResult:
    """What a wait ended with: ``ok`` (False only for libdm's errors), ``timed_out``,
    ``removed`` (EIDRM: somebody destroyed the semaphore), ``pending`` (the
    semaphore's value when the time ran out: uevents udev has not completed)."""
    __slots__ = ("ok", "timed_out", "removed", "pending", "semid", "elapsed")

    def __init__(self, ok, timed_out=False, removed=False, pending=0, semid=None,
                 elapsed=0.0):
        self.ok = ok
        self.timed_out = timed_out
        self.removed = removed
        self.pending = pending
        self.semid = semid
        self.elapsed = elapsed

    def __bool__(self):
        return bool(self.ok)

    def __repr__(self):
        return ("WaitResult(ok=%r, timed_out=%r, removed=%r, pending=%r, semid=%r)"
                % (self.ok, self.timed_out, self.removed, self.pending, self.semid))


def wait(cookie, timeout=DEFAULT_TIMEOUT, err=_error, debug=_nodebug,
         destroy_on_timeout=True):
    """_udev_wait with a time limit.

    Own -1 (IPC_NOWAIT), then wait for zero for at most ``timeout`` seconds (None: no
    limit, libdm's behaviour), then IPC_RMID.  On timeout the semaphore is destroyed
    (so it does not leak; a late ``udevcomplete`` then only logs an error in udev's
    journal) and WaitResult(ok=True, timed_out=True, pending=N) is returned: the caller
    explains what it waited for.  Errors log libdm's messages through ``err`` and return ok=False.
    """
    if not cookie:
        return WaitResult(True)
    semid = get_cookie_sem(cookie, err)
    if semid is None:
        return WaitResult(False)
    if not sem_dec(cookie, semid, err, debug):
        err("Failed to set a proper state for notification semaphore identified by "
            "cookie value %u (0x%x) to initialize waiting for incoming notifications."
            % (cookie, cookie))
        sem_destroy(cookie, semid, err, debug)
        return WaitResult(False, semid=semid)
    debug("Udev cookie 0x%x (semid %d) waiting for zero" % (cookie, semid))
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    while True:
        try:
            if deadline is None:
                semop(semid, 0, 0)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SemError(_errno.EAGAIN, "timeout")
                semop(semid, 0, 0, timeout=left)
            break
        except SemError as e:
            if e.errno == _errno.EINTR:
                continue
            if e.errno == _errno.EIDRM:
                return WaitResult(True, removed=True, semid=semid,
                                  elapsed=time.monotonic() - start)
            if e.errno == _errno.EAGAIN and deadline is not None:
                try:
                    pending = getval(semid)
                except SemError as e2:
                    if e2.errno in (_errno.EIDRM, _errno.EINVAL):
                        return WaitResult(True, removed=True, semid=semid,
                                          elapsed=time.monotonic() - start)
                    pending = -1
                if pending == 0:
                    break       # completed right at the deadline
                if destroy_on_timeout:
                    sem_destroy(cookie, semid, _nodebug, debug)
                return WaitResult(True, timed_out=True, pending=pending, semid=semid,
                                  elapsed=time.monotonic() - start)
            err("Could not set wait state for notification semaphore identified by "
                "cookie value %u (0x%x): %s" % (cookie, cookie, os.strerror(e.errno)))
            sem_destroy(cookie, semid, err, debug)
            return WaitResult(False, semid=semid)
    ok = sem_destroy(cookie, semid, err, debug)
    return WaitResult(ok, semid=semid, elapsed=time.monotonic() - start)


class CookieInfo(tuple):
    """A row of ``udevcookies``: (cookie, semid, value, otime, ctime).  A plain tuple
    subclass, not a namedtuple: importing collections costs start-up time in every
    dmctl command that touches udev."""
    __slots__ = ()

    def __new__(cls, cookie, semid, value, otime, ctime):
        return tuple.__new__(cls, (cookie, semid, value, otime, ctime))

    cookie = property(lambda self: self[0])
    semid = property(lambda self: self[1])
    value = property(lambda self: self[2])
    otime = property(lambda self: self[3])
    ctime = property(lambda self: self[4])


def list_cookies(err=_error):
    """All semaphores whose key has the 0x0D4D prefix, in the kernel's index order
    (what ``udevcookies`` prints).  Raises SemError when SysV IPC is unavailable."""
    out = []
    for st in sem_stat_all():
        if st.key >> 16 != DM_COOKIE_MAGIC:
            continue
        try:
            val = getval(st.semid)
        except SemError as e:
            err("semid %d: sem_ctl failed for cookie 0x%x: %s"
                % (st.semid, st.key, os.strerror(e.errno)))
            continue
        out.append(CookieInfo(st.key, st.semid, val, st.otime, st.ctime))
    return out


def complete_all(age_minutes=0, err=_error, now=None):
    """``udevcomplete_all``: destroy every 0x0D4D-prefixed semaphore whose last
    operation and last change are both at least ``age_minutes`` old.
    -> (destroyed, skipped).  Raises SemError when SysV IPC is unavailable."""
    return complete_all_raw((age_minutes * 60) & 0xFFFFFFFF, err, now)


def complete_all_raw(age_seconds, err=_error, now=None):
    """complete_all with the age in seconds (dmsetup computes ``age * 60`` in unsigned
    int arithmetic; the caller does the same)."""
    counter = skipped = 0
    for st in sem_stat_all():
        if st.key >> 16 != DM_COOKIE_MAGIC:
            continue
        t = int(time.time()) if now is None else now
        if st.ctime + age_seconds > t or st.otime + age_seconds > t:
            skipped += 1
            continue
        try:
            rmid(st.semid)
        except SemError:
            err("Could not cleanup notification semaphore with semid %d and cookie "
                "value %u (0x%x)." % (st.semid, st.key, st.key))
            continue
        counter += 1
    return counter, skipped


def ctime_str(t):
    """C ctime_r without the newline: ``Tue May 19 17:55:18 2015`` (local time)."""
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(t))
