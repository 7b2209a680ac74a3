"""The ``userspace`` dirty log (dm-log-userspace-base.c, -transfer.c) and a log
server that implements cmirrord's ``clustered-core`` / ``clustered-disk`` logs.

Table: ``userspace <#args> <uuid> [integrated_flush] <log type> <type args...>``,
e.g. ``mirror userspace 4 LVM-xyz clustered-disk 253:2 1024 2 253:3 0 253:4 0``.

Kernel side (``UserspaceLog``): every dirty-log operation becomes a request, a
``struct cn_msg`` (20 bytes) followed by ``struct dm_ulog_request`` (160 bytes,
native endian) and its payload, exactly as the kernel sends it on the connector
(CN_IDX_DM 0x7, CN_VAL_DM_USERSPACE_LOG 0x1); replies are parsed the same way.
Marks and clears are queued and sent at flush time (LIFO, at most 32 per request),
``in_sync`` without blocking answers -EWOULDBLOCK, the TABLE status is built locally,
INFO comes from the server (``userspace 1 COM_FAILURE`` when it cannot be reached).

The server is ``dmctl logd`` (``dmctl.logd``, a process: cmirrord's per-log state
machine lives there).  The simulator's connector is the daemon's Unix socket,
``$DMCTL_LOGD_SOCKET``, default ``logd.sock`` in the sim dir: each request is sent as
the kernel puts it on the connector (cn_msg + dm_ulog_request + payload, framed as
``dmctl.formats.ulog`` describes) and the reply is read back.  The connection starts
with a hello naming this host (its sim dir), so the daemon knows the request's node
(cmirrord's ``originator``); several sim dirs pointed at one socket are several hosts
of one cluster.  For a clustered-disk log the daemon reaches the log device through
the host's kernel (it sends I/O frames back on the connection, and this side submits
them as bios): cmirrord opens the device on its own node.  Without a daemon a request
fails with -ESRCH, and a constructor fails exactly as the kernel's does when no
cmirrord listens.

Log identity (uuid + luid): the kernel names a log by its uuid and a locally unique
id, ``luid``, which is the log context's address; here each constructed log takes
the next value of a counter in the simulator's store (``0xffff888000000400``,
``...0800``, ...), kept with the table, so it is distinct per table instance and the
same in every dmctl process.  A table loaded into the inactive slot with the log
uuid of the live one (pvmove, resize) is a second log on the server (same uuid,
other luid, SUSPENDED, not in the cluster); ``resume`` suspends the old table
(PRESUSPEND, POSTSUSPEND), RESUMEs the new luid and then sends the old table's DTR,
so the server ends with the new log only; ``clear`` (or another load) sends the
inactive table's DTR.  Every request carries its luid in ``dm_ulog_request.luid``.

Server loss (userspace_do_request): a request other than CTR, DTR, PRESUSPEND,
POSTSUSPEND and RESUME that gets -ESRCH (nobody listens, or a restarted daemon does not
know the log) logs "Userspace log server not found.", re-sends the constructor (its
string with the NUL counted) every 2 s until a server takes it, RESUMEs and repeats the
request; the kernel's in-sync hint survives, as in the kernel.

Deviations (the simulator cannot block a process): the kernel retries forever; here the
reconnect gives up after ``$DMCTL_LOGD_WAIT`` seconds (default 0: at once when no
daemon listens; a daemon that answers -ESRCH is re-sent the constructor at once) and
the request fails with -ESRCH; ``is_remote_recovering`` asks the server every time
instead of at most once per HZ/4.  ``dmctl sim crash`` of a host tells the daemon that
its node left every CPG (corosync's view of a dead node).
"""

import errno
import os
import socket
import struct
import threading
import time

from dmctl.constants import (  # noqa: F401
    CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, DM_UUID_LEN, DM_ULOG_CLEAR_REGION, DM_ULOG_CTR,
    DM_ULOG_DTR, DM_ULOG_FLUSH, DM_ULOG_GET_REGION_SIZE, DM_ULOG_GET_RESYNC_WORK,
    DM_ULOG_GET_SYNC_COUNT, DM_ULOG_IN_SYNC, DM_ULOG_IS_CLEAN, DM_ULOG_IS_REMOTE_RECOVERING,
    DM_ULOG_MARK_REGION, DM_ULOG_POSTSUSPEND, DM_ULOG_PREALLOCED_SIZE, DM_ULOG_PRESUSPEND,
    DM_ULOG_REQUEST_MASK, DM_ULOG_REQUEST_VERSION, DM_ULOG_RESPONSE, DM_ULOG_RESUME,
    DM_ULOG_SET_REGION_SYNC, DM_ULOG_STATUS_INFO, DM_ULOG_STATUS_TABLE)
from dmctl.formats import ulog as W
from dmctl.formats.ulog import CN_MSG, ULOG_REQ, pack_request, unpack_request  # noqa: F401
from dmctl.sim import bio as B
from dmctl.sim.targets.base import STATUSTYPE_INFO, STATUSTYPE_TABLE
from dmctl.sim.targets.dirty_log.base import DirtyLog, LogError

PREFIX = "device-mapper: dm-log-userspace: "
MAX_FLUSH_GROUP_COUNT = 32

META_SEQ = "ulog_seq"      # the kernel's global request sequence counter
META_LUID = "ulog_luid"    # source of unique log ids (the kernel uses the log's address)


def _next_meta(store, key, start):
    v = store.get_meta(key)
    v = start if v is None else int(v)
    store.set_meta(key, v + 1)
    return v


# -- the connector: the daemon's Unix socket -------------------------------------------------

LINK_TIMEOUT = 120.0             # a daemon that does not answer at all is gone
RECONNECT_INTERVAL = 2.0         # userspace_do_request's schedule_timeout(2*HZ)
_LINKS = {}                      # (socket path, host) -> _Link, one per process
_LINKS_LOCK = threading.Lock()


class _Link:
    """One connection to the daemon, introduced with this host's name (its sim dir)."""

    def __init__(self, path, host):
        self.lock = threading.Lock()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(LINK_TIMEOUT)
        try:
            s.connect(path)
            s.sendall(W.pack_frame(W.HELLO, host.encode()))
            kind, body = W.recv_frame(s)
            if kind != W.HELLO_ANS or len(body) < 4:
                raise OSError(errno.EPROTO, "bad hello answer")
        except BaseException:
            s.close()
            raise
        self.node = struct.unpack("<I", body[:4])[0]
        self.sock = s

    def call(self, env, kind, body, want):
        self.sock.sendall(W.pack_frame(kind, body))
        while True:
            k, b = W.recv_frame(self.sock)
            if k == W.IO:
                self.sock.sendall(W.pack_frame(W.IO_DONE, _serve_io(env, b)))
                continue
            if k != want:
                raise OSError(errno.EPROTO, "unexpected frame %r" % k)
            return b


def _link_key(env):
    return os.path.abspath(W.socket_path(env.store.dir)), os.path.realpath(env.store.dir)


def _get_link(env):
    """This host's connection to the daemon, or None when nobody listens."""
    key = _link_key(env)
    with _LINKS_LOCK:
        link = _LINKS.get(key)
        if link is None:
            try:
                link = _LINKS[key] = _Link(*key)
            except (OSError, EOFError, ValueError):
                return None
        return link


def _link_call(env, kind, body, want):
    """The body of the daemon's answer, or None when no daemon listens (a connection
    that broke, e.g. a daemon restarted since, is opened again once)."""
    for _attempt in (0, 1):
        link = _get_link(env)
        if link is None:
            return None
        with link.lock:
            try:
                return link.call(env, kind, body, want)
            except (OSError, EOFError, ValueError):
                with _LINKS_LOCK:
                    if _LINKS.get(_link_key(env)) is link:
                        del _LINKS[_link_key(env)]
                link.sock.close()
    return None


def _serve_io(env, body):
    """The daemon's I/O to this host's log device: a lookup, or one bio."""
    op, flags, major, minor, sectors = W.IO_REQ.unpack_from(body)
    rest = body[W.IO_REQ.size:]
    if op == W.IO_LOOKUP:
        try:
            devno = env.lookup_device(rest.decode()).devno
        except (OSError, UnicodeError) as e:
            return W.IO_ANS.pack(getattr(e, "errno", None) or errno.ENODEV, 0, 0)
        return W.IO_ANS.pack(0, devno[0], devno[1])
    try:
        dev = env.device_by_devno((major, minor))
    except OSError:
        return W.IO_ANS.pack(errno.EIO, major, minor)
    if op == W.IO_READ:
        buf = bytearray(sectors << 9)
        b = B.Bio(B.READ, 0, sectors, buf, 0)
    elif op == W.IO_WRITE:
        buf = None
        b = B.Bio(B.WRITE, 0, sectors, bytes(rest[:sectors << 9]).ljust(sectors << 9, b"\0"),
                  B.FUA if flags & W.IO_FUA else 0)
    else:
        return W.IO_ANS.pack(errno.EINVAL, major, minor)
    dev.submit(b)
    err = b.error if b.done else errno.EIO
    return W.IO_ANS.pack(err, major, minor) + (bytes(buf) if buf is not None and not err else b"")


def connector_send(env, msg):
    """cn_netlink_send to the dm-log-userspace group: the reply message, or a negative
    errno (-ESRCH when nobody listens)."""
    body = _link_call(env, W.REQUEST, msg, W.REPLY)
    return -errno.ESRCH if body is None else body


def host_crashed(env):
    """``dmctl sim crash``: this host's cmirrord goes down with it, so its node leaves
    every CPG of the daemon (see LogServer.node_left).  Returns how many logs went."""
    body = _link_call(env, W.CRASHED, b"", W.CRASHED_ANS)
    return 0 if body is None else struct.unpack("<I", body[:4])[0]


def dm_consult_userspace(log, request_type, data=b"", rdata_size=0):
    """(error, reply data): dm_consult_userspace() with its log lines."""
    env = log.ms.env
    if CN_MSG.size + ULOG_REQ.size + len(data) > DM_ULOG_PREALLOCED_SIZE:
        env.klog(PREFIX + "Size of tfr exceeds preallocated size")
        return -errno.EINVAL, b""
    seq = _next_meta(env.store, META_SEQ, 1) & 0xFFFFFFFF
    msg = pack_request(log.luid, log.uuid, seq, request_type & DM_ULOG_REQUEST_MASK, data)
    reply = connector_send(env, msg)
    if isinstance(reply, int):
        env.klog(PREFIX + "Unable to send log request [%u] to userspace: %d" % (request_type, reply))
        return reply, b""
    cn, req, rdata = unpack_request(reply)
    if req is None:                       # ACK only: error is -cn_msg.ack
        return -cn[3], b""
    if len(rdata) > rdata_size:
        env.klog(PREFIX + "Insufficient space to receive package [%u] (%u vs %u)"
                 % (request_type, len(rdata), rdata_size))
        return -errno.ENOSPC, b""
    return req["error"], rdata


class UserspaceLog(DirtyLog):
    name = "userspace"
    has_presuspend = True
    has_postsuspend = True
    has_resume = True
    has_is_remote_recovering = True

    @classmethod
    def ctr(cls, ms, argv):
        log = cls(ms)
        if len(argv) < 3:
            raise LogError(errno.EINVAL, [PREFIX + "Too few arguments to userspace dirty log"])
        if len(argv[0].encode()) > DM_UUID_LEN - 1:
            raise LogError(errno.EINVAL, [PREFIX + "UUID argument too long."])
        env = ms.env
        log.uuid = argv[0]
        log.usr_argc = len(argv)
        rest = argv[1:]
        log.integrated_flush = bool(rest and rest[0].lower() == "integrated_flush")
        if log.integrated_flush:
            rest = rest[1:]
        log.ctr_str = "%d %s" % (ms.ti.len, " ".join(rest))
        log.luid = 0xFFFF888000000000 + 0x400 * _next_meta(env.store, META_LUID, 1)
        log.in_sync_hint = 0
        log.region_size = 0
        log.region_count = 0
        log.mark_list = []
        log.clear_list = []
        log.log_devno = None
        lines_before = len(env.log)
        r, rdata = dm_consult_userspace(log, DM_ULOG_CTR, log.ctr_str.encode(), 128)
        if r:
            lines = env.log[lines_before:]
            del env.log[lines_before:]
            if r == -errno.ESRCH:
                lines.append(PREFIX + "Userspace log server not found")
            else:
                lines.append(PREFIX + "Userspace log server failed to create log")
            raise LogError(-r, lines)
        r, rs = dm_consult_userspace(log, DM_ULOG_GET_REGION_SIZE, b"", 8)
        if r:
            lines = env.log[lines_before:]
            del env.log[lines_before:]
            raise LogError(-r, lines + [PREFIX + "Failed to get region size of dirty log"])
        log.region_size = struct.unpack("=Q", rs[:8].ljust(8, b"\0"))[0]
        log.region_count = -(-ms.ti.len // log.region_size) if log.region_size else 0
        if rdata:
            if rdata[-1:] != b"\0":
                raise LogError(errno.EINVAL, [PREFIX + "DM_ULOG_CTR device return string not properly terminated"])
            devname = rdata[:-1].decode()
            try:
                dev = env.lookup_device(devname)
            except OSError as e:
                raise LogError(e.errno, [PREFIX + "Failed to register %s with device-mapper" % devname])
            ms.devs.append(dev.devno)
            log.log_devno = dev.devno
        return log

    def _req(self, request_type, data=b"", rdata_size=0, direct=False):
        """userspace_do_request (``direct``: dm_consult_userspace alone, as presuspend,
        postsuspend and resume call it)."""
        r, rdata = dm_consult_userspace(self, request_type, data, rdata_size)
        if r == -errno.ESRCH:
            self.klog(PREFIX + " Userspace log server not found.")
            if not direct and not self._reconnect():
                r, rdata = dm_consult_userspace(self, request_type, data, rdata_size)
        return r, rdata

    def _reconnect(self):
        """Re-send the constructor until a server takes it, then RESUME (0), else
        -ESRCH once $DMCTL_LOGD_WAIT seconds have passed (the kernel never gives up)."""
        env = self.ms.env
        deadline = time.monotonic() + float(os.environ.get("DMCTL_LOGD_WAIT") or 0)
        while True:
            if _get_link(env) is not None:
                r, _ = dm_consult_userspace(self, DM_ULOG_CTR, (self.ctr_str + "\0").encode(), 128)
                if not r:
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                return -errno.ESRCH
            time.sleep(min(RECONNECT_INTERVAL, left))
            self.klog(PREFIX + "Attempting to contact userspace log server...")
        self.klog(PREFIX + "Reconnected to userspace log server... DM_ULOG_CTR complete")
        r, _ = dm_consult_userspace(self, DM_ULOG_RESUME)
        if r:
            self.klog(PREFIX + "Error trying to resume userspace log: %d" % r)
            return -errno.ESRCH
        return 0

    # -- operations -------------------------------------------------------------------------
    def dtr(self):
        if self.ms is not None:
            dm_consult_userspace(self, DM_ULOG_DTR)

    def presuspend(self):
        return self._req(DM_ULOG_PRESUSPEND, direct=True)[0]

    def postsuspend(self):
        return self._req(DM_ULOG_POSTSUSPEND, direct=True)[0]

    def resume(self):
        self.in_sync_hint = 0
        return self._req(DM_ULOG_RESUME, direct=True)[0]

    def get_region_size(self):
        return self.region_size

    def is_clean(self, region):
        r, d = self._req(DM_ULOG_IS_CLEAN, struct.pack("=Q", region), 8)
        return 0 if r else struct.unpack("=q", d[:8].ljust(8, b"\0"))[0]

    def in_sync(self, region, can_block):
        if not can_block:
            return -errno.EWOULDBLOCK
        r, d = self._req(DM_ULOG_IN_SYNC, struct.pack("=Q", region), 8)
        return 0 if r else struct.unpack("=q", d[:8].ljust(8, b"\0"))[0]

    def mark_region(self, region):
        self.mark_list.insert(0, region)

    def clear_region(self, region):
        self.clear_list.insert(0, region)

    def _flush_by_group(self, request_type, regions, integrated=False):
        r = 0
        groups = [regions[i:i + MAX_FLUSH_GROUP_COUNT]
                  for i in range(0, len(regions), MAX_FLUSH_GROUP_COUNT)]
        left = []
        for g in groups:
            r, _ = self._req(request_type, b"".join(struct.pack("=Q", x) for x in g))
            if r:
                # retry one by one
                for x in g:
                    r, _ = self._req(request_type, struct.pack("=Q", x))
                    if r:
                        left.append(x)
                break
        return r

    def flush(self):
        marks, self.mark_list = self.mark_list, []
        clears, self.clear_list = self.clear_list, []
        if not marks and not clears:
            return 0
        r = self._flush_by_group(DM_ULOG_CLEAR_REGION, clears)
        if not r:
            if not self.integrated_flush:
                r = self._flush_by_group(DM_ULOG_MARK_REGION, marks)
                if not r:
                    r = self._req(DM_ULOG_FLUSH)[0]
            else:
                # marks travel in the FLUSH requests; a flush with only clears is
                # the kernel's delayed (3 s) flush, done at once here
                if marks:
                    r = self._flush_by_group(DM_ULOG_FLUSH, marks, True)
                else:
                    r = self._req(DM_ULOG_FLUSH)[0]
        if r:
            self.table_event()
        return r

    def get_resync_work(self):
        if self.in_sync_hint >= self.region_count:
            return 0, None
        r, d = self._req(DM_ULOG_GET_RESYNC_WORK, b"", 16)
        if r:
            return r, None
        i, region = struct.unpack("=qQ", d[:16].ljust(16, b"\0"))
        return (i, region) if i else (0, None)

    def set_region_sync(self, region, in_sync):
        self._req(DM_ULOG_SET_REGION_SYNC, struct.pack("=Qq", region, in_sync))

    def get_sync_count(self):
        r, d = self._req(DM_ULOG_GET_SYNC_COUNT, b"", 8)
        if r:
            return 0
        count = struct.unpack("=Q", d[:8].ljust(8, b"\0"))[0]
        if count >= self.region_count:
            self.in_sync_hint = self.region_count
        return count

    def is_remote_recovering(self, region):
        if region < self.in_sync_hint:
            return 0
        r, d = self._req(DM_ULOG_IS_REMOTE_RECOVERING, struct.pack("=Q", region), 16)
        if r:
            return 1
        rec, hint = struct.unpack("=qQ", d[:16].ljust(16, b"\0"))
        self.in_sync_hint = hint
        return rec

    def status(self, type_):
        if type_ == STATUSTYPE_INFO:
            r, d = self._req(DM_ULOG_STATUS_INFO, b"", DM_ULOG_PREALLOCED_SIZE)
            if r:
                return "%s 1 COM_FAILURE" % self.name
            return d.split(b"\0", 1)[0].decode()
        if type_ == STATUSTYPE_TABLE:
            s = "%s %u %s " % (self.name, self.usr_argc, self.uuid)
            if self.integrated_flush:
                s += "integrated_flush "
            return s + "%s " % self.ctr_str.split(" ", 1)[1]
        return ""
