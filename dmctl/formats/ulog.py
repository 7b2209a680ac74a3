"""<linux/dm-log-userspace.h> and <linux/connector.h>: the userspace dirty log's request
and reply, byte for byte, plus the framing of ``dmctl logd``'s Unix-socket transport.

The kernel sends ``struct cn_msg`` (20 bytes) + ``struct dm_ulog_request`` (160 bytes,
native endian) + payload on the connector (CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG); the
daemon answers with the same header echoed (``error``, ``data_size`` and payload set).
Both the simulated kernel (``dmctl.sim``) and the daemon (``dmctl.logd``) use this
module: it is the wire between them.

Unix-socket framing (the simulator's transport; netlink carries the same cn_msg bodies):
every frame is ``u32 length (little-endian) | u8 kind | body`` with ``length`` counting
kind + body.  Kinds, client -> daemon:

* ``H`` hello: body = the host's name (utf-8; a simulated host's sim dir).  Answer ``h``:
  u32 node id (cmirrord's ``originator``).  Must come first on a connection.
* ``Q`` request: body = cn_msg + dm_ulog_request + payload, as the connector delivers it.
  Answer ``R`` with the reply message, after zero or more ``I`` frames (below).
* ``C`` the host crashed (its node leaves every CPG).  Answer ``c``: u32 logs dropped.
* ``S`` status: body = JSON options.  Answer ``s``: JSON.

Daemon -> client, while serving a ``Q`` (the daemon reaches the host's log device
through the host's kernel, as cmirrord opens it on its own node):

* ``I`` I/O: ``IO_REQ`` (op, flags, major, minor, sectors) + data (write) or the device
  argument (lookup).  Answer ``i``: ``IO_ANS`` (error, major, minor) + data (read).
* ``E`` error: body = text; the request was refused (the connection stays usable).
"""

import struct

from dmctl.constants import (CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, DM_ULOG_CTR,
                             DM_ULOG_GET_REGION_SIZE, DM_ULOG_GET_RESYNC_WORK,
                             DM_ULOG_GET_SYNC_COUNT, DM_ULOG_IN_SYNC, DM_ULOG_IS_CLEAN,
                             DM_ULOG_IS_REMOTE_RECOVERING, DM_ULOG_REQUEST_VERSION,
                             DM_ULOG_STATUS_INFO, DM_UUID_LEN)

CN_MSG = struct.Struct("=IIIIHH")                 # struct cn_msg (20 bytes)
ULOG_REQ = struct.Struct("=Q129s3sIiIII")         # struct dm_ulog_request (160 bytes)
assert CN_MSG.size == 20 and ULOG_REQ.size == 160
HEADER_SIZE = CN_MSG.size + ULOG_REQ.size

# lvm2 cmirrord: DM_ULOG_REQUEST_SIZE, the most a request (cn_msg.len) may carry
ULOG_REQUEST_SIZE = 1024

# the kernel caller's room for each reply (dm-log-userspace-base.c); -ESRCH replies
# are padded to it so that the retried request does not fail with -ENOSPC (§1.5)
REPLY_ROOM = {DM_ULOG_CTR: 128, DM_ULOG_GET_REGION_SIZE: 8, DM_ULOG_IS_CLEAN: 8,
              DM_ULOG_IN_SYNC: 8, DM_ULOG_GET_SYNC_COUNT: 8, DM_ULOG_GET_RESYNC_WORK: 16,
              DM_ULOG_IS_REMOTE_RECOVERING: 16, DM_ULOG_STATUS_INFO: 16}


def pack_request(luid, uuid, seq, request_type, data=b"", error=0,
                 version=DM_ULOG_REQUEST_VERSION):
    """cn_msg + dm_ulog_request + data, as dm_consult_userspace sends it."""
    if isinstance(uuid, str):
        uuid = uuid.encode()
    req = ULOG_REQ.pack(luid, uuid[:DM_UUID_LEN - 1], b"", version, error, seq,
                        request_type, len(data)) + bytes(data)
    return CN_MSG.pack(CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, seq, 0, len(req), 0) + req


def unpack_request(msg):
    """(cn (idx, val, seq, ack, len, flags), req dict, data) of a connector message;
    req is None for an ACK-only message.  Raises ValueError when it is too short."""
    if len(msg) < CN_MSG.size:
        raise ValueError("short message (%d bytes)" % len(msg))
    cn = CN_MSG.unpack_from(msg)
    if cn[4] == 0:
        return cn, None, b""
    if len(msg) < HEADER_SIZE:
        raise ValueError("short request (%d bytes)" % len(msg))
    luid, uuid, _pad, version, error, seq, rtype, dsize = ULOG_REQ.unpack_from(msg, CN_MSG.size)
    req = {"luid": luid, "uuid": uuid.split(b"\0", 1)[0].decode("utf-8", "replace"),
           "version": version, "error": error, "seq": seq, "request_type": rtype,
           "data_size": dsize}
    return cn, req, bytes(msg[HEADER_SIZE:HEADER_SIZE + dsize])


def pack_reply(cn_seq, req, error, data=b"", request_type=None):
    """The daemon's full reply: the request's header echoed with error and payload."""
    rt = req["request_type"] if request_type is None else request_type
    rep = ULOG_REQ.pack(req["luid"], req["uuid"].encode()[:DM_UUID_LEN - 1], b"",
                        req["version"], error, req["seq"], rt, len(data)) + bytes(data)
    return CN_MSG.pack(CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, cn_seq, 0, len(rep), 0) + rep


def pack_ack(cn_seq, err=0):
    """An ACK-only reply (cn_msg.len 0, ack = positive errno), as cmirrord's kernel_ack."""
    return CN_MSG.pack(CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, cn_seq, err, 0, 0)


# -- the Unix-socket framing -------------------------------------------------------------------

FRAME = struct.Struct("<IB")
MAX_FRAME = 64 << 20                 # the largest disk-log I/O a frame may carry
IO_REQ = struct.Struct("<BIIII")     # op, flags, major, minor, sectors
IO_ANS = struct.Struct("<iII")       # error (positive errno), major, minor
IO_LOOKUP, IO_READ, IO_WRITE = 0, 1, 2
IO_FUA = 1

HELLO, HELLO_ANS = b"H", b"h"
REQUEST, REPLY = b"Q", b"R"
CRASHED, CRASHED_ANS = b"C", b"c"
STATUS, STATUS_ANS = b"S", b"s"
IO, IO_DONE = b"I", b"i"
ERROR = b"E"


def pack_frame(kind, body=b""):
    return FRAME.pack(len(body) + 1, kind[0]) + bytes(body)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def recv_frame(sock, limit=MAX_FRAME):
    """(kind, body); EOFError at a clean end, ValueError for a bad length."""
    n, kind = FRAME.unpack(recv_exact(sock, FRAME.size))
    if n < 1 or n - 1 > limit:
        raise ValueError("bad frame length %d" % n)
    return bytes([kind]), recv_exact(sock, n - 1)


def socket_path(sim_dir):
    """Where a simulated host's kernel finds the daemon: ``$DMCTL_LOGD_SOCKET``, else
    ``logd.sock`` in the host's sim dir."""
    import os
    return os.environ.get("DMCTL_LOGD_SOCKET") or os.path.join(sim_dir, "logd.sock")
