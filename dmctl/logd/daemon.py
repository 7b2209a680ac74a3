"""The ``dmctl logd`` process: one state machine (``dmctl.logd.state``), its
transports, persistence, pid file, signals and logging, in cmirrord's spirit.

Transports: the Unix socket (``--socket``, mode 0600) that simulated kernels use,
framed as ``dmctl.formats.ulog`` describes; a peer must be root or the daemon's own
user (SO_PEERCRED).  The real kernel's netlink connector (CN_IDX_DM,
``dmctl.logd.connector``): ``kernel="auto"`` serves it when this kernel has
device-mapper and the daemon may join the group (root), ``True`` requires it, ``False``
never; the kernel is one more node of the same state machine.

Persistence: ``logd-state.db`` in the state directory, SQLite in WAL mode with
synchronous=FULL, committed before the reply to every request that may change state, so
that a ``kill -9`` loses nothing the daemon acknowledged.  After a restart every log is
unknown until its kernel re-sends CTR and RESUME (the unknown-log reply is -ESRCH,
padded); the persisted copy is taken back at that RESUME.

Bad input (short, wrong version, unknown type, oversize payload, garbage) gets an error
reply when it can be parsed as a request, else the connection is dropped; each kind of
complaint is logged once (then counted), and nothing of it stops the daemon.
"""

import errno
import json
import logging
import logging.handlers
import os
import pickle
import selectors
import signal
import socket
import sqlite3
import struct
import sys
import time

from dmctl.formats import ulog as W
from dmctl.logd import pidlock
from dmctl.logd import state as S
from dmctl.logd.client import default_pidfile
from dmctl.errors import DmctlError

log = logging.getLogger("dmctl-logd")
STATE_DB = "logd-state.db"
IO_TIMEOUT = 30.0           # a host that does not answer the daemon's I/O in time is dropped
FRAME_TIMEOUT = 10.0        # the rest of a frame once its first byte came


class StartError(DmctlError):
    """Why the daemon cannot start (printed, exit 1)."""


def setup_logging(use_syslog=None, verbose=False):
    """stderr always; syslog (ident dmctl-logd) when stderr is not a tty or asked."""
    root = logging.getLogger("dmctl-logd")
    root.handlers[:] = []
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(asctime)s dmctl-logd[%(process)d]: %(message)s"))
    root.addHandler(h)
    if use_syslog is None:
        use_syslog = not sys.stderr.isatty()
    if use_syslog and os.path.exists("/dev/log"):
        try:
            s = logging.handlers.SysLogHandler(address="/dev/log",
                                               facility=logging.handlers.SysLogHandler.LOG_DAEMON)
            s.setFormatter(logging.Formatter("dmctl-logd[%(process)d]: %(message)s"))
            root.addHandler(s)
        except OSError:
            pass


class _Once:
    """Log each kind of complaint once, count the rest."""

    def __init__(self):
        self.counts = {}

    def __call__(self, kind, msg):
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        if n == 0:
            log.warning("%s (further ones are counted, not logged)", msg)


class _HostIO:
    """The originating host's kernel, reached back over its connection: cmirrord opens
    the log device on its own node; a simulated node's devices live in its kernel."""

    def __init__(self, conn):
        self.conn = conn

    def _ask(self, body):
        self.conn.sock.settimeout(IO_TIMEOUT)
        self.conn.sock.sendall(W.pack_frame(W.IO, body))
        kind, ans = W.recv_frame(self.conn.sock)
        if kind != W.IO_DONE or len(ans) < W.IO_ANS.size:
            raise ValueError("expected an I/O answer, got %r" % kind)
        err, major, minor = W.IO_ANS.unpack_from(ans)
        return err, (major, minor), ans[W.IO_ANS.size:]

    def lookup(self, devarg):
        err, devno, _ = self._ask(W.IO_REQ.pack(W.IO_LOOKUP, 0, 0, 0, 0) + devarg.encode())
        if err:
            raise OSError(err, os.strerror(err))
        return devno

    def io(self, devno, op, sectors, data, flags):
        err, _, out = self._ask(W.IO_REQ.pack(op, flags, devno[0], devno[1], sectors) + data)
        return err, out


class _Conn:
    def __init__(self, sock, uid, pid):
        self.sock = sock
        self.uid = uid
        self.pid = pid
        self.node = None
        self.name = None


class Daemon:
    def __init__(self, socket_path, pidfile=None, state_dir=None, kernel="auto"):
        self.socket_path = os.path.abspath(socket_path)
        self.kernel = kernel
        self.transports = []        # more transports than the Unix socket (the kernel's)
        self.cluster = None         # dmctl.logd.cluster.Cluster when corosync is reachable
        self.pidfile = os.path.abspath(pidfile or default_pidfile(self.socket_path))
        self.state_dir = os.path.abspath(state_dir or os.path.dirname(self.socket_path))
        self.server = None
        self.db = None
        self.listener = None
        self.sel = None
        self.lockfd = None
        self.stopping = False
        self.complain = _Once()
        self.requests = 0
        self.started = time.time()

    # -- start-up --------------------------------------------------------------------------
    def open(self):
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        os.makedirs(os.path.dirname(self.socket_path), exist_ok=True)
        # the pid file is the lock (cmirrord's lock file): one daemon per socket
        try:
            fd = pidlock.acquire(self.pidfile)
        except OSError as e:
            raise StartError("cannot open pid file %s: %s" % (self.pidfile, e.strerror))
        except pidlock.Locked as e:
            raise StartError("dmctl logd is already running (pid file %s is locked%s)"
                             % (self.pidfile, ", pid " + e.pid if e.pid else ""))
        self.lockfd = fd
        if _answers(self.socket_path):
            raise StartError("dmctl logd is already running on %s" % self.socket_path)
        self._open_state()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StartError("cannot remove %s: %s" % (self.socket_path, e.strerror))
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            s.bind(self.socket_path)
        except OSError as e:
            s.close()
            raise StartError("cannot bind %s: %s" % (self.socket_path, e.strerror))
        finally:
            os.umask(old)
        os.chmod(self.socket_path, 0o600)
        self.socket_ino = os.stat(self.socket_path).st_ino
        s.listen(64)
        s.setblocking(False)
        self.listener = s
        pidlock.write_pid(fd)
        self.sel = selectors.DefaultSelector()
        self.sel.register(s, selectors.EVENT_READ, None)
        self._open_kernel()
        self._open_cluster()
        log.info("serving on %s (state in %s, %d log(s) to recover, %s)",
                 self.socket_path, self.state_dir, len(self.server.recovered),
                 "corosync CPG, node %d" % self.cluster.nodeid if self.cluster
                 else "no corosync: one-node cluster")

    def _open_cluster(self):
        """corosync's CPG when one is reachable in this network namespace
        (``$DMCTL_LOGD_CLUSTER``: auto, the default; corosync: required; none: never),
        else the one-node cluster of the hosts that share this daemon."""
        self.cluster = None
        want = os.environ.get("DMCTL_LOGD_CLUSTER", "auto")
        if want == "none":
            return
        from dmctl.logd import cluster, cpg
        try:
            self.cluster = cluster.Cluster(self)
        except cpg.CpgError as e:
            if want == "corosync":
                self.close()
                raise StartError("no corosync: %s" % e)
            log.info("no corosync (%s): one-node cluster", e)
            return
        # every host of this daemon is this corosync node
        for name in self.server.nodes:
            self.server.nodes[name] = self.cluster.nodeid

    def cpg_register(self, group):
        self.sel.register(group.fd, selectors.EVENT_READ, group)

    def cpg_unregister(self, group):
        if self.sel is None:
            return
        try:
            self.sel.unregister(group.fd)
        except (KeyError, ValueError):
            pass

    def cpg_reply(self, pending, reply):
        """The late answer to a request that waited for the cluster."""
        if self.server.must_persist(pending.msg):
            self._save()
        try:
            pending.conn(reply)
        except OSError as e:
            self.complain(("late", type(e).__name__), "cannot send a reply: %s" % e)

    def _open_kernel(self):
        """The kernel's connector transport, as ``self.kernel`` asks (see the module's
        docstring); with ``True`` its failure stops the start."""
        if self.kernel is False or self.kernel in ("no", "never"):
            return
        from dmctl.logd import connector
        if self.kernel == "auto" and not connector.kernel_has_dm():
            log.info("kernel transport: this kernel has no device-mapper loaded: "
                     "not serving it")
            return
        t = connector.KernelTransport(self)
        try:
            t.open()
        except connector.Unavailable as e:
            if self.kernel == "auto":
                log.info("kernel transport: not serving the kernel: %s", e)
                return
            self.close()
            raise StartError("cannot serve the kernel: %s" % e)
        self.transports.append(t)
        self.sel.register(t, selectors.EVENT_READ, t)

    def kernel_node(self, name):
        """The node id of a transport's kernel (persisted: a restart keeps it)."""
        known = name in self.server.nodes
        n = self.server.node_id(name)
        if not known:
            self._save()
        return n

    def _open_state(self):
        path = os.path.join(self.state_dir, STATE_DB)
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("CREATE TABLE IF NOT EXISTS state(k TEXT PRIMARY KEY, v BLOB)")
            row = self.db.execute("SELECT v FROM state WHERE k='server'").fetchone()
        except sqlite3.Error as e:
            raise StartError("cannot open the state file %s: %s" % (path, e))
        srv = None
        if row is not None:
            try:
                srv = pickle.loads(row[0])
                if not isinstance(srv, S.LogServer):
                    raise TypeError(type(srv).__name__)
            except Exception as e:          # noqa: BLE001 - a corrupt file must not stop us
                log.error("state file %s unreadable (%s): starting empty", path, e)
                srv = None
        if srv is None:
            srv = S.LogServer()
        srv.restarted()
        srv.say = lambda line: log.info("%s", line)
        self.server = srv
        self._save()

    def _save(self):
        blob = pickle.dumps(self.server, protocol=4)
        self.db.execute("INSERT OR REPLACE INTO state VALUES('server', ?)", (blob,))

    # -- the loop --------------------------------------------------------------------------
    def serve_forever(self):
        # a signal wakes the loop at once (its handler only sets a flag)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.sel.register(wake_r, selectors.EVENT_READ, "wake")
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_dump)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        try:
            while not self.stopping:
                events = self.sel.select(timeout=1.0 if self.cluster else 5.0)
                if self.cluster is not None:
                    self.cluster.tick()
                if not events and not self._socket_is_ours():
                    log.warning("%s was removed or replaced: exiting", self.socket_path)
                    break
                for key, _ in events:
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        try:
                            wake_r.recv(512)
                        except OSError:
                            pass
                    elif hasattr(key.data, "on_readable"):     # the kernel's transport
                        key.data.on_readable()
                    else:
                        self._serve_one(key.data)
                    if self.stopping:
                        break
        finally:
            signal.set_wakeup_fd(old_wakeup)
            self.sel.unregister(wake_r)
            wake_r.close()
            wake_w.close()
            self.close()

    def _socket_is_ours(self):
        try:
            return os.stat(self.socket_path).st_ino == self.socket_ino
        except OSError:
            return False

    def _on_stop(self, signum, frame):
        log.info("signal %d: exiting (%d log(s) kept for a restart)", signum,
                 len(self.server.logs))
        self.stopping = True

    def _on_dump(self, signum, frame):
        for l in self.server.describe():
            log.info("log %s/%d %s %d/%d %s node %d", l["uuid"], l["luid"], l["type"],
                     l["sync_count"], l["region_count"], l["state"], l["node"])

    def close(self):
        if self.sel is not None:
            for key in list(self.sel.get_map().values()):
                if isinstance(key.data, _Conn):
                    key.data.sock.close()
            self.sel.close()
            self.sel = None
        for t in self.transports:
            t.close()
        self.transports = []
        if getattr(self, "cluster", None) is not None:
            self.cluster.close()
            self.cluster = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            if self._socket_is_ours():         # not another daemon's, made since
                try:
                    os.unlink(self.socket_path)
                except OSError:
                    pass
        if self.db is not None:
            self.db.close()
            self.db = None
        if self.lockfd is not None:
            pidlock.release(self.pidfile, self.lockfd)
            self.lockfd = None

    def _accept(self):
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        try:
            pid, uid, _gid = struct.unpack("3i", sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        except OSError:
            sock.close()
            return
        if uid not in (0, os.getuid()):
            self.complain(("uid", uid), "refused a connection from uid %d (pid %d): only "
                          "root and uid %d may talk to this daemon" % (uid, pid, os.getuid()))
            sock.close()
            return
        sock.setblocking(True)
        conn = _Conn(sock, uid, pid)
        self.sel.register(sock, selectors.EVENT_READ, conn)

    def _drop(self, conn):
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _serve_one(self, conn):
        try:
            conn.sock.settimeout(FRAME_TIMEOUT)
            kind, body = W.recv_frame(conn.sock)
            out = self._frame(conn, kind, body)
            if out is not None:
                conn.sock.sendall(out)
        except EOFError:
            self._drop(conn)
        except (ValueError, OSError, UnicodeError, struct.error) as e:
            self.complain(("conn", type(e).__name__),
                          "dropped a connection (pid %d): %s" % (conn.pid, e))
            self._drop(conn)

    def _frame(self, conn, kind, body):
        if kind == W.HELLO:
            conn.name = body.decode("utf-8", "strict") or "pid-%d" % conn.pid
            known = conn.name in self.server.nodes
            if self.cluster is not None:
                # one corosync node: the daemon serves one host (its node id is the
                # corosync node's); a second host would be taken for the first
                host = self.cluster.host
                if host is not None and host != conn.name:
                    raise ValueError("with corosync this daemon serves one host (%s), "
                                     "not also %s" % (host, conn.name))
                self.cluster.host = conn.name
                known = self.server.nodes.get(conn.name) == self.cluster.nodeid
                self.server.nodes[conn.name] = self.cluster.nodeid
            conn.node = self.server.node_id(conn.name)
            if not known:
                self._save()
            return W.pack_frame(W.HELLO_ANS, struct.pack("<I", conn.node))
        if kind == W.STATUS:
            opts = json.loads(body.decode() or "{}") if body else {}
            if not isinstance(opts, dict):
                raise ValueError("bad status options")
            return W.pack_frame(W.STATUS_ANS, json.dumps(self.status(conn, opts)).encode())
        if conn.node is None:
            raise ValueError("%r before hello" % kind)
        if kind == W.REQUEST:
            reply = self.request(conn, body)
            # None: it crosses the CPG, the reply comes later (cluster.Cluster)
            return None if reply is None else W.pack_frame(W.REPLY, reply)
        if kind == W.CRASHED:
            n = self.server.node_left(conn.node)
            self._save()
            return W.pack_frame(W.CRASHED_ANS, struct.pack("<I", n))
        raise ValueError("unknown frame kind %r" % kind)

    def request(self, conn, msg):
        """One dm_ulog_request of conn's node; the reply is sent only after the state
        it depends on is on disk."""
        return self.answer(_HostIO(conn), conn.node, msg,
                           lambda r: conn.sock.sendall(W.pack_frame(W.REPLY, r)))

    def answer(self, host, node, msg, reply_to=None):
        """One dm_ulog_request (cn_msg onwards) of ``node``, whose log devices ``host``
        reaches, from any transport -> the reply, once what it depends on is on disk.
        With corosync, a request that crosses the CPG returns None and is answered
        later through ``reply_to(reply)`` (None: not answered at all while clustered)."""
        self.requests += 1
        if len(msg) > W.CN_MSG.size + W.ULOG_REQUEST_SIZE:
            self.complain("oversize", "oversize request (%d bytes)" % len(msg))
            return self._error_reply(msg, errno.EINVAL)
        try:
            if self.cluster is not None:
                _cn, req, data = W.unpack_request(msg)
                if req is not None and len(data) == req["data_size"] and \
                        self.cluster.takes(req):
                    if reply_to is None:
                        self.complain("noreply", "a clustered request from a transport "
                                      "that cannot take a late reply: not answered")
                        return None
                    reply = self.cluster.submit(reply_to, host, msg, req, data)
                    if reply is not None and self.server.must_persist(msg):
                        self._save()
                    return reply
            reply = self.server.handle(host, msg, node)
        except (ValueError, struct.error, UnicodeError) as e:
            self.complain(("bad", type(e).__name__), "malformed request: %s" % e)
            return self._error_reply(msg, errno.EINVAL)
        if self.server.must_persist(msg):
            self._save()
        return reply

    def _error_reply(self, msg, err):
        try:
            cn, req, _ = W.unpack_request(msg)
        except ValueError:
            req = None
        if req is None:
            return W.pack_ack(0, err)
        return W.pack_reply(cn[2], req, -err)

    # -- status ----------------------------------------------------------------------------
    def status(self, conn, opts):
        me = self.server.nodes.get(opts["node"]) if opts.get("node") else conn.node
        logs = []
        for l in self.server.describe():
            lc = self.server.logs[(l["node"], l["uuid"], l["luid"])]
            l["members"] = [m.node for m in self.server.members(lc)]
            if self.cluster is not None and l["node"] == self.cluster.nodeid:
                l["members"] = self.cluster.members_of(l["uuid"]) or l["members"]
                l["server"] = bool(l["members"]) and l["members"][0] == l["node"] \
                    and lc.state == S.LOG_RESUMED
            l["this_node"] = l["node"] == me
            logs.append(l)
        return {"pid": os.getpid(), "uptime": round(time.time() - self.started, 1),
                "requests": self.requests,
                "transports": [{"type": "unix", "path": self.socket_path}]
                + [t.describe() for t in self.transports],
                "cluster": dict({"engine": None, "corosync": False,
                                 "note": "no corosync: one-node cluster (the simulated "
                                         "hosts that share this daemon are its nodes)",
                                 "this_node": me,
                                 "nodes": [{"id": n, "name": k} for k, n in
                                           sorted(self.server.nodes.items(),
                                                  key=lambda kv: kv[1])]},
                                **(self.cluster.describe() if self.cluster else {})),
                "logs": logs,
                "recovered": [{"node": k[0], "uuid": k[1], "luid": k[2]}
                              for k in sorted(self.server.recovered)],
                "state_dir": self.state_dir,
                "complaints": {str(k): v for k, v in self.complain.counts.items()}}


def _answers(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def run(socket_path, pidfile=None, state_dir=None, ready_fd=None, kernel="auto"):
    """The foreground daemon (``dmctl logd run``); returns the exit status."""
    d = Daemon(socket_path, pidfile, state_dir, kernel)
    try:
        d.open()
    except StartError as e:
        log.error("%s", e)
        if d.lockfd is not None:
            os.close(d.lockfd)
        return 1
    if ready_fd is not None:
        os.write(ready_fd, b"ok\n")
        os.close(ready_fd)
    try:
        d.serve_forever()
    except Exception:                        # noqa: BLE001 - logged, then the exit code
        log.exception("fatal error")
        return 1
    log.info("stopped")
    return 0
