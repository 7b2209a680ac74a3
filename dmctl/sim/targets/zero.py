"""zero (drivers/md/dm-zero.c, v1.1.0): reads return zeros, writes are dropped."""

import errno

from dmctl.errors import TargetError
from dmctl.sim import bio as B
from dmctl.sim.targets.base import Target


class Zero(Target):
    name = "zero"
    version = (1, 1, 0)

    @classmethod
    def ctr(cls, env, ti, argv):
        if len(argv) != 0:
            raise TargetError(errno.EINVAL, "No arguments required")
        ti.num_flush_bios = 1
        return cls(env, ti)

    def map(self, bio):
        if bio.op == B.READ:
            n = bio.nr_sectors << 9
            bio.data[:n] = bytes(n)
        elif bio.op == B.DISCARD:
            B.bio_endio(bio, errno.EOPNOTSUPP)
            return B.DM_MAPIO_SUBMITTED
        B.bio_endio(bio, 0)
        return B.DM_MAPIO_SUBMITTED
