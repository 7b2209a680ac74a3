"""Backends: the one ``Mapper`` interface (``base``) and its two implementations.

* ``base`` -- ``Mapper``: every question libdm and the CLI ask of a device mapper (the
  DM ioctls, read-ahead, device names, the dm major, whether there are uevents and
  device nodes, the simulator for simulator-only work);
* ``kernel`` -- ``KernelMapper``: the DM ioctls on ``/dev/mapper/control``
  (``dmctl.ioctl`` encodes them), sysfs, /proc/devices, the kernel log (``kmsg``);
* ``sim`` -- ``SimMapper``: the simulated kernel (``dmctl.sim``) behind the interface.

Arrows: ``dmctl.libdm`` and ``dmctl.cli`` -> here -> ``dmctl.ioctl`` and ``dmctl.sim``.
Nothing below imports this package.

Selection: ``kernel`` (/dev/mapper/control), ``sim`` (the simulator) or ``auto`` (the
kernel when a DM_VERSION ioctl succeeds, the simulator otherwise).  Backends are
imported lazily: choosing one never imports the other.
"""

import os

from dmctl.constants import (DM_CONTROL_PATH as CONTROL_PATH, DM_DATA_START, DM_VERSION,
                             DM_VERSION_MAJOR)
from dmctl.errors import DmctlError


class KernelUnavailable(DmctlError):
    """The kernel backend cannot be used: ``path`` (the control node) did not open or
    answer DM_VERSION; ``errno`` says why."""

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
        # struct dm_ioctl: version 4.0.0, data_size, data_start
        struct.pack_into("=3III", buf, 0, DM_VERSION_MAJOR, 0, 0, len(buf), DM_DATA_START)
        fcntl.ioctl(fd, DM_VERSION, buf, True)
        return struct.unpack_from("=I", buf, 0)[0] == DM_VERSION_MAJOR
    except OSError:
        return False
    finally:
        os.close(fd)


def get_mapper(kind=None, sim_dir=None):
    """A Mapper for ``kind`` (``$DMCTL_BACKEND``, else ``auto``).  ``sim_dir``: the
    simulator's state directory (default ``$DMCTL_SIM_DIR``, see dmctl.sim.store)."""
    kind = kind or os.environ.get("DMCTL_BACKEND") or "auto"
    if kind == "auto":
        kind = "kernel" if kernel_available() else "sim"
    if kind == "sim":
        from dmctl.backend.sim import SimMapper
        return SimMapper(sim_dir)
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


def get_simulator(kind=None, sim_dir=None):
    """The simulator, for dmctl's own simulator commands (``dmctl io``, ``dmctl sim``)
    and library code that needs one: a SimMapper whatever ``auto`` would choose (the
    kernel is not probed).  ``kind`` is the user's choice of backend: ``"kernel"``
    raises ``dmctl.backend.base.SimulatorRequired``."""
    if kind == "kernel":
        from dmctl.backend.base import SimulatorRequired
        raise SimulatorRequired(kind)
    return get_mapper("sim", sim_dir).simulator()
