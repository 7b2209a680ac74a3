"""The daemon's locks (cmirrord's lock file): a file held with ``flock`` for as long as
the holder lives, its pid written in it; a ``kill -9`` frees it with the process.
One per socket (the pid file) and one per kernel (the connector transport)."""

import fcntl
import os


class Locked(Exception):
    """Someone holds the lock: ``pid`` is what the file says ("" when unknown)."""

    def __init__(self, path, pid):
        super().__init__(path)
        self.path, self.pid = path, pid


def acquire(path):
    """-> the locked fd; OSError when the file cannot be opened, Locked when held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise Locked(path, holder(path))
    return fd


def holder(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def write_pid(fd):
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\n" % os.getpid())


def release(path, fd):
    """Remove the file (when it is still this lock's, not a successor's) and close."""
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass
    os.close(fd)
