"""Tests' handle on ``dmctl logd`` for a simulated host (a mapper): start the daemon
on the host's socket, stop it, and read its logs as the old in-store server's
helpers returned them."""

import atexit
import os
import signal

from dmctl.formats.ulog import socket_path
from dmctl.logd import client

_STARTED = set()


def sock(mapper):
    return os.path.abspath(socket_path(mapper.store.dir))


def logd_start(mapper, **kw):
    """Start the daemon of this host (True), or False when it already runs."""
    try:
        client.status(sock(mapper))
        return False
    except client.NotRunning:
        pass
    _STARTED.add(client.start(sock(mapper), **kw))
    return True


def logd_stop(mapper, force=False):
    """Stop it; refused while logs exist (unless forced), as ``dmctl logd stop``.
    Returns the number of logs it still had."""
    try:
        n = len(client.status(sock(mapper))["logs"])
    except client.NotRunning:
        return 0
    if n and not force:
        return n
    pid = client.stop(sock(mapper))
    _STARTED.discard(pid)
    return n


def logd_logs(mapper):
    """None when not running, else one dict per log (every node's): node, uuid, luid,
    type, sync_count, region_count, state, clean (a set), marks (sorted (node, region)
    tuples), server, this_node (the log is this host's), members, ..."""
    try:
        st = client.status(sock(mapper), mapper.store.dir)
    except client.NotRunning:
        return None
    out = []
    for l in st["logs"]:
        l["clean"] = set(l["clean"])
        l["marks"] = sorted(tuple(m) for m in l["marks"])
        out.append(l)
    return out


def logd_state(mapper):
    logs = logd_logs(mapper)
    if logs is None:
        return None
    return [(l["uuid"], l["luid"], l["type"], l["sync_count"], l["region_count"], l["state"])
            for l in logs]


@atexit.register
def _kill_leftovers():
    for pid in _STARTED:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
