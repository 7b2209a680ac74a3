"""dmctl's nbdkit Python plugin: a simulated device as an NBD export.

Loaded by ``nbdkit python`` (nbdkit-plugin-python), never imported by dmctl; started by
``dmctl sim export`` (``dmctl.export.nbd``).  Parameters::

    device=NAME|MAJ:MIN   the simulated device
    sim_dir=DIR           the simulator's state directory
    syspath=DIR:DIR...    where dmctl and its dependencies are (appended to sys.path)

Each NBD request is one store transaction of the simulator, as one ``dmctl io``
command is, so other dmctl processes (message, status, suspend, ``sim crash``)
interleave between requests.  nbdkit serializes all requests (the Python plugin's
default thread model), so every connection sees one ordering, and a flush flushes the
simulated caches that every connection wrote into (multi-conn is safe).

    pread                 -> a READ bio (sees the volatile caches)
    pwrite (+FUA)         -> a WRITE bio (REQ_FUA)
    flush                 -> an empty flush (a WRITE with REQ_PREFLUSH and no data)
    trim (+FUA)           -> a DISCARD bio (then an empty flush)
    zero (+FUA)           -> zeroing WRITE bios (REQ_FUA)

Target errors (the error target, ``dmctl sim fail``...) come back as NBD errors: the
bio's errno when NBD has it, else EIO.  On exit (SIGTERM) the device is flushed.
"""

import errno
import os
import sys

import nbdkit

API_VERSION = 2

_params = {"device": None, "sim_dir": None}
_state = {"mapper": None}

# errnos the NBD protocol carries; anything else is sent as EIO
_NBD_ERRNOS = {errno.EPERM, errno.EIO, errno.ENOMEM, errno.EINVAL, errno.ENOSPC,
               errno.EOVERFLOW, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ESHUTDOWN}

_ZERO_CHUNK = 1 << 20
MAX_REQUEST = 32 << 20


def config(key, value):
    if key in ("device", "sim_dir"):
        _params[key] = value
    elif key == "syspath":
        for p in value.split(os.pathsep):
            if p and p not in sys.path:
                sys.path.append(p)
    else:
        raise RuntimeError("unknown parameter %r (device=, sim_dir=, syspath=)" % key)


def config_complete():
    if not _params["device"]:
        raise RuntimeError("device= is required")
    if not _params["sim_dir"]:
        raise RuntimeError("sim_dir= is required")
    import dmctl.sim.io  # noqa: F401  (fail at start-up, not at the first request)


def _mapper():
    # opened lazily: nbdkit forks into the background after config_complete, and a
    # database connection must not cross a fork
    if _state["mapper"] is None:
        from dmctl.backend.sim import SimMapper
        _state["mapper"] = SimMapper(_params["sim_dir"])
    return _state["mapper"]


def _io():
    from dmctl.sim import io
    return io


def _call(what, fn, *args):
    try:
        return fn(*args)
    except Exception as e:
        err = getattr(e, "errno", None)
        nbdkit.debug("dmctl: %s on %s: %s" % (what, _params["device"], e))
        nbdkit.set_error(err if err in _NBD_ERRNOS else errno.EIO)
        raise


def open(readonly):
    return {"readonly": readonly}


def get_size(h):
    return _call("size", _io().device_size, _mapper(), _params["device"]) << 9


def block_size(h):
    return (512, 4096, MAX_REQUEST)


def can_write(h):
    return True


def can_flush(h):
    return True


def can_fua(h):
    return nbdkit.FUA_NATIVE


def can_trim(h):
    return True


def can_zero(h):
    return True


def can_fast_zero(h):
    return False


def can_multi_conn(h):
    return True


def is_rotational(h):
    return False


def pread(h, buf, offset, flags):
    data = _call("read", _io().read, _mapper(), _params["device"], offset >> 9, len(buf) >> 9)
    buf[:] = data


def pwrite(h, buf, offset, flags):
    _call("write", _io().write, _mapper(), _params["device"], offset >> 9, bytes(buf),
          bool(flags & nbdkit.FLAG_FUA))


def flush(h, flags):
    _call("flush", _io().flush, _mapper(), _params["device"])


def trim(h, count, offset, flags):
    _call("discard", _io().discard, _mapper(), _params["device"], offset >> 9, count >> 9)
    if flags & nbdkit.FLAG_FUA:
        flush(h, 0)


def _zero(sector, nr, fua):
    io = _io()
    from dmctl.sim import bio as B
    flags = B.FUA if fua else 0

    def fn(env):
        s = io.Session(env, io.resolve(env, _params["device"]))
        left, at = nr, sector
        while left:
            n = min(left, _ZERO_CHUNK >> 9)
            b = s.submit(B.WRITE, at, n, bytes(n << 9), flags)
            if not b.done or b.error:
                raise io.IOError_(b.error or errno.EAGAIN, "write at sector %d" % at)
            at += n
            left -= n
    _mapper().run(fn)


def zero(h, count, offset, flags):
    if flags & nbdkit.FLAG_FAST_ZERO:
        nbdkit.set_error(errno.ENOTSUP)
        raise RuntimeError("no fast zero")
    _call("zero", _zero, offset >> 9, count >> 9, bool(flags & nbdkit.FLAG_FUA))


def cleanup():
    # nbdkit is exiting (SIGTERM, or the last connection with --exit-with-parent...):
    # make what was written through the export durable, as a clean shutdown would
    if _state["mapper"] is None:
        return
    try:
        _io().flush(_mapper(), _params["device"])
    except Exception as e:      # the device may be gone (sim crash, remove)
        nbdkit.debug("dmctl: final flush of %s: %s" % (_params["device"], e))
