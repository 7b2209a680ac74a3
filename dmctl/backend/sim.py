"""The simulator backend: the simulated kernel (``dmctl.sim``) behind the Mapper
interface.  State persists in ``$DMCTL_SIM_DIR`` between processes."""

from dmctl.backend.base import Mapper
from dmctl.sim.core import SimKernel


class SimMapper(SimKernel, Mapper):
    """The simulated device mapper (kind "sim")."""

    kind = "sim"
