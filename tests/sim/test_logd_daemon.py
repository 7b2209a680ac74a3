"""``dmctl logd`` as a process: start / run / stop / status, the Unix socket's
protection (mode 0600, SO_PEERCRED), bad input, and a ``kill -9`` of the daemon under
I/O followed by a restart (the kernel side reconnects: CTR and RESUME again; the legs
end identical)."""

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

from dmctl.constants import (DM_ULOG_CTR, DM_ULOG_GET_SYNC_COUNT, DM_ULOG_IN_SYNC,
                             DM_ULOG_MARK_REGION, DM_ULOG_REQUEST_VERSION)
from dmctl.formats import mirror_log as F
from dmctl.formats import ulog as W
from dmctl.logd import client
from dmctl.sim import io as sio
from logd_helpers import logd_logs, logd_start, logd_stop, sock
from test_mirror_helpers import ROOT, mk, status_line
from test_mirror_userspace import logd as logd_running, loops  # noqa: F401 (fixtures)

CORE = "0 16384 mirror userspace 3 %s clustered-core 1024 2 %s 0 %s 0"
DISK = "0 16384 mirror userspace 4 %s clustered-disk 7:6 1024 2 %s 0 %s 0"


@pytest.fixture
def logd(mapper, logd_running):
    return sock(mapper)


def _env(sim_dir, **kw):
    e = dict(os.environ, DMCTL_SIM_DIR=str(sim_dir), DMCTL_BACKEND="sim",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(kw)
    return e


def _pid(path):
    return client.status(path)["pid"]


def _raw(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def _hello(s, name="fuzz-host"):
    s.sendall(W.pack_frame(W.HELLO, name.encode()))
    kind, body = W.recv_frame(s)
    assert kind == W.HELLO_ANS
    return struct.unpack("<I", body)[0]


# -- the process ------------------------------------------------------------------------------

def test_start_status_second_start_stop(sim_dir, dmctl):
    path = os.path.join(str(sim_dir), "logd.sock")
    p = dmctl("logd", "status")
    assert (p.rc, p.out) == (3, "logd is not running\n")
    p = dmctl("logd", "start")
    assert p.rc == 0, p
    pid = _pid(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(os.path.join(str(sim_dir), "logd.pid")) as f:
        assert int(f.read()) == pid
    # a second start says so and leaves the first alone
    p = dmctl("logd", "start")
    assert p.rc == 1 and "already running (pid %d" % pid in p.err
    p = dmctl("logd", "status", "--json")
    st = json.loads(p.out)
    assert st["pid"] == pid and st["transports"] == [{"type": "unix", "path": path}]
    assert st["cluster"]["corosync"] is False and "no corosync" in st["cluster"]["note"]
    assert st["logs"] == []
    p = dmctl("logd", "status")
    assert p.out.splitlines() == ["# logd: unix %s" % path,
                                  "# cluster: no corosync, one-node cluster; nodes -; this node -"]
    p = dmctl("logd", "stop")
    assert p.rc == 0, p
    assert not os.path.exists(path) and not os.path.exists(os.path.join(str(sim_dir), "logd.pid"))
    assert not client._alive(pid)
    assert dmctl("logd", "stop").rc == 0               # nothing to stop


def test_start_with_options_and_a_reason_when_it_cannot(tmp_path, dmctl):
    d = tmp_path / "run"
    p = dmctl("logd", "start", "--socket", str(d / "x.sock"), "--pidfile", str(d / "x.pid"))
    assert p.rc == 0, p
    pid = _pid(str(d / "x.sock"))
    assert open(d / "x.pid").read().strip() == str(pid)
    # the same pid file, another socket: the lock says no
    p = dmctl("logd", "start", "--socket", str(d / "y.sock"), "--pidfile", str(d / "x.pid"))
    assert p.rc == 1 and "already running" in p.err
    assert dmctl("logd", "stop", "--socket", str(d / "x.sock")).rc == 0
    # a socket it cannot bind
    p = dmctl("logd", "start", "--socket", "/proc/nope/x.sock", "--state-dir", str(d))
    assert p.rc == 1 and p.err.strip(), p


def test_run_in_the_foreground_ends_on_sigterm(tmp_path):
    path = str(tmp_path / "fg.sock")
    p = subprocess.Popen([sys.executable, "-m", "dmctl", "logd", "run", "--socket", path,
                          "--no-syslog"], env=_env(tmp_path), stderr=subprocess.PIPE,
                         text=True)
    try:
        for _ in range(200):
            if os.path.exists(path):
                break
            time.sleep(0.05)
        assert client.status(path)["pid"] == p.pid
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    assert p.returncode == 0
    assert "serving on %s" % path in err and "stopped" in err
    assert not os.path.exists(path)


def test_unit_file():
    with open(os.path.join(ROOT, "contrib", "dmctl-logd.service")) as f:
        unit = f.read()
    assert "Type=simple" in unit and "ExecStart=/usr/bin/dmctl logd run" in unit


# -- the simulator through the daemon ---------------------------------------------------------

def test_core_and_disk_logs_through_the_daemon(mapper, loops, logd):
    mk(mapper, "mc", CORE % ("LVM-CORE", loops[0], loops[1]))
    mk(mapper, "md", DISK % ("LVM-DISK", loops[4], loops[5]))
    assert status_line(mapper, "mc") == "0 16384 mirror 2 7:0 7:1 16/16 1 AA 1 clustered-core"
    assert status_line(mapper, "md") == "0 16384 mirror 2 7:4 7:5 16/16 1 AA 3 clustered-disk 7:6 A"
    sio.write(mapper, "md", 3 * 1024, os.urandom(8192))
    with open(loops[6], "rb") as f:
        buf = f.read(8192)
    assert F.unpack_header(buf) == (F.MIRROR_MAGIC, 2, 16)
    assert F.clean_regions(buf, 16) == set(range(16))
    st = client.status(logd, mapper.store.dir)
    assert sorted((l["uuid"], l["type"], l["members"], l["this_node"]) for l in st["logs"]) == [
        ("LVM-CORE", "clustered-core", [1], True), ("LVM-DISK", "clustered-disk", [1], True)]
    assert st["cluster"]["nodes"] == [{"id": 1, "name": os.path.realpath(mapper.store.dir)}]


def _writer(sim_dir, stop, progress):
    """Writes until the file ``stop`` names a count it has reached."""
    code = r"""
import os, sys
from dmctl.backend.sim import SimMapper
from dmctl.sim import io as sio
m = SimMapper(sys.argv[1])
i = 0
while True:
    try:
        with open(sys.argv[2]) as f:
            if i >= int(f.read()):
                break
    except (OSError, ValueError):
        pass
    sio.write(m, "mu", (i * 997) % 16376, bytes([i % 251 + 1]) * 4096)
    i += 1
    with open(sys.argv[3], "w") as f:
        f.write(str(i))
m.close()
"""
    return subprocess.Popen([sys.executable, "-c", code, str(sim_dir), str(stop), str(progress)],
                            env=_env(sim_dir, DMCTL_LOGD_WAIT="60"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _progress(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


@pytest.mark.parametrize("table", [CORE, DISK], ids=["core", "disk"])
def test_kill_9_under_io_and_restart(mapper, loops, sim_dir, tmp_path, table):
    """The daemon dies (SIGKILL) while another process writes; a new one starts; the
    kernel side gets "not found" / -ESRCH, re-sends CTR and RESUME, and goes on.  The
    legs end identical, nothing is wrongly in sync."""
    a, b = loops[4], loops[5]
    with open(a, "r+b") as f:                 # legs differ: a resync is needed
        f.write(os.urandom(8 << 20))
    assert logd_start(mapper)
    # 1024 regions of 16 sectors: the resync is still running when the daemon dies
    mk(mapper, "mu", (table % ("LVM-K9", a, b)).replace(" 1024 2 ", " 16 2 "))
    mapper.close()
    progress, stop = tmp_path / "progress", tmp_path / "stop"

    def wait_for(n):
        deadline = time.monotonic() + 120
        while _progress(progress) < n and time.monotonic() < deadline and w.poll() is None:
            time.sleep(0.01)
        assert _progress(progress) >= n, w.communicate()
    w = _writer(sim_dir, stop, progress)
    try:
        wait_for(2)
        st = client.status(sock(mapper))
        pid = st["pid"]
        os.kill(pid, signal.SIGKILL)              # under I/O: the writer goes on
        time.sleep(0.3)                           # requests find nobody for a while
        client._alive(pid)
        assert logd_start(mapper)
        wait_for(_progress(progress) + 5)         # more writes through the new daemon
        stop.write_text(str(_progress(progress)))
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert st["logs"][0]["sync_count"] < 1024         # it died during the resync
    finally:
        if w.poll() is None:
            w.kill()
    mapper.__init__(str(sim_dir))
    sio.settle(mapper)
    assert status_line(mapper, "mu").startswith("0 16384 mirror 2 7:4 7:5 1024/1024 1 AA")
    dmesg = "\n".join(r[0] for r in mapper.run(
        lambda env: env.db.execute("SELECT line FROM klog ORDER BY seq").fetchall()))
    assert "Reconnected to userspace log server... DM_ULOG_CTR complete" in dmesg
    [l] = logd_logs(mapper)
    assert l["state"] == "RESUMED" and l["marks"] == [] and l["sync_count"] == 1024
    # every write reads back, through the mirror and from both legs
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
    mapper.remove("mu")
    assert logd_stop(mapper) == 0


def test_restart_takes_back_what_was_acknowledged(mapper, loops, sim_dir):
    """A region marked before the kill stays marked after the restart (the state file),
    the sticky in_sync survives; an unknown log gets -ESRCH padded to the reply size."""
    assert logd_start(mapper)
    mk(mapper, "mu", CORE % ("LVM-RS", loops[4], loops[5]))

    def mark(env):
        from test_mirror_helpers import target
        log = target(env, "mu").log
        log.mark_region(5)
        assert log.flush() == 0
    mapper.run(mark)
    path = sock(mapper)
    pid = _pid(path)
    os.kill(pid, signal.SIGKILL)
    client._alive(pid)
    assert logd_start(mapper)
    st = client.status(path)
    assert st["logs"] == [] and [r["uuid"] for r in st["recovered"]] == ["LVM-RS"]
    # a raw request for it: -ESRCH, the payload padded (8 bytes for IN_SYNC)
    luid = st["recovered"][0]["luid"]
    s = _raw(path)
    _hello(s, os.path.realpath(mapper.store.dir))
    s.sendall(W.pack_frame(W.REQUEST, W.pack_request(luid, "LVM-RS", 9, DM_ULOG_IN_SYNC,
                                                     struct.pack("=Q", 1))))
    kind, body = W.recv_frame(s)
    s.close()
    _, rep, data = W.unpack_request(body)
    assert kind == W.REPLY and rep["error"] == -3 and data == bytes(8)
    # the kernel's next request reconnects; the mark is back
    assert status_line(mapper, "mu") == "0 16384 mirror 2 7:4 7:5 16/16 1 AA 1 clustered-core"
    [l] = logd_logs(mapper)
    assert l["marks"] == [(1, 5)] and 5 not in l["clean"] and l["in_sync"]
    mapper.remove("mu")
    logd_stop(mapper)


# -- bad input and peers ----------------------------------------------------------------------

def test_fuzz_requests_never_stop_the_daemon(mapper, loops, logd):
    mk(mapper, "mu", CORE % ("LVM-FZ", loops[4], loops[5]))
    rng = random.Random(12)
    good = W.pack_request(0, "LVM-FZ", 1, DM_ULOG_GET_SYNC_COUNT)
    mark = W.pack_request(0, "LVM-FZ", 2, DM_ULOG_MARK_REGION, struct.pack("=Q", 3))
    ctr = W.pack_request(0, "LVM-FZ2", 3, DM_ULOG_CTR, b"16384 clustered-core 1024")
    for i in range(400):
        s = _raw(logd)
        try:
            choice = i % 5
            if choice == 0:                    # garbage bytes, no framing
                s.sendall(os.urandom(rng.randrange(1, 300)))
            elif choice == 1:                  # a request frame before hello
                s.sendall(W.pack_frame(W.REQUEST, good))
            else:
                _hello(s)
                base = bytearray(rng.choice([good, mark, ctr]))
                if choice == 2:                # flipped bytes
                    for _ in range(rng.randrange(1, 8)):
                        base[rng.randrange(len(base))] = rng.randrange(256)
                elif choice == 3:              # cut short / oversize / wrong version
                    kind = rng.randrange(3)
                    if kind == 0:
                        base = base[:rng.randrange(len(base))]
                    elif kind == 1:
                        base = base + os.urandom(rng.randrange(1, 3000))
                        struct.pack_into("=I", base, W.CN_MSG.size + 156, len(base))
                    else:
                        struct.pack_into("=I", base, W.CN_MSG.size + 140,
                                         rng.choice([0, 4, 99, DM_ULOG_REQUEST_VERSION + 1]))
                else:                          # unknown types, random payloads
                    struct.pack_into("=I", base, W.CN_MSG.size + 152, rng.randrange(256))
                s.sendall(W.pack_frame(rng.choice([W.REQUEST, W.REQUEST, b"Z"]), bytes(base)))
                try:
                    W.recv_frame(s)
                except (EOFError, OSError, ValueError):
                    pass
        finally:
            s.close()
    st = client.status(logd, mapper.store.dir)
    assert st["complaints"]                    # it noticed, and logged each kind once
    assert any(l["uuid"] == "LVM-FZ" for l in st["logs"])
    # it still serves the kernel
    sio.write(mapper, "mu", 0, os.urandom(4096))
    assert status_line(mapper, "mu").startswith("0 16384 mirror 2 7:4 7:5 ")
    with open(os.path.join(os.path.dirname(logd), "logd.log")) as f:
        log = f.read()
    assert log.count("malformed request") <= 3 and log.count("dropped a connection") <= 6


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to test another uid")
def test_peer_credentials_other_users_are_refused():
    d = tempfile.mkdtemp(prefix="dmctl-logd-cred-")
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "logd.sock")
        pid = client.start(path)
        try:
            assert os.stat(path).st_mode & 0o777 == 0o600

            def as_nobody(opened):
                r, w = os.pipe()
                child = os.fork()
                if child == 0:
                    os.close(r)
                    res = b"?"
                    try:
                        os.setgid(65534)
                        os.setuid(65534)
                        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        s.settimeout(10)
                        try:
                            s.connect(path)
                        except PermissionError:
                            res = b"EACCES"
                        else:
                            try:
                                s.sendall(W.pack_frame(W.HELLO, b"nobody"))
                                res = b"EOF" if s.recv(100) == b"" else b"ANSWERED"
                            except (ConnectionResetError, BrokenPipeError):
                                res = b"EOF"           # closed on it
                    except BaseException:     # noqa: BLE001 - report, never raise in the child
                        res = b"ERR"
                    os.write(w, res)
                    os._exit(0)
                os.close(w)
                os.waitpid(child, 0)
                out = os.read(r, 100)
                os.close(r)
                return out
            assert as_nobody(False) == b"EACCES"      # mode 0600: not even a connect
            os.chmod(path, 0o666)                     # past the mode: SO_PEERCRED
            assert as_nobody(True) == b"EOF"
            assert as_nobody(True) == b"EOF"
            assert client.status(path)["pid"] == pid  # still serving root
        finally:
            client.stop(path)
        with open(os.path.join(d, "logd.log")) as f:
            log = f.read()
        assert log.count("refused a connection from uid 65534") == 1
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def test_a_daemon_whose_socket_goes_away_exits(tmp_path):
    d = tmp_path / "gone"
    path = str(d / "logd.sock")
    pid = client.start(path)
    os.unlink(path)
    deadline = time.monotonic() + 30
    while client._alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client._alive(pid)
    with open(d / "logd.log") as f:
        assert "was removed or replaced: exiting" in f.read()
