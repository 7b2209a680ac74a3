"""The real kernel's transport: the netlink connector (CN_IDX_DM 7, CN_VAL 1), as
cmirrord's ``local.c`` uses it (cluster-log.md §1).

One ``NETLINK_CONNECTOR`` datagram socket joins multicast group 7 with
``NETLINK_ADD_MEMBERSHIP`` (a ``bind()`` mask alone receives nothing, §1.1).  Each
datagram is ``nlmsghdr`` + ``cn_msg`` + ``dm_ulog_request`` + payload; the
``cn_msg`` onwards goes through the daemon's one state machine (``Daemon.answer``) as
the request of the kernel's node, and the reply (``cn_msg`` onwards) goes back to the
kernel (port 0) under an ``nlmsghdr`` of type NLMSG_DONE.  Datagrams not sent by the
kernel (``nl_pid != 0``) are ignored.  The kernel keeps a reply only when its sender
has CAP_SYS_ADMIN; the daemon says so at start when it lacks it.

The log device of a ``clustered-disk`` log is this machine's block device: the daemon
reads and writes the kernel's disk-log format on it itself, with O_DIRECT (cmirrord
opens it O_RDWR|O_DIRECT), through the same ``lookup``/``io`` interface the state
machine uses to reach a simulated host's devices (``BlockIO``).

One daemon per kernel (every listener gets every request, §1.6): the transport takes
an exclusive lock (``/run/dmctl-logd-kernel.lock``); a second daemon serves only its
Unix socket.  The connector exists only in the initial network namespace.
"""

import errno
import logging
import mmap
import os
import re
import socket
import struct

from dmctl.constants import CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG
from dmctl.formats import ulog as W
from dmctl.logd import pidlock

log = logging.getLogger("dmctl-logd")

NETLINK_CONNECTOR = 11
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGHDR = struct.Struct("=IHHII")         # len, type, flags, seq, pid
CAP_SYS_ADMIN = 21
RECV_SIZE = 65536
KERNEL_NODE = "kernel"                     # the kernel's node name in the state machine
LOCK_PATH = "/run/dmctl-logd-kernel.lock"


class Unavailable(Exception):
    """Why this daemon cannot serve the kernel."""


def has_cap(cap, pid="self"):
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def kernel_has_dm():
    """Whether this kernel has device-mapper loaded (``/proc/misc`` lists it): the
    daemon then serves the kernel when it can (``--kernel auto``)."""
    try:
        with open("/proc/misc") as f:
            return any(line.split()[1:2] == ["device-mapper"] for line in f)
    except OSError:
        return False


class BlockIO:
    """This machine's block devices, as the state machine's ``host``: ``lookup(devarg)``
    -> (major, minor); ``io(devno, op, sectors, data, flags)`` -> (error, data), one
    O_DIRECT read or write at offset 0 (the disk log's header and bits)."""

    def __init__(self):
        self.paths = {}                 # devno -> the node it was named by

    def lookup(self, devarg):
        m = re.fullmatch(r"(\d+):(\d+)", devarg)
        if m:
            devno = (int(m.group(1)), int(m.group(2)))
            if self._node(devno) is None:
                raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
            return devno
        st = os.stat(devarg)            # OSError: ENOENT ...
        if not (st.st_mode & 0o170000 == 0o060000):
            raise OSError(errno.ENOTBLK, os.strerror(errno.ENOTBLK))
        devno = (os.major(st.st_rdev), os.minor(st.st_rdev))
        self.paths[devno] = devarg
        return devno

    def _node(self, devno):
        for p in (self.paths.get(devno), "/dev/block/%d:%d" % devno):
            if p and _is_blk(p, devno):
                return p
        try:
            with open("/sys/dev/block/%d:%d/uevent" % devno) as f:
                for line in f:
                    if line.startswith("DEVNAME="):
                        p = "/dev/" + line.strip().split("=", 1)[1]
                        if _is_blk(p, devno):
                            self.paths[devno] = p
                            return p
        except OSError:
            pass
        return None

    def io(self, devno, op, sectors, data, flags):
        path = self._node(tuple(devno))
        if path is None:
            return errno.ENODEV, b""
        size = sectors << 9
        buf = mmap.mmap(-1, max(size, mmap.PAGESIZE))       # page aligned for O_DIRECT
        try:
            if op == W.IO_READ:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
                try:
                    n = os.preadv(fd, [memoryview(buf)[:size]], 0)
                finally:
                    os.close(fd)
                return (0 if n == size else errno.EIO), bytes(buf[:n])
            if op == W.IO_WRITE:
                buf[:len(data)] = data
                fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC | os.O_CLOEXEC)
                try:
                    n = os.pwritev(fd, [memoryview(buf)[:size]], 0)
                finally:
                    os.close(fd)
                return (0 if n == size else errno.EIO), b""
            return errno.EINVAL, b""
        except OSError as e:
            log.error("disk log I/O on %d:%d (%s) failed: %s", devno[0], devno[1], path,
                      e.strerror)
            return e.errno or errno.EIO, b""
        finally:
            buf.close()


def _is_blk(path, devno):
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_mode & 0o170000 == 0o060000
            and (os.major(st.st_rdev), os.minor(st.st_rdev)) == tuple(devno))


class KernelTransport:
    """The connector socket, registered in the daemon's selector; ``on_readable``
    answers every datagram waiting."""

    kind = "kernel"

    def __init__(self, daemon, lock_path=LOCK_PATH):
        self.daemon = daemon
        self.lock_path = lock_path
        self.sock = None
        self.lockfd = None
        self.host = BlockIO()
        self.node = None
        self.can_reply = False
        self.received = 0
        self.ignored = 0

    def open(self):
        """Join CN_IDX_DM; raises Unavailable with the reason."""
        try:
            fd = pidlock.acquire(self.lock_path)
        except OSError as e:
            raise Unavailable("cannot open %s: %s" % (self.lock_path, e.strerror))
        except pidlock.Locked as e:
            raise Unavailable("another dmctl logd serves the kernel (%s%s)"
                              % (self.lock_path, ", pid " + e.pid if e.pid else ""))
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as e:
            os.close(fd)
            raise Unavailable("no netlink connector in this kernel (%s)" % e.strerror)
        try:
            s.bind((0, 0))
            # cmirrord also binds nl_groups = CN_IDX_DM, a mask for groups 1-3 that
            # receives nothing (§1.1); the membership is what works
            s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, CN_IDX_DM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            except OSError:
                pass
        except OSError as e:
            s.close()
            os.close(fd)
            why = e.strerror
            if e.errno == errno.EPERM:
                why += ": joining the connector's group needs root (CAP_NET_ADMIN)"
            raise Unavailable("cannot join the connector's group %d: %s" % (CN_IDX_DM, why))
        s.setblocking(False)
        pidlock.write_pid(fd)
        self.sock, self.lockfd = s, fd
        self.node = self.daemon.kernel_node(KERNEL_NODE)
        self.can_reply = has_cap(CAP_SYS_ADMIN)
        if not self.can_reply:
            log.error("kernel transport: this process lacks CAP_SYS_ADMIN, so the kernel "
                      "drops every reply it sends: mirrors with a userspace log will "
                      "hang; run dmctl logd as root")
        log.info("serving the kernel on the netlink connector (CN_IDX_DM %d, val %d) as "
                 "node %d", CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG, self.node)

    def fileno(self):
        return self.sock.fileno()

    def describe(self):
        return {"type": "kernel", "path": "netlink connector %d:%d" % (
            CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG), "node": self.node,
            "cap_sys_admin": self.can_reply, "requests": self.received}

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.lockfd is not None:
            pidlock.release(self.lock_path, self.lockfd)
            self.lockfd = None

    def on_readable(self):
        while self.sock is not None:
            try:
                data, addr = self.sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    # requests were lost; the kernel re-sends them after its timeout
                    self.daemon.complain("enobufs", "kernel transport: receive buffer "
                                         "overrun, requests lost (the kernel retries them)")
                    continue
                raise
            if addr[0] != 0:
                # not from the kernel: cmirrord answers only the kernel
                self.ignored += 1
                self.daemon.complain(("nlpid", addr[0]), "ignored a connector message "
                                     "from port %d (not the kernel)" % addr[0])
                continue
            self._datagram(data)

    def _datagram(self, data):
        off = 0
        while off + NLMSGHDR.size <= len(data):
            nlen, ntype, _flags, _seq, npid = NLMSGHDR.unpack_from(data, off)
            if nlen < NLMSGHDR.size or off + nlen > len(data):
                self.daemon.complain("nlshort", "kernel transport: bad netlink length %d"
                                     % nlen)
                return
            body = data[off + NLMSGHDR.size:off + nlen]
            off += (nlen + 3) & ~3
            if ntype == NLMSG_ERROR:
                self.daemon.complain("nlerror", "kernel transport: netlink error message")
                continue
            if ntype != NLMSG_DONE:
                self.daemon.complain(("nltype", ntype), "kernel transport: unknown "
                                     "netlink message type %d" % ntype)
                continue
            if len(body) < W.CN_MSG.size:
                self.daemon.complain("cnshort", "kernel transport: short connector message")
                continue
            idx, val = W.CN_MSG.unpack_from(body)[:2]
            if (idx, val) != (CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG):
                continue
            self.received += 1
            # with corosync, a request that crosses the CPG is answered later (_send)
            reply = self.daemon.answer(self.host, self.node, bytes(body), self._send)
            if reply:
                self._send(reply)

    def _send(self, reply):
        msg = NLMSGHDR.pack(NLMSGHDR.size + len(reply), NLMSG_DONE, 0, 0, os.getpid()) + reply
        try:
            self.sock.sendto(msg, (0, 0))
        except OSError as e:
            self.daemon.complain(("send", e.errno), "kernel transport: reply not sent: %s"
                                 % e.strerror)
