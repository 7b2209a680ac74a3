"""The public Python API, gathered in one place: ``import dmctl`` exposes the names
listed in ``dmctl._API`` from here, lazily (``dmctl/__init__.py``; its docstring is a
guide).  Everything imported here is re-exported.
"""

from __future__ import annotations

# the imports below are the API that dmctl re-exports
from dmctl.backend import KernelUnavailable, get_mapper
from dmctl.backend.base import Mapper
from dmctl.errors import DmctlError, DmError
from dmctl.libdm.fields import ParseError
from dmctl.libdm.params import (CoreLog, DirtyLog, DiskLog, EraParams, ErrorParams, Leg,
                                LinearParams, LogWritesParams, MirrorParams, RawParams,
                                StripedParams, Table, TableLine, TargetParams, UserspaceLog,
                                ZeroParams, parse_params, parse_table)
from dmctl.libdm.status import (EraStatus, ErrorStatus, LinearStatus, LogWritesStatus,
                                MirrorLegStatus, MirrorLogStatus, MirrorStatus,
                                StripedStatus, StripeStatus, TargetStatus, ZeroStatus,
                                parse_status)
from dmctl.libdm.table import TableError
from dmctl.records import DevId, DeviceEntry, DeviceInfo, TargetLine, TargetVersion


def open_mapper(kind: str | None = None, sim_dir: str | None = None) -> Mapper:
    """Open the device mapper: a :class:`Mapper` on the kernel or the simulator.

    ``kind`` is ``"kernel"`` (``/dev/mapper/control``; raises KernelUnavailable if it
    cannot be used), ``"sim"`` (the simulator, no root needed) or ``"auto"`` (the
    kernel when a DM_VERSION ioctl succeeds, else the simulator); None means
    ``$DMCTL_BACKEND``, else ``"auto"``, as the command line.  ``sim_dir`` is the
    simulator's state directory (default ``$DMCTL_SIM_DIR``, else
    ``~/.local/state/dmctl/sim``); simulators opened on one directory share their
    devices, across processes.

    Every Mapper method raises :class:`DmError` (with the kernel's ``errno``) on
    failure.  ``mapper.kind`` says which one you got."""
    return get_mapper(kind, sim_dir=sim_dir)
