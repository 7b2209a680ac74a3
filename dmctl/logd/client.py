"""Talking to a running ``dmctl logd``: start it in the background, ask its status,
stop it.  (The simulated kernel has its own, smaller client: it may not import this
package.)"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from dmctl.formats import ulog as W
from dmctl.errors import DmctlError


class NotRunning(DmctlError):
    pass


def default_pidfile(socket_path):
    base = socket_path[:-5] if socket_path.endswith(".sock") else socket_path
    return base + ".pid"


def _connect(path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise NotRunning("dmctl logd is not running on %s (%s)" % (path, e.strerror))
    return s


def status(path, node=None):
    """The daemon's status (a dict, see Daemon.status); ``node``: the host whose
    point of view ``this_node`` takes (a sim dir)."""
    s = _connect(path)
    try:
        opts = {"node": os.path.realpath(node)} if node else {}
        s.sendall(W.pack_frame(W.STATUS, json.dumps(opts).encode()))
        kind, body = W.recv_frame(s)
    except (OSError, EOFError, ValueError) as e:
        raise NotRunning("dmctl logd on %s does not answer (%s)" % (path, e))
    finally:
        s.close()
    if kind != W.STATUS_ANS:
        raise NotRunning("dmctl logd on %s answered %r" % (path, kind))
    return json.loads(body.decode())


def start(path, pidfile=None, state_dir=None, syslog=None, timeout=60.0, kernel="auto"):
    """Start the daemon in the background; returns its pid once it serves.  Raises
    RuntimeError with the reason (already running, cannot bind, ...).  ``kernel``:
    serve the real kernel too ("auto", True, False: see dmctl.logd.daemon)."""
    pidfile = pidfile or default_pidfile(path)
    state_dir = state_dir or os.path.dirname(os.path.abspath(path))
    try:
        st = status(path)
        raise RuntimeError("already running (pid %d, %s)" % (st["pid"], path))
    except NotRunning:
        pass
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    logpath = os.path.join(state_dir, "logd.log")
    logf = open(logpath, "ab")
    offset = logf.tell()
    r, w = os.pipe()
    cmd = [sys.executable, "-m", "dmctl.logd", "--socket", path,
           "--pidfile", pidfile, "--state-dir", state_dir, "--ready-fd", str(w)]
    if syslog is not None:
        cmd.append("--syslog" if syslog else "--no-syslog")
    if kernel != "auto":
        cmd += ["--kernel", "yes" if kernel else "no"]
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=logf, pass_fds=(w,), start_new_session=True, env=env,
                         close_fds=True)
    os.close(w)
    logf.close()
    deadline = time.monotonic() + timeout
    got = b""
    try:
        while time.monotonic() < deadline:
            import select
            rl, _, _ = select.select([r], [], [], 0.2)
            if rl:
                chunk = os.read(r, 64)
                got += chunk
                if not chunk or b"ok" in got:
                    break
    finally:
        os.close(r)
    if b"ok" in got:
        return p.pid
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    with open(logpath, "rb") as f:
        f.seek(offset)
        why = f.read().decode(errors="replace").strip().splitlines()
    reason = why[-1].split(": ", 1)[-1] if why else "exit status %s" % p.returncode
    raise RuntimeError(reason)


def stop(path, pidfile=None, timeout=30.0):
    """SIGTERM to the daemon, then wait until it is gone.  Returns its pid, or None
    when none ran."""
    pid = None
    try:
        pid = status(path)["pid"]
    except NotRunning:
        pidfile = pidfile or default_pidfile(path)
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            pid = None
        if pid is None or not _alive(pid):
            return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return pid
        time.sleep(0.02)
    raise RuntimeError("dmctl logd (pid %d) did not stop within %ds" % (pid, timeout))


def _alive(pid):
    try:
        os.waitpid(pid, os.WNOHANG)           # our own child: reap it
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False
