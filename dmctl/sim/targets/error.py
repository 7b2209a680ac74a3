"""error (drivers/md/dm-target.c io_err, v1.5.0): every I/O fails with EIO."""

from dmctl.sim import bio as B
from dmctl.sim.targets.base import Target


class Error(Target):
    name = "error"
    version = (1, 5, 0)
    # 1.5.0 (Linux 6.1) has no iterate_devices and no io_hints, so a table of it takes
    # no discards (EOPNOTSUPP at BLKDISCARD) although ctr sets num_discard_bios = 1;
    # 1.6.0 added discard support (discards then fail with EIO in map).
    has_iterate_devices = False

    @classmethod
    def ctr(cls, env, ti, argv):
        # io_err_ctr accepts and ignores any arguments.
        ti.num_discard_bios = 1
        return cls(env, ti)

    def map(self, bio):
        return B.DM_MAPIO_KILL
