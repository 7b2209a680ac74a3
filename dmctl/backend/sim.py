"""The simulator backend: the simulated kernel (``dmctl.sim``) behind the Mapper
interface.  State persists in ``$DMCTL_SIM_DIR`` between processes."""

from dmctl.backend.base import Mapper
from dmctl.constants import DM_MAJOR
from dmctl.sim.dm_ioctl import SimKernel


class SimMapper(SimKernel, Mapper):
    """The simulated device mapper (kind "sim"): no udev and no device nodes; its loop
    devices (``7:N``) are the regular files its tables name."""

    kind = "sim"
    simulated = True
    emits_uevents = False
    has_device_nodes = False
    dm_major = DM_MAJOR

    def simulator(self):
        return self

    def dm_name(self, major, minor):
        if major != DM_MAJOR:
            return None

        def fn(env):
            md = env.device_by_minor(minor)
            return None if md is None else md.name
        return self.peek(fn)

    def blkdev_name(self, major, minor):
        if major == DM_MAJOR:
            return "dm-%d" % minor if self.dm_name(major, minor) is not None else None
        return Mapper.blkdev_name(self, major, minor)
