"""Dirty region logs for the mirror target (drivers/md/dm-log.c and friends).

``create(type_name, ms, argv)`` is ``dm_dirty_log_create``: it finds the log type by
name (core, disk, userspace) and runs its constructor; failures raise ``LogError``
carrying the kernel's DMWARN/DMERR lines.

Layout (arrows point down): the registry here -> ``core``, ``disk`` (a core log plus its
on-disk copy), ``userspace`` (requests to the log daemon through the environment's
connector) -> ``base`` (``struct dm_dirty_log_type`` as a class, ``LogError``).  A log
type module is imported only when a table uses it.
"""

import errno

from dmctl.sim.targets.dirty_log.base import PREFIX, LogError

# dm_dirty_log_type_register(): name -> "module:Class" (the classes' module paths are
# pickled with a mirror's state: tests/sim/test_legacy_state.py)
REGISTRY = {
    "core": "dmctl.sim.targets.dirty_log.core:CoreLog",
    "disk": "dmctl.sim.targets.dirty_log.disk:DiskLog",
    "userspace": "dmctl.sim.targets.dirty_log.userspace:UserspaceLog",
}


def get_type(type_name):
    """get_type(): the exact name, then the request_module() fallbacks (which never
    find anything more in the simulator)."""
    ent = REGISTRY.get(type_name)
    if ent is None:
        return None
    import importlib
    modname, attr = ent.split(":")
    return getattr(importlib.import_module(modname), attr)


def create(type_name, ms, argv):
    """dm_dirty_log_create(type_name, ti, mirror_flush, argc, argv)."""
    cls = get_type(type_name)
    if cls is None:
        raise LogError(errno.EINVAL, [PREFIX + 'Module for logging type "%s" not found.' % type_name])
    return cls.ctr(ms, argv)
