"""linear (drivers/md/dm-linear.c, v1.4.0): map a range onto another device."""

import errno

from dmctl.errors import TargetError
from dmctl.numbers import kernel_sscanf_u
from dmctl.sim import bio as B
from dmctl.sim.targets.base import Target, STATUSTYPE_INFO, STATUSTYPE_TABLE


SECTOR_MASK = (1 << 64) - 1


class Linear(Target):
    name = "linear"
    version = (1, 4, 0)

    @classmethod
    def ctr(cls, env, ti, argv):
        t = cls(env, ti)
        if len(argv) != 2:
            raise TargetError(errno.EINVAL, "Invalid argument count")
        start = kernel_sscanf_u(argv[1], 64)
        if start is None:
            raise TargetError(errno.EINVAL, "Invalid device sector")
        t.start = start
        t.dev_devno = t.get_device(argv[0], "Device lookup failed").devno
        ti.num_flush_bios = 1
        ti.num_discard_bios = 1
        return t

    def map(self, bio):
        bio.dev = self.env.device_by_devno(self.dev_devno)
        # linear_map remaps every bio, empty flushes too (Linux 6.1; older kernels
        # only bios with sectors): a flush clone (sector 0) to a target that does not
        # start the table wraps around, as sector_t arithmetic does
        bio.sector = (self.start + bio.sector - self.ti.begin) & SECTOR_MASK
        return B.DM_MAPIO_REMAPPED

    def device_areas(self):
        return [(self.dev_devno, self.start, self.ti.len)]

    def status(self, type_, noflush=False):
        if type_ == STATUSTYPE_INFO:
            return ""
        if type_ == STATUSTYPE_TABLE:
            return "%d:%d %d" % (self.dev_devno[0], self.dev_devno[1], self.start)
        return ("target_name=linear,target_version=1.4.0,device_name=%d:%d,start=%d;"
                % (self.dev_devno[0], self.dev_devno[1], self.start))
