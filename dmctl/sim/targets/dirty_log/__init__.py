"""Dirty region logs for the mirror target (drivers/md/dm-log.c and friends).

``create(type_name, ms, argv)`` is ``dm_dirty_log_create``: it finds the log type by
name (core, disk, userspace) and runs its constructor; failures raise ``LogError``
carrying the kernel's DMWARN/DMERR lines.
"""

from dmctl.sim.targets.dirty_log.base import DirtyLog, LogError, create, get_type  # noqa: F401
