"""cmirrord's per-log state machine (lvm2 daemons/cmirrord/functions.c, cluster.c).

``LogServer.handle(host, message, node) -> reply`` takes one kernel request (cn_msg +
dm_ulog_request + payload) from ``node`` (cmirrord's ``originator``) and answers it.
``host`` is how the daemon reaches that node's log device: ``host.lookup(devarg)``
-> (major, minor) (OSError when it does not exist) and ``host.io(devno, op, sectors,
data, flags)`` -> (error, data).

State kept per log and node (``ClusteredLog``, cmirrord's ``struct log_c``): the clean
and sync bits, sync_count, the sticky ``in_sync``, one recovering region and its
recoverer, the mark list of (node, region), the priority recovery list.  For
clustered-disk the server copy writes the kernel's disk log format (header + clean bits
at byte 1024) through the originating host.

The cluster (until corosync's CPG comes): every node whose kernel talks to this daemon
is a member; the resumed logs with one uuid form that uuid's CPG.  RESUME joins it (the
first member reads the disk log, a later one copies a member's state: the checkpoint),
POSTSUSPEND and DTR leave it; the multicast requests (IS_CLEAN, FLUSH, MARK/CLEAR_REGION,
GET_RESYNC_WORK, SET_REGION_SYNC, STATUS_INFO, IS_REMOTE_RECOVERING) are applied to every
member's copy with the originator's node id, and the server's copy (lowest node id)
answers.  MARK records (node, region) and clears the clean bit when no node had the
region marked; CLEAR drops only the originator's mark, and the region is clean again
only when no node still has it marked (and it is in sync).

Restart (§1.5-§1.6 of cluster-log.md): a request for a log the daemon does not know is
answered -ESRCH with its payload padded, so that the kernel re-sends its constructor
and RESUME.  The state persisted before the daemon went (``recovered``, keyed by
(node, uuid, luid)) is taken back at that RESUME exactly as acknowledged; without it,
a clustered-disk log comes from the disk log (regions not clean there are not in sync)
and a clustered-core log starts as cmirrord's does.

Deviations from cmirrord, deliberate: a node that goes away without suspending (a
crash) frees a region it was recovering (cmirrord keeps it locked and the whole
resync stalls, §2.6); a joining node's checkpoint also carries the mark list; unknown
logs get -ESRCH instead of -EINVAL (cmirrord leaves such a mirror broken);
``integrated_flush`` marks are honoured.
"""

import errno
import struct

from dmctl.constants import (DM_ULOG_CLEAR_REGION, DM_ULOG_CTR, DM_ULOG_DTR,
                             DM_ULOG_FLUSH, DM_ULOG_GET_REGION_SIZE,
                             DM_ULOG_GET_RESYNC_WORK, DM_ULOG_GET_SYNC_COUNT,
                             DM_ULOG_IN_SYNC, DM_ULOG_IS_CLEAN,
                             DM_ULOG_IS_REMOTE_RECOVERING, DM_ULOG_MARK_REGION,
                             DM_ULOG_POSTSUSPEND, DM_ULOG_PRESUSPEND, DM_ULOG_RESPONSE,
                             DM_ULOG_RESUME, DM_ULOG_SET_REGION_SYNC, DM_ULOG_STATUS_INFO,
                             DM_ULOG_STATUS_TABLE)
from dmctl.formats import mirror_log as F
from dmctl.formats import ulog as W

MY_NODE = 1
DEFAULTSYNC, NOSYNC, FORCESYNC = 0, 1, 2
LOG_RESUMED, LOG_SUSPENDED = 1, 2
MAX_REQUEST_TYPE = DM_ULOG_IS_REMOTE_RECOVERING

# requests cmirrord multicasts to the log's CPG: every member applies them to its copy
MULTICAST = frozenset((DM_ULOG_IS_CLEAN, DM_ULOG_FLUSH, DM_ULOG_MARK_REGION,
                       DM_ULOG_GET_RESYNC_WORK, DM_ULOG_SET_REGION_SYNC, DM_ULOG_STATUS_INFO,
                       DM_ULOG_IS_REMOTE_RECOVERING))
# requests whose effect must be on disk before the reply (a restart must take back what
# was acknowledged: the logs, their luids and resume state, every mark and clear -- the
# kernel never re-sends a clear, so a lost one would keep its region marked for every
# node -- every region set in sync).  The others are read-only or safe to lose: a lost
# GET_RESYNC_WORK or IS_REMOTE_RECOVERING is asked again (the recoverer still sends its
# SET_REGION_SYNC), PRESUSPEND is followed by POSTSUSPEND.
PERSIST = frozenset((DM_ULOG_CTR, DM_ULOG_DTR, DM_ULOG_RESUME, DM_ULOG_POSTSUSPEND,
                     DM_ULOG_MARK_REGION, DM_ULOG_CLEAR_REGION, DM_ULOG_SET_REGION_SYNC))
# the payload each request must carry (bytes; None: any)
PAYLOAD = {DM_ULOG_IS_CLEAN: 8, DM_ULOG_IN_SYNC: 8, DM_ULOG_IS_REMOTE_RECOVERING: 8,
           DM_ULOG_SET_REGION_SYNC: 16}

READ, WRITE = W.IO_READ, W.IO_WRITE


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

    def take_state(self, src):
        """Copy the cluster state of ``src`` (a checkpoint, or the persisted copy)."""
        self.sync_bits = bytearray(src.sync_bits)
        self.clean_bits = bytearray(src.clean_bits)
        self.recovering_region, self.recoverer = src.recovering_region, src.recoverer
        self.sync_search = src.sync_search
        self.mark_list = list(src.mark_list)
        self.recovery_request_list = list(getattr(src, "recovery_request_list", []))
        self.count_sync()
        self.in_sync = int(src.in_sync or self.sync_count == self.region_count)

    def describe(self, server=False):
        """What ``dmctl logd status`` shows of this copy."""
        return {"node": self.node, "uuid": self.uuid, "luid": self.luid,
                "type": self.type_name, "region_size": self.region_size,
                "sync_count": self.sync_count, "region_count": self.region_count,
                "in_sync": bool(self.in_sync),
                "state": "RESUMED" if self.state == LOG_RESUMED else "SUSPENDED",
                "clean": [i for i in range(self.region_count)
                          if F.test_bit(self.clean_bits, i)],
                "marks": sorted(list(m) for m in self.mark_list),
                "recovering_region": None if self.recovering_region == -1
                else self.recovering_region,
                "recoverer": self.recoverer if self.recovering_region != -1 else None,
                "server": server,
                "device": "%d:%d" % tuple(self.devno) if self.devno else None}


class _Err(Exception):
    def __init__(self, err):
        self.errno = err


class LogServer:
    """The daemon's logs: ``handle(host, message, node) -> reply message``."""

    def __init__(self, say=None):
        self.logs = {}            # (node, uuid, luid) -> ClusteredLog
        self.recovered = {}       # the same, as persisted before a restart
        self.nodes = {}           # a host's name -> its node id (1, 2, ... as they come)
        self.say = say or (lambda line: None)

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("say", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self.say = lambda line: None

    def restarted(self):
        """After loading the persisted state: every log is unknown until its kernel
        constructs and resumes it again (the copies wait in ``recovered``)."""
        for key, lc in self.logs.items():
            self.recovered.setdefault(key, lc)
        self.logs = {}

    def node_id(self, name):
        n = self.nodes.get(name)
        if n is None:
            n = self.nodes[name] = max(self.nodes.values(), default=0) + 1
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
        for key in [k for k in self.recovered if k[0] == node]:
            del self.recovered[key]
        for lc in self.logs.values():
            if lc.recoverer == node and lc.recovering_region != -1:
                lc.recovering_region = -1
        if gone:
            self.say("node %d left (%d log(s))" % (node, len(gone)))
        return len(gone)

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

    def describe(self):
        out = []
        for lc in self.logs.values():
            out.append(lc.describe(lc.state == LOG_RESUMED and self.members(lc)[0] is lc))
        return out

    def must_persist(self, msg):
        """Whether what answering ``msg`` changed must be on disk before the reply."""
        try:
            _cn, req, data = W.unpack_request(msg)
        except ValueError:
            return False
        if req is None:
            return False
        rtype = req["request_type"]
        return rtype in PERSIST or (rtype == DM_ULOG_FLUSH and bool(data))

    def handle(self, host, msg, node=MY_NODE):
        """One request from ``node``'s kernel (cmirrord's originator).  Raises
        ValueError for a message that is not a request at all (too short, ACK-only)."""
        cn, req, data = W.unpack_request(msg)
        if req is None:
            raise ValueError("not a request (cn_msg.len 0)")
        rtype = req["request_type"]
        if rtype == 0:
            # cmirrord NACKs it with EAGAIN, so that the kernel re-sends at once
            return W.pack_ack(cn[2], errno.EAGAIN)
        error, out = 0, b""
        try:
            if req["version"] < 1 or req["version"] > 3:
                self.say("bad request version %d" % req["version"])
                raise _Err(errno.EINVAL)
            if len(data) != req["data_size"] or req["data_size"] > W.ULOG_REQUEST_SIZE:
                self.say("bad payload size %d (%d bytes came)" % (req["data_size"], len(data)))
                raise _Err(errno.EINVAL)
            if rtype > MAX_REQUEST_TYPE:
                self.say("unknown request type %d" % rtype)
                raise _Err(errno.EINVAL)
            if PAYLOAD.get(rtype, 0) > len(data):
                raise _Err(errno.EINVAL)
            if rtype == DM_ULOG_CLEAR_REGION:
                if len(data) % 8:
                    raise _Err(errno.EINVAL)
                lc = self._find(req, node)
                if lc is None:
                    raise _Err(errno.ESRCH)
                for m in self.members(lc):
                    self._clear(m, data, node)
                # kernel_ack(seq, 0): a zero-length message carrying the seq
                return W.pack_ack(cn[2], 0)
            if rtype == DM_ULOG_CTR:
                out = self._ctr(host, req, data, node)
            else:
                lc = self._find(req, node)
                if lc is None:
                    if rtype == DM_ULOG_DTR:
                        self.recovered.pop((node, req["uuid"], req["luid"]), None)
                        raise _Err(0)
                    raise _Err(errno.ESRCH)
                if rtype in (DM_ULOG_MARK_REGION, DM_ULOG_FLUSH) and len(data) % 8:
                    raise _Err(errno.EINVAL)
                if rtype in MULTICAST:
                    # every member applies it; the server's copy answers
                    out = None
                    for m in self.members(lc):
                        r = self._dispatch(host, m, req, rtype, data, node, lc)
                        out = r if out is None else out
                else:
                    out = self._dispatch(host, lc, req, rtype, data, node, lc)
        except _Err as e:
            error = -e.errno
            out = b""
            if e.errno == errno.ESRCH:
                # padded, so that the kernel's retry after its reconnect has room (§1.5)
                out = bytes(W.REPLY_ROOM.get(rtype, 0))
        return W.pack_reply(cn[2], req, error, out, rtype | DM_ULOG_RESPONSE)

    # -- requests ------------------------------------------------------------------------------
    def _ctr(self, host, req, data, node=MY_NODE):
        try:
            argv = data.split(b"\0", 1)[0].decode().split(" ")
            if len(argv) < 2:
                raise ValueError
            dev_size = int(argv[0])
        except ValueError:
            raise _Err(errno.EINVAL)
        ltype, args = argv[1], argv[2:]
        if ltype not in ("clustered-disk", "clustered-core"):
            self.say('Unsupported userspace log type, "%s"' % ltype)
            raise _Err(errno.EINVAL)
        disk = bool(args) and not _is_number(args[0])
        lo, hi = (2, 4) if disk else (1, 3)
        if len(args) < lo:
            self.say("Too few arguments to %s log type" % ltype)
            raise _Err(errno.EINVAL)
        if len(args) > hi:
            self.say("Too many arguments to %s log type" % ltype)
            raise _Err(errno.EINVAL)
        devarg = args[0] if disk else None
        rs_arg = args[1] if disk else args[0]
        try:
            region_size = int(rs_arg, 0)
        except ValueError:
            region_size = 0
        if region_size <= 0 or dev_size <= 0:
            self.say("Invalid region_size argument to clustered-%s log type"
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
                self.say("Invalid argument: %s" % w)
                raise _Err(errno.EINVAL)
        key = (node, req["uuid"], req["luid"])
        if key in self.logs:
            self.say("[%s/%d] Log already exists, unable to create." % (req["uuid"][-8:], req["luid"]))
            raise _Err(errno.EINVAL)
        region_count = -(-dev_size // region_size)
        if region_count > (1 << 26):
            self.say("Too many regions (%d)" % region_count)
            raise _Err(errno.EINVAL)
        devno = None
        if disk:
            try:
                devno = tuple(host.lookup(devarg))
            except OSError as e:
                raise _Err(e.errno or errno.ENODEV)
        lc = self.logs[key] = ClusteredLog(req["uuid"], req["luid"], disk, devarg, devno,
                                           region_size, region_count, sync, boe, node)
        # the kernel's reconnect (userspace_do_request) counts the string's NUL (§1.2)
        lc.reconnect = data.endswith(b"\0")
        if disk and req["version"] > 1:
            return devarg.encode() + b"\0"
        return b""

    def _dispatch(self, host, lc, req, rtype, data, node=MY_NODE, orig=None):
        """``rtype`` applied to ``lc`` (one member's copy) for a request of ``node``
        whose own log is ``orig``."""
        orig = orig or lc
        if rtype == DM_ULOG_DTR:
            del self.logs[(lc.node, lc.uuid, lc.luid)]
            self.recovered.pop((lc.node, lc.uuid, lc.luid), None)
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
            self._resume(host, lc)
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
            # integrated_flush: the marks travel in the FLUSH
            if data:
                self._mark(lc, data, node)
            # only the server writes the disk log (through the originator's device)
            if lc.touched and lc.disk and lc is self.members(lc)[0]:
                self._write_disk(host, lc, orig.devno)
            lc.touched = 0
            return b""
        if rtype == DM_ULOG_MARK_REGION:
            self._mark(lc, data, node)
            return b""
        if rtype == DM_ULOG_GET_RESYNC_WORK:
            return self._resync_work(lc, node)
        if rtype == DM_ULOG_SET_REGION_SYNC:
            region, in_sync = struct.unpack("=Qq", data[:16])
            if region >= lc.region_count:
                raise _Err(errno.EINVAL)
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

    def _mark(self, lc, data, node):
        for (region,) in struct.iter_unpack("=Q", data):
            if region >= lc.region_count:
                raise _Err(errno.EINVAL)
            if not any(r == region for _, r in lc.mark_list):
                F.clear_bit(lc.clean_bits, region)
                lc.touched = 1
            if (node, region) not in lc.mark_list:
                lc.mark_list.append((node, region))

    def _clear(self, lc, data, node=MY_NODE):
        """A region is clean again only when no node still has it marked."""
        for (region,) in struct.iter_unpack("=Q", data):
            if region >= lc.region_count:
                continue
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

    def _resume(self, host, lc):
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
                self.say("Error:: partial bit loading (just %d of %d bits)"
                         % (src.region_count, lc.region_count))
                raise _Err(errno.EINVAL)
            lc.take_state(src)
            lc.state = LOG_RESUMED
            self.recovered.pop((lc.node, lc.uuid, lc.luid), None)
            return
        old = self.recovered.pop((lc.node, lc.uuid, lc.luid), None)
        if old is not None and old.region_count == lc.region_count:
            # the kernel reconnected after a daemon restart: the state it was told
            # before, as persisted (the disk log is rewritten from it)
            self.say("[%s/%d] state restored after a restart" % (lc.uuid[-8:], lc.luid))
            lc.take_state(old)
            lc.state = LOG_RESUMED
            if lc.disk:
                self._write_disk(host, lc)
            return
        disk_nr_regions = 0
        if lc.disk:
            size = _disk_size(lc.region_count)
            err, buf = host.io(lc.devno, READ, size >> 9, b"", 0)
            if err or len(buf) < size:
                self.say("Failed to read disk log")
                lc.disk_failed = 1
            else:
                magic, version, nr = F.unpack_header(buf)
                if magic != F.MIRROR_MAGIC or lc.sync != DEFAULTSYNC:
                    self.say("Disk log not initialized (bad magic): full resync")
                else:
                    # only the magic is checked
                    disk_nr_regions = nr
                    bits = F.clean_bits(buf, lc.region_count)
                    nb = -(-lc.region_count // 8)
                    lc.clean_bits = bytearray(bits[:nb]) + bytearray(len(bits) - nb)
        assume_sync = False
        if not lc.disk:
            lc.clean_bits = bytearray(b"\xff" * len(lc.clean_bits))
            if getattr(lc, "reconnect", False):
                # a kernel that reconnects keeps its in-sync hint and never resyncs
                # below it: "nothing in sync" would make it write one leg only (§1.5)
                self.say("[%s/%d] reconnected with no state kept: taken as in sync"
                         % (lc.uuid[-8:], lc.luid))
                assume_sync = True
        for i in range(min(disk_nr_regions, lc.region_count), lc.region_count):
            (F.set_bit if lc.sync == NOSYNC or assume_sync else F.clear_bit)(lc.clean_bits, i)
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
            self._write_disk(host, lc)

    def _write_disk(self, host, lc, devno=None):
        data = disk_image(lc)
        # shared by several hosts, the log device is shared storage: what cmirrord's
        # O_DIRECT write put there outlives the host whose kernel carried it (the
        # simulator's volatile caches are per host, so the write is made FUA)
        err, _ = host.io(devno or lc.devno, WRITE, len(data) >> 9, bytes(data),
                         W.IO_FUA if len(self.nodes) > 1 or
                         self.__dict__.get("clustered") else 0)
        if err:
            lc.disk_failed = 1


def disk_image(lc):
    """The disk log's bytes for ``lc``: cmirrord's disk_size, (ceil(region_count /
    page) + 1) pages; header at 0, ceil(region_count / 8) bytes of clean bits at 1024,
    the rest zero."""
    data = bytearray(_disk_size(lc.region_count))
    data[0:16] = F.pack_header(lc.region_count)
    nb = -(-lc.region_count // 8)
    data[F.BITS_OFFSET:F.BITS_OFFSET + nb] = lc.clean_bits[:nb]
    return data


def _disk_size(region_count, page=4096):
    return (-(-region_count // page) + 1) * page


def _is_number(s):
    try:
        int(s, 0)
        return True
    except ValueError:
        return False
