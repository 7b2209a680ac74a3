"""error (drivers/md/dm-target.c io_err, v1.5.0): every I/O fails with EIO."""

from dmctl.sim import bio as B
from dmctl.targets.base import Target


class Error(Target):
    name = "error"
    version = (1, 5, 0)

    @classmethod
    def ctr(cls, env, ti, argv):
        # io_err_ctr accepts and ignores any arguments.
        ti.num_discard_bios = 1
        return cls(env, ti)

    def map(self, bio):
        return B.DM_MAPIO_KILL
