"""Clustered logs through corosync's CPG, as cmirrord does (lvm2 daemons/cmirrord/
cluster.c; cluster-log.md §2.3-§2.7).

One CPG handle and one group per log uuid (the name with its NUL counted), joined at
RESUME and left at POSTSUSPEND.  The node id is corosync's.  Requests that cmirrord
multicasts (IS_CLEAN, FLUSH, MARK/CLEAR_REGION, GET_RESYNC_WORK, SET_REGION_SYNC,
STATUS_INFO, IS_REMOTE_RECOVERING, POSTSUSPEND) go out as ``clog_request`` messages
(§2.4: two version words, originator, pit_server, dm_ulog_request with luid 0, payload)
in agreed order; every member applies each to its own copy of the log with the state
machine of ``dmctl.logd.state`` and the lowest member id (the server) multicasts the
response (``request_type | 0x1000``, none for CLEAR and POSTSUSPEND) that the
originator gives its kernel.  CLEAR_REGION is acknowledged to the kernel at once, then
multicast.

Joining (§2.5): the first member of a group reads the disk log (``_resume``); every
existing member sends a joiner ``CHECKPOINT_READY`` (originator = the joiner, seq = the
sender): sync bits, clean bits (``(region_count/32 + 1) * 4`` bytes each), the 64-byte
text ``"<recovering_region> <recoverer>"``, then -- a dmctl extension after cmirrord's
layout -- ``DMCTLMRK`` + u32 count + (u32 node, u64 region) marks.  The checkpoint is
taken at the join confchg itself (virtual synchrony: the same point at every member);
the joiner queues what is delivered until the first checkpoint comes, imports it,
replays the queue, then answers its kernel's RESUME.

Membership (§2.6-§2.7): a member that left or crashed frees the region it was
recovering (cmirrord keeps it locked, a documented deviation) and keeps its marks.  When
the server goes, a request already applied here is answered from this node's copy
(equal to the server's in agreed order) instead of waiting 15 s for the kernel's resend.

The disk log: cmirrord's server writes it through its own device; here a node reaches
the log device only through its own kernel while that kernel waits for an answer, so the
originator of a FLUSH writes its copy (the server's, in agreed order) when it changed
since this node last wrote it.

corosync dies: ``cpg_dispatch`` fails with CS_ERR_LIBRARY; every group is gone and the
requests that need the cluster are not answered (the kernel waits and re-sends) until
corosync is back, the groups are joined again (a checkpoint from the survivors) and the
parked requests go out.  Answering errors instead would be wrong (IN_SYNC, §1.5).
"""

import errno
import logging
import struct
import time

from dmctl.constants import (DM_ULOG_CLEAR_REGION, DM_ULOG_FLUSH, DM_ULOG_GET_RESYNC_WORK,
                             DM_ULOG_IS_CLEAN, DM_ULOG_IS_REMOTE_RECOVERING,
                             DM_ULOG_MARK_REGION, DM_ULOG_POSTSUSPEND, DM_ULOG_RESPONSE,
                             DM_ULOG_RESUME, DM_ULOG_SET_REGION_SYNC, DM_ULOG_STATUS_INFO)
from dmctl.formats import ulog as W
from dmctl.logd import cpg as C
from dmctl.logd import state as S

log = logging.getLogger("dmctl-logd")

CLOG_VERSION = 5
CLOG_HDR = struct.Struct("<QQII")          # version[2], originator, pit_server
CLOG_HEADER_SIZE = CLOG_HDR.size + W.ULOG_REQ.size     # 184
CLOG_CHECKPOINT_READY = 21           # cmirrord's DM_ULOG_CHECKPOINT_READY
MARKS_MAGIC = b"DMCTLMRK"
ROUTED = frozenset((DM_ULOG_IS_CLEAN, DM_ULOG_FLUSH, DM_ULOG_MARK_REGION,
                    DM_ULOG_GET_RESYNC_WORK, DM_ULOG_SET_REGION_SYNC, DM_ULOG_STATUS_INFO,
                    DM_ULOG_IS_REMOTE_RECOVERING, DM_ULOG_POSTSUSPEND, DM_ULOG_CLEAR_REGION,
                    DM_ULOG_RESUME))
REJOIN_ALONE = 5.0
NO_RESPONSE = frozenset((DM_ULOG_CLEAR_REGION, DM_ULOG_POSTSUSPEND, DM_ULOG_RESUME))


def pack_clog(originator, req, data=b"", pit_server=0, request_type=None, error=None):
    rt = req["request_type"] if request_type is None else request_type
    body = W.ULOG_REQ.pack(0, req["uuid"].encode()[:128], b"", req["version"],
                           req["error"] if error is None else error, req["seq"], rt,
                           len(data))
    return CLOG_HDR.pack(CLOG_VERSION, CLOG_VERSION, originator, pit_server) + body + bytes(data)


def unpack_clog(msg):
    """(originator, pit_server, req dict, data); ValueError when it is not one."""
    if len(msg) < CLOG_HEADER_SIZE:
        raise ValueError("short cluster message (%d bytes)" % len(msg))
    v0, v1, originator, pit = CLOG_HDR.unpack_from(msg)
    if v0 != CLOG_VERSION:
        raise ValueError("cluster message version %d (only 5 is supported)" % v0)
    if v1 != CLOG_VERSION:
        raise ValueError("cluster message from a big-endian node (not supported)")
    luid, uuid, _p, version, error, seq, rtype, dsize = W.ULOG_REQ.unpack_from(msg, CLOG_HDR.size)
    if len(msg) < CLOG_HEADER_SIZE + dsize:
        raise ValueError("truncated cluster message (%d of %d payload bytes)"
                         % (len(msg) - CLOG_HEADER_SIZE, dsize))
    req = {"luid": 0, "uuid": uuid.split(b"\0", 1)[0].decode("utf-8", "replace"),
           "version": version, "error": error, "seq": seq, "request_type": rtype,
           "data_size": dsize}
    return originator, pit, req, bytes(msg[CLOG_HEADER_SIZE:CLOG_HEADER_SIZE + dsize])


def _cp_bitmap(bits, region_count):
    n = (region_count // 32 + 1) * 4
    return (bytes(bits) + bytes(n))[:n]


def pack_checkpoint(lc):
    out = _cp_bitmap(lc.sync_bits, lc.region_count) + _cp_bitmap(lc.clean_bits, lc.region_count)
    rr = lc.recovering_region if lc.recovering_region != -1 else (1 << 64) - 1
    rec = lc.recoverer if lc.recovering_region != -1 else 0xffffffff
    out += ("%d %d" % (rr, rec)).encode().ljust(64, b"\0")[:64]
    out += MARKS_MAGIC + struct.pack("<I", len(lc.mark_list))
    out += b"".join(struct.pack("<IQ", n, r) for n, r in lc.mark_list)
    return out


class _Checkpoint:
    def __init__(self, data, region_count):
        n = (region_count // 32 + 1) * 4
        if len(data) < 2 * n + 64:
            raise ValueError("bad bitset_size (%d bytes for %d regions)"
                             % (len(data), region_count))
        nb = S.F.bitset_size(region_count)
        self.sync_bits = bytearray((data[:n] + bytes(nb))[:nb])
        self.clean_bits = bytearray((data[n:2 * n] + bytes(nb))[:nb])
        for bits in (self.sync_bits, self.clean_bits):
            for i in range(region_count, nb * 8):
                S.F.clear_bit(bits, i)
        words = data[2 * n:2 * n + 64].split(b"\0", 1)[0].split()
        rr, rec = int(words[0]), int(words[1])
        self.recovering_region = -1 if rr >= (1 << 63) else rr
        self.recoverer = 0 if self.recovering_region == -1 else rec
        self.sync_search = 0
        self.in_sync = 0
        self.mark_list = []
        rest = data[2 * n + 64:]
        if rest[:8] == MARKS_MAGIC and len(rest) >= 12:
            (cnt,) = struct.unpack_from("<I", rest, 8)
            for i in range(cnt):
                self.mark_list.append(struct.unpack_from("<IQ", rest, 12 + 12 * i))
        self.mark_list = [(int(a), int(b)) for a, b in self.mark_list]


class _NoIO:
    """A remote node's request applied here: this node does not write the disk log."""

    def lookup(self, devarg):
        raise OSError(errno.ENODEV, "no device")

    def io(self, devno, op, sectors, data, flags):
        return 0, bytes(sectors << 9) if op == W.IO_READ else b""


class _Pending:
    def __init__(self, conn, host, msg, req, data):
        self.conn, self.host, self.msg, self.req, self.data = conn, host, msg, req, data
        self.sent = False
        self.applied = None          # (error, payload) from this node's own copy


class Group:
    def __init__(self, cluster, uuid):
        self.cluster = cluster
        self.uuid = uuid
        self.cpg = C.Cpg(self._deliver, self._confchg)
        self.fd = self.cpg.fileno()
        self.members = []
        self.valid = False
        self.joined = False
        self.startup = []            # (originator, pit_server, req, data) until the checkpoint
        self.leaving = None          # the POSTSUSPEND waiting for our own leave
        self.resume = None           # the RESUME waiting for the join / checkpoint
        self.last_image = None
        self.joined_at = time.monotonic()
        # joined again after corosync came back: alone may only mean that corosync has
        # not merged with the others yet, so wait for a checkpoint (REJOIN_ALONE s)
        self.rejoin = False

    def on_readable(self):
        self.cluster.dispatch(self)

    @property
    def lc(self):
        return self.cluster.local_log(self.uuid)

    @property
    def server(self):
        return min((n for n, _p, _r in self.members), default=0)

    def mcast(self, msg):
        self.cpg.mcast(msg)

    # -- callbacks (inside cpg_dispatch) ------------------------------------------------------
    def _confchg(self, name, members, left, joined):
        cl = self.cluster
        me = cl.nodeid
        old_server = self.server
        self.members = members
        mine = any(n == me and p == cl.pid for n, p, _r in joined)
        gone = [(n, r) for n, p, r in left if not (n == me and p == cl.pid)]
        if any(n == me and p == cl.pid for n, p, _r in left):
            self._own_leave()
            return
        for n, r in gone:
            log.info("[%s] node %d left the group (%s)", self.uuid[-8:], n,
                     {C.REASON_LEAVE: "leave", C.REASON_NODEDOWN: "node down",
                      C.REASON_PROCDOWN: "process down"}.get(r, "reason %d" % r))
            lc = self.lc
            if lc is not None and lc.recoverer == n and lc.recovering_region != -1:
                lc.recovering_region = -1
        if mine:
            self.joined = True
            log.info("[%s] joined the CPG (%d member(s))", self.uuid[-8:], len(members))
            self.joined_at = time.monotonic()
            if len(members) == 1 and not self.rejoin:
                self._first_member()
        elif not self.valid and self.joined and not self.rejoin and \
                all(n == me for n, _p, _r in members):
            log.info("[%s] nobody left to send a checkpoint: acting as first join",
                     self.uuid[-8:])
            self._first_member()
        others_joined = [n for n, p, _r in joined if not (n == me and p == cl.pid)]
        if self.valid and others_joined and self.lc is not None:
            cp = pack_checkpoint(self.lc)
            for n in others_joined:
                req = {"uuid": self.uuid, "version": 3, "error": 0, "seq": me,
                       "request_type": CLOG_CHECKPOINT_READY}
                cl.outbox.append((self, pack_clog(n, req, cp)))
        if self.valid and any(n == old_server for n, _r in gone):
            cl.server_changed(self)

    def _deliver(self, name, nodeid, pid, msg):
        cl = self.cluster
        try:
            originator, pit, req, data = unpack_clog(msg)
        except ValueError as e:
            cl.complain(("cpg", str(e)[:20]), "dropped a cluster message from node %d: %s"
                        % (nodeid, e))
            return
        rtype = req["request_type"]
        if rtype == CLOG_CHECKPOINT_READY:
            if originator == cl.nodeid and not self.valid and self.joined:
                self._import(data, req["seq"])
            return
        if not self.valid:
            self.startup.append((originator, self.server, req, data))
            return
        cl.apply(self, originator, self.server, req, data)

    # -- joining and leaving ------------------------------------------------------------------
    def _first_member(self):
        self.valid = True
        p, self.resume = self.resume, None
        if p is not None:
            self.cluster.local_resume(self, p, None)
        self.cluster.group_valid(self)

    def _import(self, data, sender):
        lc = self.lc
        if lc is None:
            return
        try:
            cp = _Checkpoint(data, lc.region_count)
        except (ValueError, IndexError, struct.error) as e:
            log.error("[%s] checkpoint from node %d unusable: %s", self.uuid[-8:], sender, e)
            return
        log.info("[%s] checkpoint from node %d imported (%d/%d in sync, %d mark(s))",
                 self.uuid[-8:], sender, sum(1 for i in range(lc.region_count)
                                            if S.F.test_bit(cp.sync_bits, i)),
                 lc.region_count, len(cp.mark_list))
        self.valid = True
        p, self.resume = self.resume, None
        self.cluster.local_resume(self, p, cp)
        queued, self.startup = self.startup, []
        for originator, pit, req, d in queued:
            self.cluster.apply(self, originator, pit, req, d)
        self.cluster.group_valid(self)

    def _own_leave(self):
        p, self.leaving = self.leaving, None
        self.cluster.drop_group(self)
        if p is not None:
            self.cluster.answer(p, 0, b"")


class Cluster:
    def __init__(self, daemon):
        self.daemon = daemon
        self.server = daemon.server
        self.complain = daemon.complain
        import os
        self.pid = os.getpid()
        self.nodeid = C.probe()
        # the log device is shared storage between nodes: disk-log writes are FUA
        self.server.clustered = True
        self.up = True
        self.groups = {}             # uuid -> Group
        self.pending = {}            # (uuid, seq) -> _Pending
        self.parked = []             # requests that came while corosync was away
        self.outbox = []             # (group, message) to send after the dispatch
        self.last_try = 0.0
        self.down_since = None
        self.host = None             # the one host (sim dir) this daemon serves

    # -- what the daemon asks -----------------------------------------------------------------
    def local_log(self, uuid):
        for (n, u, _l), lc in self.server.logs.items():
            if n == self.nodeid and u == uuid:
                return lc
        return None

    def takes(self, req):
        return req is not None and req["request_type"] in ROUTED and \
            self.local_log(req["uuid"]) is not None

    def describe(self):
        return {"engine": "corosync", "corosync": self.up, "this_node": self.nodeid,
                "note": "corosync CPG, node %d" % self.nodeid if self.up else
                "corosync is not reachable: cluster requests wait for it",
                "groups": {u: sorted(n for n, _p, _r in g.members)
                           for u, g in self.groups.items()},
                "waiting": sorted(u for u, g in self.groups.items() if not g.valid),
                "parked": len(self.parked)}

    def members_of(self, uuid):
        g = self.groups.get(uuid)
        return sorted(n for n, _p, _r in g.members) if g else []

    def fds(self):
        return [(g.fd, g) for g in self.groups.values()]

    def submit(self, conn, host, msg, req, data):
        """A kernel request for a clustered log; the reply, or None (answered later)."""
        p = _Pending(conn, host, msg, req, data)
        if not self.up:
            self.parked.append(p)
            return None
        return self._send(p)

    def _send(self, p):
        rtype = p.req["request_type"]
        uuid = p.req["uuid"]
        g = self.groups.get(uuid)
        if rtype == DM_ULOG_RESUME:
            lc = self.local_log(uuid)
            if g is not None and g.valid:
                return self.server.handle(p.host, p.msg, self.nodeid)
            if g is None:
                g = self._join(uuid)
            if g is None:
                self.parked.append(p)
                return None
            g.resume = p
            if lc is not None and lc.state == S.LOG_RESUMED:
                lc.state = S.LOG_SUSPENDED
            return None
        if g is None or not g.joined:
            # not in the CPG (suspended): cmirrord answers these from its own copy
            return self.server.handle(p.host, p.msg, self.nodeid)
        if rtype == DM_ULOG_POSTSUSPEND:
            g.leaving = p
        out = pack_clog(self.nodeid, p.req, p.data)
        try:
            g.mcast(out)
        except C.CpgError as e:
            self.lost(e)
            self.parked.append(p)
            return None
        if rtype == DM_ULOG_CLEAR_REGION:
            return W.pack_ack(W.unpack_request(p.msg)[0][2], 0)
        if rtype != DM_ULOG_POSTSUSPEND:
            self.pending[(uuid, p.req["seq"])] = p
        p.sent = True
        return None

    def _join(self, uuid):
        try:
            g = Group(self, uuid)
            g.cpg.join(uuid)
        except C.CpgError as e:
            log.error("[%s] cannot join the CPG: %s", uuid[-8:], e)
            if e.code == C.CS_ERR_LIBRARY:
                self.lost(e)
            return None
        self.groups[uuid] = g
        self.daemon.cpg_register(g)
        return g

    def drop_group(self, g):
        if self.groups.get(g.uuid) is g:
            del self.groups[g.uuid]
        self.daemon.cpg_unregister(g)
        try:
            g.cpg.finalize()
        except C.CpgError:
            pass

    def local_resume(self, g, p, checkpoint):
        """The RESUME of this node's kernel, once the group is valid."""
        lc = self.local_log(g.uuid)
        if lc is None:
            return
        if checkpoint is not None:
            lc.take_state(checkpoint)
            lc.sync_search = 0
            lc.state = S.LOG_RESUMED
            lc.recovery_halted = 0
            self.server.recovered.pop((lc.node, lc.uuid, lc.luid), None)
        if p is not None:
            reply = self.server.handle(p.host, p.msg, self.nodeid)
            self.daemon.cpg_reply(p, reply)

    # -- delivery -------------------------------------------------------------------------------
    def apply(self, g, originator, pit, req, data):
        lc = self.local_log(g.uuid)
        rtype = req["request_type"]
        me = self.nodeid
        if rtype & DM_ULOG_RESPONSE:
            if originator != me:
                return
            p = self.pending.pop((g.uuid, req["seq"]), None)
            if p is not None:
                self.answer(p, req["error"], data)
            return
        if lc is None or rtype == DM_ULOG_RESUME:
            return
        mine = originator == me
        p = self.pending.get((g.uuid, req["seq"])) if mine else None
        host = p.host if p is not None else _NoIO()
        error, out = 0, b""
        try:
            if rtype == DM_ULOG_CLEAR_REGION:
                self.server._clear(lc, data, originator)
            elif rtype == DM_ULOG_POSTSUSPEND:
                if mine:
                    self.server._dispatch(host, lc, req, rtype, data, originator, lc)
                    if g.leaving is not None:
                        try:
                            g.cpg.leave(g.uuid)
                        except C.CpgError as e:
                            log.error("[%s] cpg_leave: %s", g.uuid[-8:], e)
                            g._own_leave()
                elif lc.recoverer == originator and lc.recovering_region != -1:
                    lc.recovering_region = -1
            elif rtype in S.MULTICAST:
                out = self.server._dispatch(host, lc, req, rtype, data, originator, lc)
                if mine and rtype == DM_ULOG_FLUSH and lc.disk and p is not None:
                    img = S.disk_image(lc)
                    if img != g.last_image:
                        self.server._write_disk(p.host, lc)
                        g.last_image = img
            else:
                error = -errno.EINVAL
        except S._Err as e:
            error, out = -e.errno, b""
        if rtype in NO_RESPONSE:
            return
        if p is not None:
            p.applied = (error, out)
        if pit == me:
            if mine and p is not None:
                del self.pending[(g.uuid, req["seq"])]
                self.answer(p, error, out)
            else:
                self.outbox.append((g, pack_clog(originator, req, out,
                                                 request_type=rtype | DM_ULOG_RESPONSE,
                                                 error=error)))

    def answer(self, p, error, data):
        cn, req, _ = W.unpack_request(p.msg)
        self.daemon.cpg_reply(p, W.pack_reply(cn[2], req, error, data,
                                              req["request_type"] | DM_ULOG_RESPONSE))

    def server_changed(self, g):
        """Members left: requests this node applied whose answer the old server owed
        are answered from this node's copy."""
        for key, p in list(self.pending.items()):
            if key[0] == g.uuid and p.applied is not None:
                del self.pending[key]
                self.answer(p, *p.applied)

    # -- the loop -------------------------------------------------------------------------------
    def dispatch(self, g):
        try:
            g.cpg.dispatch()
        except C.CpgError as e:
            if e.code in (C.CS_ERR_LIBRARY, C.CS_ERR_BAD_HANDLE):
                self.lost(e)
            else:
                log.error("[%s] %s", g.uuid[-8:], e)
        except Exception as e:              # noqa: BLE001 - a callback's trouble
            log.exception("[%s] cluster message handling failed: %s", g.uuid[-8:], e)
        self.flush_outbox()

    def flush_outbox(self):
        while self.outbox and self.up:
            g, msg = self.outbox.pop(0)
            if self.groups.get(g.uuid) is not g:
                continue
            try:
                g.mcast(msg)
            except C.CpgError as e:
                self.lost(e)

    def lost(self, why):
        if not self.up:
            return
        log.error("corosync went away (%s): cluster requests wait until it is back", why)
        self.up = False
        self.down_since = time.monotonic()
        for g in list(self.groups.values()):
            self.drop_group(g)
            if g.resume is not None:
                self.parked.append(g.resume)
            if g.leaving is not None:
                self.parked.append(g.leaving)
        # requests sent and not answered are sent again once corosync is back
        self.parked.extend(self.pending.values())
        self.pending = {}
        self.outbox = []

    def tick(self):
        """Called from the loop now and then: try to get corosync back; a rejoined
        group still alone after REJOIN_ALONE seconds acts as the first member."""
        for g in list(self.groups.values()):
            if g.rejoin and g.joined and not g.valid and \
                    all(n == self.nodeid for n, _p, _r in g.members) and \
                    time.monotonic() - g.joined_at > REJOIN_ALONE:
                log.info("[%s] alone for %.0f s after rejoining: acting as first join",
                         g.uuid[-8:], REJOIN_ALONE)
                g._first_member()
                self.flush_outbox()
        if self.up or time.monotonic() - self.last_try < 1.0:
            return
        self.last_try = time.monotonic()
        try:
            nodeid = C.probe()
        except C.CpgError:
            return
        if nodeid != self.nodeid:
            log.error("corosync came back with node id %d (was %d): not rejoining",
                      nodeid, self.nodeid)
            return
        log.info("corosync is back after %.1f s: rejoining", time.monotonic() - self.down_since)
        self.up = True
        parked, self.parked = self.parked, []
        rejoin = {p.req["uuid"] for p in parked}
        for (n, uuid, _l), lc in list(self.server.logs.items()):
            if n == self.nodeid and lc.state == S.LOG_RESUMED:
                rejoin.add(uuid)
        for uuid in sorted(rejoin):
            lc = self.local_log(uuid)
            if lc is None or uuid in self.groups:
                continue
            if lc.state == S.LOG_RESUMED or any(
                    p.req["uuid"] == uuid and p.req["request_type"] != DM_ULOG_RESUME
                    for p in parked):
                g = self._join(uuid)
                if g is None:
                    break
                # our copy is kept while waiting; the checkpoint replaces it
                g.resume = None
                g.rejoin = True
        for p in parked:
            if not self.up:
                self.parked.append(p)
                continue
            g = self.groups.get(p.req["uuid"])
            if p.req["request_type"] != DM_ULOG_RESUME and g is not None and not g.valid:
                g.startup_wait = getattr(g, "startup_wait", []) + [p]
                continue
            reply = self._send(p)
            if reply is not None:
                self.daemon.cpg_reply(p, reply)

    def group_valid(self, g):
        for p in getattr(g, "startup_wait", []):
            reply = self._send(p)
            if reply is not None:
                self.daemon.cpg_reply(p, reply)
        g.startup_wait = []

    def close(self):
        for g in list(self.groups.values()):
            self.drop_group(g)
