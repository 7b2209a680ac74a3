#!/usr/bin/env python3
"""logd: ``dmctl logd``'s throughput, each next to a baseline measured in the same run
(issue 12, cluster-log.md §4.3):

* requests/s through the daemon's Unix socket (IN_SYNC on one constructed
  clustered-core log, the simulator's framing) next to a bare Unix-socket echo server
  doing the same round trips with the same frames (target >= 0.5x); and the
  state-changing requests (MARK_REGION, FLUSH, CLEAR_REGION, FLUSH...: every MARK and
  CLEAR is durable, fsync'd, before its reply) against the same echo, reported apart
  (no target: they include the durable write);
* CPG marks/clears per second through a one-node corosync cluster (a network
  namespace, corosync 3, the daemon in it; every mark crosses the CPG twice, request
  and the server's response, and is durable before its reply) next to raw CPG messages
  per second (multicast, then wait for its own delivery, same size) with the same
  libcpg binding (target >= 0.5x); needs root and corosync, else "not measured: why";
* 1 MiB sequential writes through a 2-leg mirror with a userspace (clustered-core)
  log served by the daemon next to a core-log mirror, in the simulator (target >= 0.3x).

CPU times count the client, the server (daemon or echo) and corosync (from /proc).
Settings: BENCH_ROUNDS (default 11), BENCH_LOGD_REQUESTS (IN_SYNC round trips per run,
default 5000), BENCH_LOGD_WRITES (state-changing requests per run, default 400),
BENCH_LOGD_CPG (CPG marks/clears per run, default 1000), BENCH_LOGD_MB (mirror legs,
default 32), BENCH_DIR.  Every process and namespace it starts is ended by pid.  Exit
status 0 whatever the ratios: a benchmark reports, it does not fail.
"""

import os
import select
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import (Clock, NotMeasured, interleaved, load,  # noqa: E402
                               on_device, ratio_rows, report_ratios, sim_writes)
from dmctl.constants import (DM_ULOG_CLEAR_REGION, DM_ULOG_CTR,  # noqa: E402
                             DM_ULOG_FLUSH, DM_ULOG_IN_SYNC, DM_ULOG_MARK_REGION,
                             DM_ULOG_RESUME)
from dmctl.formats import ulog as W  # noqa: E402

MB = 1 << 20
REGION = 1024                      # sectors
LOG_SECTORS = 16 * REGION          # the benchmark's own log: 16 regions
UUID = "LVM-BENCH-LOGD"
LUID = 1
_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """User + system seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def timed(pids, fn):
    """(wall, cpu) of ``fn()``: cpu is this process's plus that of ``pids``."""
    before = sum(proc_cpu(p) for p in pids)
    with Clock() as c:
        fn()
    wall, cpu = c.times
    return wall, cpu + sum(proc_cpu(p) for p in pids) - before


def connect(path, name=None):
    """A connection to the daemon (which ``name`` says hello to) or to the echo."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    if name is None:
        return s
    s.sendall(W.pack_frame(W.HELLO, name.encode()))
    kind, _ = W.recv_frame(s)
    assert kind == W.HELLO_ANS, kind
    return s


def ask(s, msg):
    """One request -> (error, payload) of its reply."""
    s.sendall(W.pack_frame(W.REQUEST, msg))
    kind, body = W.recv_frame(s)
    if kind != W.REPLY:
        raise RuntimeError("the daemon answered %r: %r" % (kind, body[:200]))
    cn, req, data = W.unpack_request(body)
    return (-cn[3] if req is None else req["error"]), data


def make_log(s):
    """CTR and RESUME of the benchmark's clustered-core log on connection ``s``."""
    ctr = ("%d clustered-core %d\0" % (LOG_SECTORS, REGION)).encode()
    for seq, (rtype, data) in enumerate(((DM_ULOG_CTR, ctr), (DM_ULOG_RESUME, b"")), 1):
        err, _ = ask(s, W.pack_request(LUID, UUID, seq, rtype, data))
        if err:
            raise RuntimeError("request %d for the benchmark's log: error %d" % (rtype, err))


def reads(n):
    q = W.pack_request
    return [W.pack_frame(W.REQUEST, q(LUID, UUID, 100 + i, DM_ULOG_IN_SYNC,
                                      (i % 16).to_bytes(8, sys.byteorder)))
            for i in range(n)]


def changes(n, flush=True):
    """MARK_REGION, FLUSH, CLEAR_REGION, FLUSH, ... (``n`` requests), or without the
    FLUSHes: MARK, CLEAR, ..."""
    out = []
    i = 0
    while len(out) < n:
        r = ((i // 2) % 16).to_bytes(8, sys.byteorder)
        rtype = DM_ULOG_MARK_REGION if i % 2 == 0 else DM_ULOG_CLEAR_REGION
        out.append(W.pack_frame(W.REQUEST, W.pack_request(LUID, UUID, 10000 + len(out),
                                                          rtype, r)))
        if flush and len(out) < n:
            out.append(W.pack_frame(W.REQUEST, W.pack_request(LUID, UUID, 10000 + len(out),
                                                              DM_ULOG_FLUSH)))
        i += 1
    return out


def round_trips(s, frames):
    """Send each frame and wait for its answer (what the simulated kernel does)."""
    def fn():
        for f in frames:
            s.sendall(f)
            kind, _ = W.recv_frame(s)
            if kind != W.REPLY:
                raise RuntimeError("answer %r" % kind)
    return fn


def check(s, frames):
    """Every frame once, outside the clock: each must succeed."""
    for f in frames:
        err, _ = ask(s, f[W.FRAME.size:])
        if err:
            raise RuntimeError("request failed with error %d" % err)


# -- the echo server and the raw CPG client (child processes of this script) ------------------

def echo_server(path):
    """A bare Unix-socket echo: each frame back as a REPLY of the same size."""
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(4)
    print("ready", flush=True)
    while True:
        s, _ = ls.accept()
        try:
            while True:
                _kind, body = W.recv_frame(s)
                s.sendall(W.pack_frame(W.REPLY, body))
        except (EOFError, OSError):
            s.close()


def cpg_raw(count, size):
    """Join a group, wait for the go line on stdin, then ``count`` times: multicast a
    message of ``size`` bytes and dispatch until it is delivered back; print the wall
    and CPU seconds of the loop."""
    from dmctl.logd import cpg
    got = []
    joined = []
    c = cpg.Cpg(lambda g, node, pid, msg: got.append(len(msg)),
                lambda g, members, left, j: joined.append(members))
    try:
        c.join("dmctl-bench-raw")
        fd = c.fileno()
        deadline = time.monotonic() + 30
        while not joined and time.monotonic() < deadline:
            select.select([fd], [], [], 1.0)
            c.dispatch()
        if not joined:
            raise SystemExit("no confchg after joining")
        print("ready", flush=True)
        sys.stdin.readline()
        msg = os.urandom(size)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(count):
            c.mcast(msg)
            while len(got) <= i:
                select.select([fd], [], [], 10.0)
                c.dispatch()
        print("%.6f %.6f" % (time.perf_counter() - t0, time.process_time() - c0), flush=True)
        c.leave("dmctl-bench-raw")
    finally:
        c.finalize()


class Child:
    """A child process of this script that prints "ready" once it serves."""

    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=env, text=True)
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError("%s did not start" % " ".join(argv))

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=30)
        for f in (self.p.stdin, self.p.stdout):
            f.close()


def start_daemon(sock, state_dir):
    from dmctl.logd import client
    return client.start(sock, state_dir=state_dir, syslog=False, kernel=False)


def stop_daemon(sock, pid):
    from dmctl.logd import client
    try:
        client.stop(sock, timeout=30)
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        client._alive(pid)          # reaps it


# -- the three parts ---------------------------------------------------------------------------

def socket_part(d, rounds, nreq, nwrite):
    sock, echo_sock = os.path.join(d, "logd.sock"), os.path.join(d, "echo.sock")
    pid = start_daemon(sock, os.path.join(d, "logd"))
    echo = None
    try:
        echo = Child([sys.executable, os.path.abspath(__file__), "--echo", echo_sock])
        s, e = connect(sock, "bench-host"), connect(echo_sock)
        make_log(s)
        rd, wr = reads(nreq), changes(nwrite)
        check(s, rd[:32])
        check(s, wr[:64])
        times = interleaved({
            "get": lambda: timed([pid], round_trips(s, rd)),
            "echo_get": lambda: timed([echo.p.pid], round_trips(e, rd)),
            "set": lambda: timed([pid], round_trips(s, wr)),
            "echo_set": lambda: timed([echo.p.pid], round_trips(e, wr)),
        }, rounds, sync=False)
        s.close()
        e.close()
    finally:
        if echo is not None:
            echo.stop()
        stop_daemon(sock, pid)
    return times


def cpg_part(d, rounds, nops):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from corosync_net import Net, missing
    why = missing()
    if why:
        return {"cpg": NotMeasured(why), "cpg_raw": NotMeasured(why)}
    net = Net(os.path.join(d, "cl"), n=1)
    try:
        net.setup()
        net.start_corosync(1)
        net.wait_members(1, 1)
        host = os.path.join(d, "cpg-host")
        os.makedirs(host)
        st = net.start_logd(1, host)
        if st["cluster"]["engine"] != "corosync":
            return {"cpg": NotMeasured("the daemon found no corosync")}
        sock = os.path.join(host, "logd.sock")
        daemon, coro = net.logd[1].pid, net.corosync_pid(1)
        s = connect(sock, os.path.realpath(host))
        make_log(s)
        ops = changes(nops, flush=False)
        check(s, ops[:32])
        size = len(ops[0]) - W.FRAME.size - W.CN_MSG.size + 24    # a clog_request's size
        env = dict(os.environ, PYTHONPATH=ROOT)

        def raw():
            c = Child(["ip", "netns", "exec", net.ns[0], sys.executable,
                       os.path.abspath(__file__), "--cpg-raw", str(nops), str(size)], env)
            try:
                c0 = proc_cpu(coro)
                c.p.stdin.write("go\n")
                c.p.stdin.flush()
                wall, cpu = map(float, c.p.stdout.readline().split())
                return wall, cpu + proc_cpu(coro) - c0
            finally:
                c.stop()

        times = interleaved({
            "cpg": lambda: timed([daemon, coro], round_trips(s, ops)),
            "cpg_raw": raw,
        }, rounds, sync=False)
        s.close()
        return times
    finally:
        net.teardown()


def mirror_part(d, rounds, size):
    sim = os.path.join(d, "sim")
    os.environ["DMCTL_SIM_DIR"] = sim
    os.makedirs(sim)
    from dmctl.backend.sim import SimMapper
    sock = W.socket_path(sim)
    pid = start_daemon(sock, sim)
    m = None
    try:
        m = SimMapper()
        legs = [os.path.join(d, "leg%d" % i) for i in range(2)]
        pairs = " ".join("%s 0" % p for p in legs)
        buf = os.urandom(MB)
        sectors = size >> 9

        def writes(name, params):
            return lambda: timed([pid], lambda: on_device(
                m, name, "mirror", params, sectors, sim_writes(name, size, buf),
                [(p, size) for p in legs]))

        times = interleaved({
            "core": writes("mc", "core 2 %d nosync 2 %s" % (REGION, pairs)),
            "userspace": writes("mu", "userspace 4 %s clustered-core %d nosync 2 %s"
                                % ("LVM-BENCH-MIRROR", REGION, pairs)),
        }, rounds)
    finally:
        if m is not None:
            m.close()
        stop_daemon(sock, pid)
    return times


def main():
    rounds = int(os.environ.get("BENCH_ROUNDS", "11"))
    nreq = int(os.environ.get("BENCH_LOGD_REQUESTS", "5000"))
    nwrite = int(os.environ.get("BENCH_LOGD_WRITES", "400"))
    ncpg = int(os.environ.get("BENCH_LOGD_CPG", "1000"))
    size = int(os.environ.get("BENCH_LOGD_MB", "32")) * MB
    for k in ("DMCTL_LOGD_SOCKET", "DMCTL_BACKEND"):
        os.environ.pop(k, None)
    os.environ["DMCTL_LOGD_CLUSTER"] = "none"     # the socket and mirror parts: no CPG
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        lb = load()
        t = socket_part(d, rounds, nreq, nwrite)
        report_ratios(ratio_rows(t, [
            ("IN_SYNC requests/s, daemon vs a bare socket echo", "get", "echo_get", 0.5),
        ], nreq, "req/s") + ratio_rows(t, [
            ("MARK/CLEAR+FLUSH requests/s incl. the durable write, daemon vs echo",
             "set", "echo_set", None),
        ], nwrite, "req/s"), "logd: Unix socket, %d reads and %d state changes per run"
            % (nreq, nwrite), rounds, lb)
        print()
        lb = load()
        os.environ.pop("DMCTL_LOGD_CLUSTER")
        t = cpg_part(d, rounds, ncpg)
        report_ratios(ratio_rows(t, [
            ("CPG marks/clears/s incl. the durable write vs raw CPG messages/s",
             "cpg", "cpg_raw", 0.5),
        ], ncpg, "op/s"), "logd: one-node corosync CPG, %d marks/clears per run" % ncpg,
            rounds, lb)
        print()
        lb = load()
        os.environ["DMCTL_LOGD_CLUSTER"] = "none"
        t = mirror_part(d, rounds, size)
        report_ratios(ratio_rows(t, [
            ("1 MiB writes, userspace-log mirror vs core log", "userspace", "core", 0.3),
        ], size / MB, "MiB/s"), "logd: simulated 2-leg mirror, %d MiB legs" % (size // MB),
            rounds, lb)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--echo"]:
        echo_server(sys.argv[2])
    elif sys.argv[1:2] == ["--cpg-raw"]:
        cpg_raw(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
