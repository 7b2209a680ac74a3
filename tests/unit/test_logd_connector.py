"""dmctl logd's kernel transport (dmctl.logd.connector) without a kernel: the netlink
framing around the state machine's messages, what is ignored, the replies' form, the
one-daemon-per-kernel lock.  The real kernel: tests/vm/guest/test_logd_kernel.py."""

import errno
import os
import struct

import pytest

from dmctl.constants import (DM_ULOG_CLEAR_REGION, DM_ULOG_CTR, DM_ULOG_GET_REGION_SIZE,
                             DM_ULOG_RESUME)
from dmctl.formats import ulog as W
from dmctl.logd import connector as C
from dmctl.logd import state as S


class FakeSock:
    def __init__(self, incoming=()):
        self.incoming = list(incoming)
        self.sent = []

    def recvfrom(self, n):
        if not self.incoming:
            raise BlockingIOError
        return self.incoming.pop(0)

    def sendto(self, data, addr):
        self.sent.append((data, addr))


class FakeDaemon:
    def __init__(self):
        self.server = S.LogServer()
        self.complaints = []
        self.asked = []

    def complain(self, kind, msg):
        self.complaints.append(kind)

    def answer(self, host, node, msg, reply_to=None):
        self.asked.append((node, msg))
        return self.server.handle(host, msg, node)


def nl(body, ntype=C.NLMSG_DONE):
    return C.NLMSGHDR.pack(C.NLMSGHDR.size + len(body), ntype, 0, 0, 0) + body


def transport(incoming):
    d = FakeDaemon()
    t = C.KernelTransport(d, lock_path="/nonexistent/lock")
    t.sock = FakeSock(incoming)
    t.node = 1
    return d, t


def test_requests_from_the_kernel_are_answered_in_netlink_done_frames():
    msg = W.pack_request(0xffff8880069bc800, "LVM-x", 7, DM_ULOG_GET_REGION_SIZE)
    d, t = transport([(nl(msg), (0, 1 << 6))])
    t.on_readable()
    assert d.asked == [(1, msg)]
    (out, addr), = t.sock.sent
    assert addr == (0, 0)
    nlen, ntype, _f, _s, pid = C.NLMSGHDR.unpack_from(out)
    assert (nlen, ntype, pid) == (len(out), C.NLMSG_DONE, os.getpid())
    cn, req, data = W.unpack_request(out[C.NLMSGHDR.size:])
    # an unknown log: -ESRCH, padded to the kernel's room (cluster-log.md §1.5)
    assert (cn[0], cn[1], cn[4]) == (7, 1, 160 + 8)
    assert (req["seq"], req["error"], data) == (7, -errno.ESRCH, bytes(8))
    assert t.received == 1


def test_clear_region_is_acked_like_cmirrord():
    msgs = [W.pack_request(1, "LVM-x", 7, DM_ULOG_CTR, b"16384 clustered-core 1024"),
            W.pack_request(1, "LVM-x", 8, DM_ULOG_RESUME),
            W.pack_request(1, "LVM-x", 9, DM_ULOG_CLEAR_REGION, struct.pack("=Q", 0))]
    d, t = transport([(nl(m), (0, 1 << 6)) for m in msgs])
    t.on_readable()
    assert [W.unpack_request(o[C.NLMSGHDR.size:])[1]["error"] for o, _ in t.sock.sent[:2]] \
        == [0, 0]
    out, _ = t.sock.sent[2]
    cn = W.CN_MSG.unpack_from(out, C.NLMSGHDR.size)
    assert cn[2] == 9 and cn[4] == 0              # ACK-only: cn seq, len 0


def test_what_is_not_the_kernels_request_is_ignored():
    req = W.pack_request(1, "LVM-x", 3, DM_ULOG_GET_REGION_SIZE)
    other = W.CN_MSG.pack(1, 1, 3, 0, 0, 0)             # cn_proc, not CN_IDX_DM
    d, t = transport([(nl(req), (4242, 1 << 6)),         # a user process, not the kernel
                      (nl(other), (0, 1)),
                      (nl(req, C.NLMSG_ERROR), (0, 1 << 6)),
                      (nl(b"\0" * 8), (0, 1 << 6)),      # shorter than a cn_msg
                      (b"\x01\x02", (0, 1 << 6))])       # shorter than an nlmsghdr
    t.on_readable()
    assert d.asked == [] and t.sock.sent == []
    assert t.ignored == 1
    assert ("nlpid", 4242) in d.complaints and "nlerror" in d.complaints


def test_one_daemon_per_kernel(tmp_path):
    """The lock is taken before the socket: a second transport says who serves."""
    lock = str(tmp_path / "kernel.lock")
    import fcntl
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"1234\n")
    try:
        t = C.KernelTransport(FakeDaemon(), lock_path=lock)
        with pytest.raises(C.Unavailable, match="another dmctl logd serves the kernel.*1234"):
            t.open()
    finally:
        os.close(fd)


def test_block_io_lookup_refuses_what_is_not_a_block_device(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    io = C.BlockIO()
    with pytest.raises(OSError) as e:
        io.lookup(str(f))
    assert e.value.errno == errno.ENOTBLK
    with pytest.raises(OSError):
        io.lookup(str(tmp_path / "missing"))
    assert io.io((0, 0), W.IO_READ, 8, b"", 0)[0] == errno.ENODEV


def test_cap_sys_admin_is_read_from_proc():
    assert C.has_cap(C.CAP_SYS_ADMIN) in (True, False)
    assert C.has_cap(C.CAP_SYS_ADMIN, pid="nonexistent") == (os.geteuid() == 0)


def test_says_so_when_replies_would_be_dropped(tmp_path, monkeypatch, caplog):
    """Without CAP_SYS_ADMIN the kernel drops every reply: the daemon says so at start
    (needs a connector to join: root on a kernel with CONFIG_CONNECTOR)."""
    monkeypatch.setattr(C, "has_cap", lambda cap, pid="self": False)
    d = FakeDaemon()
    d.kernel_node = lambda name: 1
    t = C.KernelTransport(d, lock_path=str(tmp_path / "kernel.lock"))
    try:
        t.open()
    except C.Unavailable as e:
        pytest.skip("no connector to join here: %s" % e)
    try:
        assert t.describe()["cap_sys_admin"] is False
        assert any("lacks CAP_SYS_ADMIN" in r.getMessage() for r in caplog.records)
    finally:
        t.close()
    assert not os.path.exists(tmp_path / "kernel.lock")
