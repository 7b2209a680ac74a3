"""Backend selection: ``kernel`` (/dev/mapper/control), ``sim`` (the simulator) or
``auto`` (the kernel when a DM_VERSION ioctl succeeds, the simulator otherwise).

Backends are imported lazily: choosing one never imports the other.
"""

import os

CONTROL_PATH = "/dev/mapper/control"


class KernelUnavailable(Exception):
    def __init__(self, path, err):
        self.path = path
        self.errno = err
        super().__init__("%s: %s" % (path, os.strerror(err)))


def kernel_available(path=CONTROL_PATH):
    """True when the control node opens and a DM_VERSION ioctl succeeds.

    A cheap probe (no ioctl layer import): `auto` runs it on every command."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        import fcntl
        import struct
        buf = bytearray(16384)
        # struct dm_ioctl: version 4.0.0, data_size, data_start 312
        struct.pack_into("=3III", buf, 0, 4, 0, 0, len(buf), 312)
        fcntl.ioctl(fd, 0xC138FD00, buf, True)
        return struct.unpack_from("=I", buf, 0)[0] == 4
    except OSError:
        return False
    finally:
        os.close(fd)


def get_mapper(kind=None):
    kind = kind or os.environ.get("DMCTL_BACKEND") or "auto"
    if kind == "auto":
        kind = "kernel" if kernel_available() else "sim"
    if kind == "sim":
        from dmctl.backend.sim import SimMapper
        return SimMapper()
    if kind == "kernel":
        try:
            from dmctl.backend.kernel import KernelMapper
            m = KernelMapper()
            m.version()
            return m
        except OSError as e:
            raise KernelUnavailable(CONTROL_PATH, e.errno)
        except Exception as e:
            err = getattr(e, "errno", None)
            if err:
                raise KernelUnavailable(CONTROL_PATH, err)
            raise
    raise ValueError("unknown backend %r" % kind)
