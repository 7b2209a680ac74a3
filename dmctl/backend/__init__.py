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
    """True when the control node opens and DM_VERSION succeeds."""
    try:
        from dmctl.backend.kernel import KernelMapper
    except ImportError:
        return False
    try:
        m = KernelMapper()
        m.version()
        m.close()
        return True
    except Exception:
        return False


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
