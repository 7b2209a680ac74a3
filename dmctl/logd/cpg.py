"""corosync's Closed Process Group library (libcpg.so.4, corosync 3) through ctypes:
no compiler and no headers needed at install (cluster-log.md §4.1 has the measured ABI).

``Cpg(on_deliver, on_confchg)`` is one handle (cmirrord keeps one per log): ``join``
and ``leave`` a group, ``mcast`` with CPG_TYPE_AGREED, ``fileno`` for the daemon's
select loop and ``dispatch`` when it is readable (the callbacks run inside it),
``local_nodeid``, ``finalize``.  Callbacks: ``on_deliver(group, nodeid, pid, bytes)``
and ``on_confchg(group, members, left, joined)`` with lists of (nodeid, pid, reason).
Failures raise ``CpgError`` (``.code`` is corosync's cs_error_t) with a readable text;
``CS_ERR_LIBRARY`` from ``dispatch`` means the local corosync went away.
"""

import ctypes
import ctypes.util

from dmctl.errors import DmctlError

CS_OK, CS_ERR_LIBRARY, CS_ERR_TRY_AGAIN, CS_ERR_BAD_HANDLE = 1, 2, 6, 9
CS_DISPATCH_ONE, CS_DISPATCH_ALL, CS_DISPATCH_ONE_NONBLOCKING = 1, 2, 4
CPG_TYPE_AGREED = 2
REASON_JOIN, REASON_LEAVE, REASON_NODEDOWN, REASON_NODEUP, REASON_PROCDOWN = 1, 2, 3, 4, 5
CPG_MAX_NAME = 128

_CS_ERRORS = {
    1: "ok", 2: "CS_ERR_LIBRARY (corosync is not running or not reachable in this "
                "network namespace)", 3: "CS_ERR_VERSION", 4: "CS_ERR_INIT",
    5: "CS_ERR_TIMEOUT", 6: "CS_ERR_TRY_AGAIN", 7: "CS_ERR_INVALID_PARAM",
    8: "CS_ERR_NO_MEMORY", 9: "CS_ERR_BAD_HANDLE", 10: "CS_ERR_BUSY",
    11: "CS_ERR_ACCESS (no permission to use corosync's IPC)", 12: "CS_ERR_NOT_EXIST",
    13: "CS_ERR_NAME_TOO_LONG", 14: "CS_ERR_EXIST (already joined)",
    15: "CS_ERR_NO_SPACE", 16: "CS_ERR_INTERRUPT", 17: "CS_ERR_NAME_NOT_FOUND",
    18: "CS_ERR_NO_RESOURCES", 19: "CS_ERR_NOT_SUPPORTED", 20: "CS_ERR_BAD_OPERATION",
    21: "CS_ERR_FAILED_OPERATION", 22: "CS_ERR_MESSAGE_ERROR", 23: "CS_ERR_QUEUE_FULL",
    24: "CS_ERR_QUEUE_NOT_AVAILABLE", 25: "CS_ERR_BAD_FLAGS", 26: "CS_ERR_TOO_BIG",
    27: "CS_ERR_NO_SECTIONS", 28: "CS_ERR_CONTEXT_NOT_FOUND", 30: "CS_ERR_TOO_MANY_GROUPS",
    100: "CS_ERR_SECURITY"}


class CpgError(DmctlError):
    def __init__(self, what, code):
        self.code = code
        DmctlError.__init__(self, "%s: %s" % (what, _CS_ERRORS.get(code, "cs_error %d" % code)))


class CpgName(ctypes.Structure):
    _fields_ = [("length", ctypes.c_uint32), ("value", ctypes.c_char * CPG_MAX_NAME)]


class CpgAddress(ctypes.Structure):
    _fields_ = [("nodeid", ctypes.c_uint32), ("pid", ctypes.c_uint32),
                ("reason", ctypes.c_uint32)]


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_handle_t = ctypes.c_uint64
_DELIVER = ctypes.CFUNCTYPE(None, _handle_t, ctypes.POINTER(CpgName), ctypes.c_uint32,
                            ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
_CONFCHG = ctypes.CFUNCTYPE(None, _handle_t, ctypes.POINTER(CpgName),
                            ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                            ctypes.POINTER(CpgAddress), ctypes.c_size_t,
                            ctypes.POINTER(CpgAddress), ctypes.c_size_t)


class _Callbacks(ctypes.Structure):
    _fields_ = [("deliver", _DELIVER), ("confchg", _CONFCHG)]


_LIB = None


def library():
    """libcpg, loaded once; CpgError(CS_ERR_LIBRARY) when it is not installed."""
    global _LIB
    if _LIB is None:
        lib = None
        for name in ("libcpg.so.4", ctypes.util.find_library("cpg")):
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name, use_errno=True)
                break
            except OSError:
                continue
        if lib is None:
            err = CpgError("libcpg.so.4", CS_ERR_LIBRARY)
            err.args = ("libcpg.so.4 is not installed (Debian: apt-get install corosync "
                        "libcpg4)",)
            raise err
        H = ctypes.POINTER(_handle_t)
        lib.cpg_initialize.argtypes = [H, ctypes.POINTER(_Callbacks)]
        lib.cpg_join.argtypes = [_handle_t, ctypes.POINTER(CpgName)]
        lib.cpg_leave.argtypes = [_handle_t, ctypes.POINTER(CpgName)]
        lib.cpg_mcast_joined.argtypes = [_handle_t, ctypes.c_int, ctypes.POINTER(IoVec),
                                         ctypes.c_uint]
        lib.cpg_fd_get.argtypes = [_handle_t, ctypes.POINTER(ctypes.c_int)]
        lib.cpg_dispatch.argtypes = [_handle_t, ctypes.c_int]
        lib.cpg_local_get.argtypes = [_handle_t, ctypes.POINTER(ctypes.c_uint32)]
        lib.cpg_finalize.argtypes = [_handle_t]
        lib.cpg_max_atomic_msgsize_get.argtypes = [_handle_t, ctypes.POINTER(ctypes.c_uint32)]
        for f in ("cpg_initialize", "cpg_join", "cpg_leave", "cpg_mcast_joined",
                  "cpg_fd_get", "cpg_dispatch", "cpg_local_get", "cpg_finalize",
                  "cpg_max_atomic_msgsize_get"):
            getattr(lib, f).restype = ctypes.c_int
        _LIB = lib
    return _LIB


def group_name(name):
    """cmirrord's group name: the uuid with its NUL counted (§2.3)."""
    raw = (name.encode() if isinstance(name, str) else bytes(name))[:CPG_MAX_NAME - 1]
    n = CpgName()
    n.value = raw
    n.length = len(raw) + 1
    return n


def _name_of(p):
    n = p.contents
    return bytes(n.value[:max(0, min(n.length, CPG_MAX_NAME))]).split(b"\0", 1)[0].decode(
        "utf-8", "replace")


def _addrs(p, n):
    return [(p[i].nodeid, p[i].pid, p[i].reason) for i in range(n)]


class Cpg:
    def __init__(self, on_deliver, on_confchg):
        lib = library()
        self.lib = lib
        self.on_deliver = on_deliver
        self.on_confchg = on_confchg
        self.handle = _handle_t(0)
        # the ctypes callback objects must live as long as the handle
        self._cbs = _Callbacks(_DELIVER(self._deliver), _CONFCHG(self._confchg))
        rc = lib.cpg_initialize(ctypes.byref(self.handle), ctypes.byref(self._cbs))
        if rc != CS_OK:
            raise CpgError("cpg_initialize", rc)
        self.alive = True
        self.error = None

    def _deliver(self, _h, name, nodeid, pid, msg, size):
        try:
            self.on_deliver(_name_of(name), nodeid, pid, ctypes.string_at(msg, size))
        except Exception as e:               # noqa: BLE001 - never unwind through C
            self.error = e

    def _confchg(self, _h, name, members, nm, left, nl, joined, nj):
        try:
            self.on_confchg(_name_of(name), _addrs(members, nm), _addrs(left, nl),
                            _addrs(joined, nj))
        except Exception as e:               # noqa: BLE001
            self.error = e

    def _check(self, what, rc):
        if rc != CS_OK:
            raise CpgError(what, rc)

    def fileno(self):
        fd = ctypes.c_int(-1)
        self._check("cpg_fd_get", self.lib.cpg_fd_get(self.handle, ctypes.byref(fd)))
        return fd.value

    def local_nodeid(self):
        n = ctypes.c_uint32(0)
        self._check("cpg_local_get", self.lib.cpg_local_get(self.handle, ctypes.byref(n)))
        return n.value

    def max_message(self):
        n = ctypes.c_uint32(0)
        self._check("cpg_max_atomic_msgsize_get",
                    self.lib.cpg_max_atomic_msgsize_get(self.handle, ctypes.byref(n)))
        return n.value

    def join(self, name):
        self._check("cpg_join", self.lib.cpg_join(self.handle, ctypes.byref(group_name(name))))

    def leave(self, name):
        self._check("cpg_leave", self.lib.cpg_leave(self.handle, ctypes.byref(group_name(name))))

    def mcast(self, data, retries=200):
        """Multicast ``data`` to the joined group in agreed order."""
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(data))
        import time
        for _ in range(retries):
            rc = self.lib.cpg_mcast_joined(self.handle, CPG_TYPE_AGREED, ctypes.byref(iov), 1)
            if rc != CS_ERR_TRY_AGAIN:
                break
            time.sleep(0.005)
        self._check("cpg_mcast_joined", rc)

    def dispatch(self):
        """Run the callbacks of everything pending (CS_DISPATCH_ALL).  CpgError with
        CS_ERR_LIBRARY when corosync went away."""
        rc = self.lib.cpg_dispatch(self.handle, CS_DISPATCH_ALL)
        if rc not in (CS_OK, CS_ERR_TRY_AGAIN):
            self.alive = False
            raise CpgError("cpg_dispatch", rc)
        err, self.error = self.error, None
        if err is not None:
            raise err

    def finalize(self):
        if self.handle.value:
            self.lib.cpg_finalize(self.handle)
            self.handle = _handle_t(0)
        self.alive = False


def probe():
    """The local corosync node id, or raise CpgError (why there is no cluster)."""
    c = Cpg(lambda *a: None, lambda *a: None)
    try:
        return c.local_nodeid()
    finally:
        c.finalize()
