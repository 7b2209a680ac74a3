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

The server (``LogServer``, started with ``dmctl logd start``): the simulator's
connector delivers each request to it when it runs; without it a request fails with
-ESRCH, and a constructor fails exactly as the kernel's does when no cmirrord
listens.  It keeps cmirrord's per-log state (clean/sync bits, sync_count, in_sync,
one recovering region, the mark list of (node, region), the priority recovery list)
and, for clustered-disk, writes the kernel disk log format (header + clean bits at
byte 1024) to the log device through simulated bios.

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

Where the server lives, and the cluster: by default in the simulator's own store
(meta key ``logd``), i.e. one host, node 1, exactly as before.  With
``DMCTL_LOGD_DIR`` set, in ``$DMCTL_LOGD_DIR/logd.db``, a SQLite database of its own
that any number of sim dirs (simulated hosts, each its own kernel) share, locked for
each request (BEGIN IMMEDIATE ... COMMIT), so that requests of all hosts are applied
in one order, as cmirrord's CPG delivers them.  Each request carries its host as
cmirrord's originator: the node id the server gave that sim dir (1, 2, ... in the
order it first heard from them; its real path is the key).  Logs are kept per
(node, uuid, luid), as each node's cmirrord keeps its own.  The resumed logs with one
uuid form that uuid's CPG: RESUME joins it (the first member reads the disk log; a
later one copies a member's state, the checkpoint), POSTSUSPEND and DTR leave it;
the multicast requests (IS_CLEAN, FLUSH, MARK/CLEAR_REGION, GET_RESYNC_WORK,
SET_REGION_SYNC, STATUS_INFO, IS_REMOTE_RECOVERING) are applied to every member's
copy with the originator's node id, and the server's copy (lowest node id) answers.
So MARK records (node, region) and clears the clean bit when no node had the region
marked; CLEAR drops only the originator's mark, and the region is clean again only
when no node still has it marked (and it is in sync).  Only the server's copy writes
a clustered-disk log.

Deviations (the simulator cannot block a process): a request to a server that is
gone is answered -ESRCH after the kernel's "Userspace log server not found" line
instead of being retried every 2 s forever; ``is_remote_recovering`` asks the server
every time instead of at most once per HZ/4.  Cluster: the server's disk writes go
through the originating host's kernel, to its own log device (the hosts share the
backing files); a joining node's checkpoint also carries the mark list (cmirrord's
carries the bitmaps and the recovering region only), so every copy stays the same;
the shared server's state is committed with each request, so a dmctl command that
is rolled back (a bug, not a kernel error) does not undo what the server saw -- as
with a real daemon.  ``dmctl sim crash`` of a host is its node leaving every CPG
(corosync's view of a dead node): its logs go, a region it was recovering is free
again, its marks stay with the others (cmirrord's rule: such a region stays dirty
until that node clears it after rejoining, or the next activation resyncs it); a
shared server's disk-log writes are FUA, since the log device is shared storage
that one host's power cut cannot undo (the simulator's volatile caches are per host).
"""

import errno
import os
import pickle
import sqlite3
import struct

from dmctl.formats import mirror_log as F
from dmctl.sim import bio as B
from dmctl.sim.targets.base import STATUSTYPE_INFO, STATUSTYPE_TABLE
from dmctl.sim.targets.dirty_log.base import DirtyLog, LogError

PREFIX = "device-mapper: dm-log-userspace: "
DM_UUID_LEN = 129
DM_ULOG_REQUEST_VERSION = 3
CN_IDX_DM = 0x7
CN_VAL_DM_USERSPACE_LOG = 0x1
DM_ULOG_PREALLOCED_SIZE = 512
MAX_FLUSH_GROUP_COUNT = 32
DM_ULOG_RESPONSE = 0x1000
DM_ULOG_REQUEST_MASK = 0xFF

(DM_ULOG_CTR, DM_ULOG_DTR, DM_ULOG_PRESUSPEND, DM_ULOG_POSTSUSPEND, DM_ULOG_RESUME,
 DM_ULOG_GET_REGION_SIZE, DM_ULOG_IS_CLEAN, DM_ULOG_IN_SYNC, DM_ULOG_FLUSH,
 DM_ULOG_MARK_REGION, DM_ULOG_CLEAR_REGION, DM_ULOG_GET_RESYNC_WORK,
 DM_ULOG_SET_REGION_SYNC, DM_ULOG_GET_SYNC_COUNT, DM_ULOG_STATUS_INFO,
 DM_ULOG_STATUS_TABLE, DM_ULOG_IS_REMOTE_RECOVERING) = range(1, 18)

CN_MSG = struct.Struct("=IIIIHH")                 # struct cn_msg (20 bytes)
ULOG_REQ = struct.Struct("=Q129s3sIiIII")         # struct dm_ulog_request (160 bytes)
assert CN_MSG.size == 20 and ULOG_REQ.size == 160

META_KEY = "logd"          # the running server's state in the simulator's store
META_SEQ = "ulog_seq"      # the kernel's global request sequence counter
META_LUID = "ulog_luid"    # source of unique log ids (the kernel uses the log's address)


def pack_request(luid, uuid, seq, request_type, data=b"", error=0,
                 version=DM_ULOG_REQUEST_VERSION):
    """cn_msg + dm_ulog_request + data, as dm_consult_userspace sends it."""
    req = ULOG_REQ.pack(luid, uuid.encode()[:DM_UUID_LEN - 1], b"", version, error, seq,
                        request_type, len(data)) + bytes(data)
    return CN_MSG.pack(CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, seq, 0, len(req), 0) + req


def unpack_request(msg):
    """(cn (idx, val, seq, ack, len, flags), req dict, data) of a connector message."""
    cn = CN_MSG.unpack_from(msg)
    if cn[4] == 0:
        return cn, None, b""
    luid, uuid, _pad, version, error, seq, rtype, dsize = ULOG_REQ.unpack_from(msg, CN_MSG.size)
    req = {"luid": luid, "uuid": uuid.split(b"\0", 1)[0].decode(), "version": version,
           "error": error, "seq": seq, "request_type": rtype, "data_size": dsize}
    off = CN_MSG.size + ULOG_REQ.size
    return cn, req, bytes(msg[off:off + dsize])


def _next_meta(store, key, start):
    v = store.get_meta(key)
    v = start if v is None else int(v)
    store.set_meta(key, v + 1)
    return v


# -- where the server lives ------------------------------------------------------------------

LOGD_DB = "logd.db"
_CONNS = {}


def logd_dir(store):
    """The directory holding the server's state: ``$DMCTL_LOGD_DIR``, or the sim dir."""
    return os.environ.get("DMCTL_LOGD_DIR") or store.dir


def _same_dir(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


class _Home:
    """The server's state: in the simulator's own store (one host, the default), or in
    ``$DMCTL_LOGD_DIR/logd.db`` shared by several sim dirs (one cluster).  The shared
    database is locked for the length of one request (BEGIN IMMEDIATE ... COMMIT), so
    hosts in other processes see the requests in one agreed order, as a CPG would."""

    def __init__(self, store):
        d = logd_dir(store)
        self.node_key = os.path.realpath(store.dir)
        if _same_dir(d, store.dir):
            self.store, self.db = store, None
            return
        self.store = None
        path = os.path.realpath(os.path.join(d, LOGD_DB))
        db = _CONNS.get(path)
        if db is None or not os.path.exists(path):      # (a directory made anew)
            os.makedirs(d, exist_ok=True)
            db = sqlite3.connect(path, timeout=60.0, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=60000")
            db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value)")
            _CONNS[path] = db
        self.db = db

    @property
    def shared(self):
        return self.db is not None

    def get(self):
        if self.db is None:
            return self.store.get_meta(META_KEY)
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
        return None if row is None else row[0]

    def put(self, blob):
        if self.db is None:
            if blob is None:
                self.store.db.execute("DELETE FROM meta WHERE key=?", (META_KEY,))
            else:
                self.store.set_meta(META_KEY, blob)
        elif blob is None:
            self.db.execute("DELETE FROM meta WHERE key=?", (META_KEY,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (META_KEY, blob))

    def locked(self, fn):
        """fn() with the shared database locked (the simulator's own store is already
        inside the command's transaction)."""
        if self.db is None or self.db.in_transaction:
            return fn()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            r = fn()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return r


def _load_server(blob):
    from dmctl.sim.store import loads
    srv = loads(blob)
    if not hasattr(srv, "nodes"):            # state saved before nodes existed
        srv.nodes = {}
        logs = {}
        for key, lc in srv.logs.items():
            lc.node = getattr(lc, "node", MY_NODE)
            logs[(lc.node,) + tuple(key[-2:])] = lc
        srv.logs = logs
    return srv


# -- the connector ------------------------------------------------------------------------

def connector_send(env, msg):
    """cn_netlink_send to the dm-log-userspace group: the reply message, or a negative
    errno (-ESRCH when nobody listens).  The request carries the originating host
    (cmirrord's ``originator``): node 1 when the server is the sim dir's own, else the
    node the shared server numbered this sim dir."""
    home = _Home(env.store)

    def fn():
        blob = home.get()
        if blob is None:
            return -errno.ESRCH
        server = _load_server(blob)
        node = server.node_id(home.node_key) if home.shared else MY_NODE
        reply = server.handle(env, msg, node)
        home.put(pickle.dumps(server, protocol=4))
        return reply
    return home.locked(fn)


def host_crashed(env):
    """``dmctl sim crash``: this host's cmirrord goes down with it, so the server
    drops the host's logs (see LogServer.node_left).  Returns how many went."""
    home = _Home(env.store)

    def fn():
        blob = home.get()
        if blob is None:
            return 0
        server = _load_server(blob)
        node = server.nodes.get(home.node_key) if home.shared else MY_NODE
        if node is None or not server.node_left(node):
            return 0
        home.put(pickle.dumps(server, protocol=4))
        return 1
    return home.locked(fn)


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

    def _req(self, request_type, data=b"", rdata_size=0):
        r, rdata = dm_consult_userspace(self, request_type, data, rdata_size)
        if r == -errno.ESRCH:
            self.klog(PREFIX + " Userspace log server not found.")
        return r, rdata

    # -- operations -------------------------------------------------------------------------
    def dtr(self):
        if self.ms is not None:
            dm_consult_userspace(self, DM_ULOG_DTR)

    def presuspend(self):
        return self._req(DM_ULOG_PRESUSPEND)[0]

    def postsuspend(self):
        return self._req(DM_ULOG_POSTSUSPEND)[0]

    def resume(self):
        self.in_sync_hint = 0
        return self._req(DM_ULOG_RESUME)[0]

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


# -- the log server (cmirrord's clustered logs, one node) ----------------------------------------

MY_NODE = 1
DEFAULTSYNC, NOSYNC, FORCESYNC = 0, 1, 2
LOG_RESUMED, LOG_SUSPENDED = 1, 2


# requests cmirrord multicasts to the log's CPG: every member applies them to its copy
MULTICAST = frozenset((DM_ULOG_IS_CLEAN, DM_ULOG_FLUSH, DM_ULOG_MARK_REGION,
                       DM_ULOG_GET_RESYNC_WORK, DM_ULOG_SET_REGION_SYNC, DM_ULOG_STATUS_INFO,
                       DM_ULOG_IS_REMOTE_RECOVERING))


class ClusteredLog:
    """One node's ``struct log_c``: the log of one table instance (uuid + luid) on one
    node, with that node's copy of the cluster's state."""

    def __init__(self, uuid, luid, disk, devarg, devno, region_size, region_count, sync,
                 block_on_error, node=MY_NODE):
        self.uuid = uuid
        self.luid = luid
        self.node = node
        self.disk = disk
        self.devarg = devarg
        self.devno = devno
        self.region_size = region_size
        self.region_count = region_count
        self.sync = sync
        self.block_on_error = block_on_error
        n = F.bitset_size(region_count)
        self.clean_bits = bytearray(n)
        self.sync_bits = bytearray(n)
        self.sync_count = 0
        self.in_sync = 0
        self.recovering_region = -1
        self.recoverer = 0
        self.sync_search = 0
        self.recovery_request_list = []
        self.mark_list = []
        self.state = LOG_SUSPENDED
        self.recovery_halted = 0
        self.touched = 0
        self.disk_failed = 0

    @property
    def type_name(self):
        return "clustered-disk" if self.disk else "clustered-core"

    def count_sync(self):
        self.sync_count = sum(1 for i in range(self.region_count) if F.test_bit(self.sync_bits, i))


class LogServer:
    """The simulated cmirrord: ``handle(env, message) -> reply message``."""

    def __init__(self):
        self.logs = {}            # (node, uuid, luid) -> ClusteredLog
        self.nodes = {}           # a host's sim dir -> its node id (1, 2, ... as they come)
        self.log_lines = []

    def node_id(self, key):
        n = self.nodes.get(key)
        if n is None:
            n = self.nodes[key] = max(self.nodes.values(), default=0) + 1
        return n

    def node_left(self, node):
        """``node``'s host went down without suspending its logs (a power cut):
        corosync reports it gone from every CPG (cpg_leave_callback).  Its own copies
        die with its cmirrord; the other members forget a region it was recovering
        (it will never send SET_REGION_SYNC) and, as cmirrord does, keep its marks: a
        region it had marked stays dirty (in the disk log too) until that node marks
        and clears it again after rejoining, or the next activation of the whole
        cluster resyncs it.  Returns the number of logs that went."""
        gone = [key for key in self.logs if key[0] == node]
        for key in gone:
            del self.logs[key]
        for lc in self.logs.values():
            if lc.recoverer == node and lc.recovering_region != -1:
                lc.recovering_region = -1
        if gone:
            self._say("node %d left (%d log(s))" % (node, len(gone)))
        return len(gone)

    def _say(self, line):
        self.log_lines.append(line)
        del self.log_lines[:-200]

    def _find(self, req, node=MY_NODE):
        for (n, uuid, luid), lc in self.logs.items():
            if n == node and uuid == req["uuid"] and (req["luid"] == 0 or luid == req["luid"]):
                return lc
        return None

    def members(self, lc):
        """The log's CPG: every resumed log with its uuid, the server (lowest node id)
        first.  A log that is not resumed has only its own copy."""
        if lc.state != LOG_RESUMED:
            return [lc]
        return sorted((m for m in self.logs.values()
                       if m.uuid == lc.uuid and m.state == LOG_RESUMED),
                      key=lambda m: (m.node, m.luid))

    def handle(self, env, msg, node=MY_NODE):
        """One request from ``node``'s kernel (cmirrord's originator)."""
        cn, req, data = unpack_request(msg)
        rtype = req["request_type"]
        if rtype == DM_ULOG_CLEAR_REGION:
            lc = self._find(req, node)
            if lc is not None:
                for m in self.members(lc):
                    self._clear(m, data, node)
            # kernel_ack(seq, 0): a zero-length message carrying the seq
            return CN_MSG.pack(CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, cn[2], 0, 0, 0)
        error, out = 0, b""
        try:
            if rtype == DM_ULOG_CTR:
                out = self._ctr(env, req, data, node)
            else:
                lc = self._find(req, node)
                if lc is None:
                    raise _Err(errno.EINVAL)
                if rtype in MULTICAST:
                    # every member applies it; the server's copy answers
                    out = None
                    for m in self.members(lc):
                        r = self._dispatch(env, m, req, rtype, data, node, lc)
                        out = r if out is None else out
                else:
                    out = self._dispatch(env, lc, req, rtype, data, node, lc)
        except _Err as e:
            error = -e.errno
            out = b""
        rep = ULOG_REQ.pack(req["luid"], req["uuid"].encode(), b"", req["version"], error,
                            req["seq"], rtype | DM_ULOG_RESPONSE, len(out)) + out
        return CN_MSG.pack(CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, cn[2], 0, len(rep), 0) + rep

    # -- requests ------------------------------------------------------------------------------
    def _ctr(self, env, req, data, node=MY_NODE):
        argv = data.split(b"\0", 1)[0].decode().split(" ")
        if len(argv) < 2:
            raise _Err(errno.EINVAL)
        dev_size = int(argv[0])
        ltype, args = argv[1], argv[2:]
        if ltype not in ("clustered-disk", "clustered-core"):
            self._say('Unsupported userspace log type, "%s"' % ltype)
            raise _Err(errno.EINVAL)
        disk = bool(args) and not _is_number(args[0])
        lo, hi = (2, 4) if disk else (1, 3)
        if len(args) < lo:
            self._say("Too few arguments to %s log type" % ltype)
            raise _Err(errno.EINVAL)
        if len(args) > hi:
            self._say("Too many arguments to %s log type" % ltype)
            raise _Err(errno.EINVAL)
        devarg = args[0] if disk else None
        rs_arg = args[1] if disk else args[0]
        try:
            region_size = int(rs_arg, 0)
        except ValueError:
            region_size = 0
        if region_size <= 0:
            self._say("Invalid region_size argument to clustered-%s log type"
                      % ("disk" if disk else "core"))
            raise _Err(errno.EINVAL)
        sync, boe = DEFAULTSYNC, False
        for w in args[2 if disk else 1:]:
            if w == "sync":
                sync = FORCESYNC
            elif w == "nosync":
                sync = NOSYNC
            elif w == "block_on_error":
                boe = True
            else:
                self._say("Invalid argument: %s" % w)
                raise _Err(errno.EINVAL)
        key = (node, req["uuid"], req["luid"])
        if key in self.logs:
            self._say("[%s/%d] Log already exists, unable to create." % (req["uuid"][-8:], req["luid"]))
            raise _Err(errno.EINVAL)
        devno = None
        if disk:
            try:
                devno = env.lookup_device(devarg).devno
            except OSError as e:
                raise _Err(e.errno)
        region_count = -(-dev_size // region_size)
        self.logs[key] = ClusteredLog(req["uuid"], req["luid"], disk, devarg, devno,
                                      region_size, region_count, sync, boe, node)
        if disk and req["version"] > 1:
            return devarg.encode() + b"\0"
        return b""

    def _dispatch(self, env, lc, req, rtype, data, node=MY_NODE, orig=None):
        """``rtype`` applied to ``lc`` (one member's copy) for a request of ``node``
        whose own log is ``orig``."""
        orig = orig or lc
        if rtype == DM_ULOG_DTR:
            del self.logs[(lc.node, lc.uuid, lc.luid)]
            return b""
        if rtype == DM_ULOG_PRESUSPEND:
            lc.recovery_halted = 1
            return b""
        if rtype == DM_ULOG_POSTSUSPEND:
            # the node leaves the CPG: the others forget a region it was recovering
            for m in self.members(lc):
                if m is not lc and m.recoverer == node and m.recovering_region != -1:
                    m.recovering_region = -1
            lc.state = LOG_SUSPENDED
            lc.recovering_region = -1
            lc.recovery_request_list = []
            return b""
        if rtype == DM_ULOG_RESUME:
            self._resume(env, lc)
            return b""
        if rtype == DM_ULOG_GET_REGION_SIZE:
            return struct.pack("=Q", lc.region_size)
        if rtype in (DM_ULOG_IS_CLEAN, DM_ULOG_IN_SYNC, DM_ULOG_IS_REMOTE_RECOVERING):
            region = struct.unpack("=Q", data[:8])[0]
            if region >= lc.region_count:
                raise _Err(errno.EINVAL)
            if rtype == DM_ULOG_IS_CLEAN:
                return struct.pack("=q", F.test_bit(lc.clean_bits, region))
            if rtype == DM_ULOG_IN_SYNC:
                return struct.pack("=q", 1 if lc.in_sync else F.test_bit(lc.sync_bits, region))
            if lc.recovery_halted:
                return struct.pack("=qQ", 0, lc.region_count)
            insync = F.test_bit(lc.sync_bits, region)
            if not insync and region != lc.recovering_region and \
                    region not in lc.recovery_request_list:
                lc.recovery_request_list.append(region)
            return struct.pack("=qQ", int(not insync), lc.sync_search - 1 if lc.sync_search else 0)
        if rtype == DM_ULOG_FLUSH:
            # only the server writes the disk log (through the originator's device)
            if lc.touched and lc.disk and lc is self.members(lc)[0]:
                self._write_disk(env, lc, orig.devno)
            lc.touched = 0
            return b""
        if rtype == DM_ULOG_MARK_REGION:
            for (region,) in struct.iter_unpack("=Q", data):
                if not any(r == region for _, r in lc.mark_list):
                    F.clear_bit(lc.clean_bits, region)
                    lc.touched = 1
                if (node, region) not in lc.mark_list:
                    lc.mark_list.append((node, region))
            return b""
        if rtype == DM_ULOG_GET_RESYNC_WORK:
            return self._resync_work(lc, node)
        if rtype == DM_ULOG_SET_REGION_SYNC:
            region, in_sync = struct.unpack("=Qq", data[:16])
            lc.recovering_region = -1
            if in_sync:
                if not F.test_bit(lc.sync_bits, region):
                    F.set_bit(lc.sync_bits, region)
                    lc.sync_count += 1
            elif F.test_bit(lc.sync_bits, region):
                F.clear_bit(lc.sync_bits, region)
                lc.sync_count -= 1
            lc.count_sync()
            if lc.sync_count == lc.region_count:
                lc.in_sync = 1
            return b""
        if rtype == DM_ULOG_GET_SYNC_COUNT:
            return struct.pack("=Q", lc.sync_count)
        if rtype == DM_ULOG_STATUS_INFO:
            if lc.disk:
                return ("3 clustered-disk %d:%d %s" % (lc.devno[0], lc.devno[1],
                                                      "D" if lc.disk_failed else "A")).encode()
            return b"1 clustered-core"
        if rtype == DM_ULOG_STATUS_TABLE:
            sync = {DEFAULTSYNC: "", NOSYNC: "nosync ", FORCESYNC: "sync "}[lc.sync]
            boe = "block_on_error" if lc.block_on_error else ""
            if lc.disk:
                return ("clustered-disk %d:%d %u %s%s " % (lc.devno[0], lc.devno[1],
                                                           lc.region_size, sync, boe)).encode()
            return ("clustered-core %u %s%s " % (lc.region_size, sync, boe)).encode()
        raise _Err(errno.EINVAL)

    def _clear(self, lc, data, node=MY_NODE):
        """A region is clean again only when no node still has it marked."""
        for (region,) in struct.iter_unpack("=Q", data):
            if (node, region) in lc.mark_list:
                lc.mark_list.remove((node, region))
            if any(r == region for _, r in lc.mark_list):
                continue
            if F.test_bit(lc.sync_bits, region):
                F.set_bit(lc.clean_bits, region)
                lc.touched = 1

    def _resync_work(self, lc, node=MY_NODE):
        if lc.sync_search >= lc.region_count:
            return struct.pack("=qQ", 0, 0)
        if lc.recovering_region != -1:
            if lc.recoverer == node:
                return struct.pack("=qQ", 1, lc.recovering_region)
            return struct.pack("=qQ", 0, 0)
        while lc.recovery_request_list:
            region = lc.recovery_request_list.pop(0)
            if not F.test_bit(lc.sync_bits, region):
                lc.recovering_region = region
                lc.recoverer = node
                return struct.pack("=qQ", 1, region)
        region = F.find_next_zero_bit(lc.sync_bits, lc.region_count, lc.sync_search)
        lc.sync_search = region + 1
        if region >= lc.region_count:
            return struct.pack("=qQ", 0, 0)
        lc.recovering_region = region
        lc.recoverer = node
        return struct.pack("=qQ", 1, region)

    def _resume(self, env, lc):
        lc.recovery_halted = 0
        if lc.state == LOG_RESUMED:
            return
        others = [m for m in self.logs.values()
                  if m is not lc and m.uuid == lc.uuid and m.state == LOG_RESUMED]
        if others:
            # joining a running CPG: the state comes from a member's checkpoint (sync
            # and clean bits, the recovering region) -- and here the mark list too, so
            # that every copy stays the same
            src = min(others, key=lambda m: (m.node, m.luid))
            if src.region_count != lc.region_count:
                self._say("Error:: partial bit loading (just %d of %d bits)"
                          % (src.region_count, lc.region_count))
                raise _Err(errno.EINVAL)
            lc.sync_bits = bytearray(src.sync_bits)
            lc.clean_bits = bytearray(src.clean_bits)
            lc.recovering_region, lc.recoverer = src.recovering_region, src.recoverer
            lc.sync_search = src.sync_search
            lc.mark_list = list(src.mark_list)
            lc.count_sync()
            lc.in_sync = int(src.in_sync or lc.sync_count == lc.region_count)
            lc.state = LOG_RESUMED
            return
        disk_nr_regions = 0
        if lc.disk:
            size = _disk_size(lc.region_count)
            buf = bytearray(size)
            err = _io(env, lc.devno, B.READ, size >> 9, buf)
            if err:
                self._say("Failed to read disk log")
                lc.disk_failed = 1
            else:
                magic, version, nr = F.unpack_header(buf)
                if magic != F.MIRROR_MAGIC or lc.sync != DEFAULTSYNC:
                    self._say("Disk log not initialized (bad magic): full resync")
                else:
                    # only the magic is checked
                    disk_nr_regions = nr
                    bits = F.clean_bits(buf, lc.region_count)
                    nb = -(-lc.region_count // 8)
                    lc.clean_bits = bytearray(bits[:nb]) + bytearray(len(bits) - nb)
        if not lc.disk:
            lc.clean_bits = bytearray(b"\xff" * len(lc.clean_bits))
        for i in range(min(disk_nr_regions, lc.region_count), lc.region_count):
            (F.set_bit if lc.sync == NOSYNC else F.clear_bit)(lc.clean_bits, i)
        i = lc.region_count
        while i < len(lc.clean_bits) * 8:
            F.clear_bit(lc.clean_bits, i)
            i += 1
        lc.sync_bits = bytearray(lc.clean_bits)
        lc.count_sync()
        lc.in_sync = int(lc.sync_count == lc.region_count)
        lc.sync_search = 0
        lc.recovering_region = -1
        lc.state = LOG_RESUMED
        if lc.disk:
            self._write_disk(env, lc)

    def _write_disk(self, env, lc, devno=None):
        # cmirrord's disk_size: (ceil(region_count / page) + 1) pages; header at 0,
        # ceil(region_count / 8) bytes of clean bits at 1024, the rest zero
        data = bytearray(_disk_size(lc.region_count))
        data[0:16] = F.pack_header(lc.region_count)
        nb = -(-lc.region_count // 8)
        data[F.BITS_OFFSET:F.BITS_OFFSET + nb] = lc.clean_bits[:nb]
        # shared by several hosts, the log device is shared storage: what cmirrord's
        # O_DIRECT write put there outlives the host whose kernel carried it (the
        # simulator's volatile caches are per host, so the write is made FUA)
        err = _io(env, devno or lc.devno, B.WRITE, len(data) >> 9, bytes(data),
                  B.FUA if self.nodes else 0)
        if err:
            lc.disk_failed = 1


class _Err(Exception):
    def __init__(self, err):
        self.errno = err


def _disk_size(region_count, page=4096):
    return (-(-region_count // page) + 1) * page


def _is_number(s):
    try:
        int(s, 0)
        return True
    except ValueError:
        return False


def _io(env, devno, op, nr, data, flags=0):
    try:
        dev = env.device_by_devno(devno)
    except OSError:
        return errno.EIO
    b = B.Bio(op, 0, nr, data, flags)
    dev.submit(b)
    return b.error if b.done else errno.EIO


# -- starting and stopping the server (``dmctl logd``) -----------------------------------------

def _with_home(mapper, fn):
    """fn(home, node) inside one simulator step, with the server's home locked."""
    def step(env):
        home = _Home(env.store)
        return home.locked(lambda: fn(home))
    return mapper.run(step)


def logd_start(mapper):
    """Start the log server (no-op when it runs).  With ``$DMCTL_LOGD_DIR`` set, the
    server in that directory, shared by every sim dir that sets it."""
    def fn(home):
        if home.get() is None:
            home.put(pickle.dumps(LogServer(), protocol=4))
            return True
        return False
    return _with_home(mapper, fn)


def logd_stop(mapper, force=False):
    """Stop it; like cmirrord's SIGINT it refuses while logs exist (unless forced).
    Returns the number of logs it still had (on every node)."""
    def fn(home):
        blob = home.get()
        if blob is None:
            return 0
        n = len(_load_server(blob).logs)
        if n and not force:
            return n
        home.put(None)
        return n
    return _with_home(mapper, fn)


def logd_state(mapper):
    """None when not running, else [(uuid, luid, type, sync_count, region_count, state)]
    (what cmirrord dumps on SIGUSR1), every node's logs."""
    logs = logd_logs(mapper)
    if logs is None:
        return None
    return [(l["uuid"], l["luid"], l["type"], l["sync_count"], l["region_count"], l["state"])
            for l in logs]


def logd_logs(mapper):
    """None when not running, else one dict per log: node, uuid, luid, type,
    sync_count, region_count, state, ``clean`` (the set of clean regions of that
    node's copy), ``marks`` (sorted (node, region) pairs), ``server`` (that copy is
    resumed and answers for its CPG), ``this_node`` (the log is this sim dir's)."""
    def fn(home):
        blob = home.get()
        if blob is None:
            return None
        srv = _load_server(blob)
        me = srv.nodes.get(home.node_key) if home.shared else MY_NODE
        out = []
        for lc in srv.logs.values():
            out.append({"node": lc.node, "uuid": lc.uuid, "luid": lc.luid,
                        "type": lc.type_name, "sync_count": lc.sync_count,
                        "region_count": lc.region_count,
                        "state": "RESUMED" if lc.state == LOG_RESUMED else "SUSPENDED",
                        "clean": {i for i in range(lc.region_count)
                                  if F.test_bit(lc.clean_bits, i)},
                        "marks": sorted(lc.mark_list),
                        "server": lc.state == LOG_RESUMED and srv.members(lc)[0] is lc,
                        "this_node": lc.node == me})
        return out
    return _with_home(mapper, fn)
