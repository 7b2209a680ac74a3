"""Start and stop ``nbdkit`` serving a simulated device (``dmctl sim export``).

nbdkit forks into the background once it listens on the socket, so ``start``
returns when clients can connect.  nbdkit runs dmctl's plugin (``nbdkit_plugin.py``)
in its own embedded Python, which finds dmctl and its dependencies through the
``syspath=`` parameter (this interpreter's dmctl and site-packages directories).
"""

import errno
import os
import shutil
import signal
import site
import subprocess
import sys
import time

from dmctl.errors import DmctlError

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nbdkit_plugin.py")


class ExportError(DmctlError):
    """The NBD server could not be started (or stopped)."""


def _syspath():
    """Directories the plugin needs on its sys.path: where dmctl lives and this
    interpreter's site-packages (dmctl's dependencies)."""
    import dmctl
    dirs = [os.path.dirname(os.path.dirname(os.path.abspath(dmctl.__file__)))]
    try:
        dirs += site.getsitepackages()
    except AttributeError:
        pass
    dirs += [p for p in sys.path if p.endswith("site-packages")]
    out = []
    for d in dirs:
        if d and d not in out and os.path.isdir(d):
            out.append(d)
    return os.pathsep.join(out)


def device_key(dev):
    """A DevId (name or major:minor) -> the plugin's ``device=`` value."""
    if dev.name:
        return dev.name
    if dev.major is not None:
        return "%d:%d" % (dev.major, dev.minor)
    raise ExportError("a device to export is named by name or MAJ:MIN")


def nbdkit_argv(device, socket, sim_dir, pidfile=None, readonly=False, nbdkit=None):
    """nbdkit's command line.  The blocksize filter turns requests that are not
    multiples of 512 bytes into aligned read-modify-writes, as the page cache would."""
    exe = nbdkit or shutil.which("nbdkit")
    if not exe:
        raise ExportError("nbdkit not found: install nbdkit and nbdkit-plugin-python")
    argv = [exe, "--unix", os.path.abspath(socket)]
    if pidfile:
        argv += ["--pidfile", os.path.abspath(pidfile)]
    if readonly:
        argv.append("--readonly")
    argv += ["--filter=blocksize", "python", PLUGIN, "device=" + device,
             "sim_dir=" + os.path.abspath(sim_dir), "syspath=" + _syspath()]
    return argv


def _stale_socket(path):
    """A socket nobody listens on (nbdkit leaves its socket behind): remove it."""
    import socket as sk
    import stat
    if not stat.S_ISSOCK(os.stat(path).st_mode):
        return False
    s = sk.socket(sk.AF_UNIX, sk.SOCK_STREAM)
    try:
        s.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


def start(device, socket, sim_dir, pidfile=None, readonly=False, nbdkit=None):
    """Serve ``device`` (a name or MAJ:MIN string) of the simulator in ``sim_dir`` on
    the Unix socket ``socket``; returns once nbdkit accepts connections.  Raises
    ExportError with nbdkit's message when it does not start."""
    argv = nbdkit_argv(device, socket, sim_dir, pidfile, readonly, nbdkit)
    if os.path.exists(socket) and not _stale_socket(socket):
        raise ExportError("%s: %s" % (socket, os.strerror(errno.EEXIST)))
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip() or "nbdkit exited with status %d" % r.returncode
        raise ExportError(msg)
    return "nbd+unix:///?socket=" + os.path.abspath(socket)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop(pid, timeout=30.0):
    """SIGTERM an export's nbdkit (it flushes the device) and wait until it is gone.
    True when it ended, False when it was not running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _zombie(pid):            # exited; its parent (not us) has yet to reap it
            return True
        try:                        # our own child: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.02)
    raise ExportError("nbdkit (pid %d) did not exit after SIGTERM" % pid)
