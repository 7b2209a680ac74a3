"""striped (drivers/md/dm-stripe.c, v1.6.0): chunks spread round-robin over devices."""

import errno

from dmctl.constants import DM_IO_ERROR_THRESHOLD
from dmctl.errors import TargetError
from dmctl.numbers import kernel_sscanf_u, kstrtouint
from dmctl.sim import bio as B
from dmctl.sim.targets.base import STATUSTYPE_INFO, STATUSTYPE_TABLE, Target


class Striped(Target):
    name = "striped"
    version = (1, 6, 0)

    @classmethod
    def ctr(cls, env, ti, argv):
        t = cls(env, ti)
        if len(argv) < 2:
            raise TargetError(errno.EINVAL, "Not enough arguments")
        err, stripes = kstrtouint(argv[0], 10)
        if err or not stripes:
            raise TargetError(errno.EINVAL, "Invalid stripe count")
        err, chunk = kstrtouint(argv[1], 10)
        if err or not chunk:
            raise TargetError(errno.EINVAL, "Invalid chunk_size")
        if ti.len % stripes:
            raise TargetError(errno.EINVAL, "Target length not divisible by number of stripes")
        width = ti.len // stripes
        if width % chunk:
            raise TargetError(errno.EINVAL, "Target length not divisible by chunk size")
        if len(argv) != 2 + 2 * stripes:
            raise TargetError(errno.EINVAL, "Not enough destinations specified")
        t.stripes = stripes
        t.chunk_size = chunk
        t.stripe_width = width
        ti.max_io_len = chunk
        ti.num_flush_bios = stripes
        ti.num_discard_bios = stripes
        t.legs = []
        t.errors = []
        for i in range(stripes):
            start = kernel_sscanf_u(argv[3 + 2 * i], 64)
            if start is None:
                raise TargetError(errno.EINVAL, "Couldn't parse stripe destination")
            try:
                dev = t.env.lookup_device(argv[2 + 2 * i])
            except OSError as e:
                raise TargetError(e.errno, "Couldn't parse stripe destination")
            t.devs.append(dev.devno)
            t.legs.append((dev.devno, start))
            t.errors.append(0)
        return t

    def _map_sector(self, sector):
        chunk, offset = divmod(sector - self.ti.begin, self.chunk_size)
        chunk, stripe = divmod(chunk, self.stripes)
        return stripe, chunk * self.chunk_size + offset

    def _map_range_sector(self, sector, target_stripe):
        stripe, result = self._map_sector(sector)
        if stripe == target_stripe:
            return result
        result -= result % self.chunk_size
        if target_stripe < stripe:
            result += self.chunk_size
        return result

    def map(self, bio):
        if bio.flags & B.PREFLUSH:
            devno, _start = self.legs[bio.target_bio_nr]
            bio.dev = self.env.device_by_devno(devno)
            return B.DM_MAPIO_REMAPPED
        if bio.op == B.DISCARD:
            i = bio.target_bio_nr
            begin = self._map_range_sector(bio.sector, i)
            end = self._map_range_sector(bio.sector + bio.nr_sectors, i)
            if begin < end:
                devno, start = self.legs[i]
                bio.dev = self.env.device_by_devno(devno)
                bio.sector = begin + start
                bio.nr_sectors = end - begin
                return B.DM_MAPIO_REMAPPED
            B.bio_endio(bio, 0)
            return B.DM_MAPIO_SUBMITTED
        stripe, sector = self._map_sector(bio.sector)
        devno, start = self.legs[stripe]
        bio.per_io = stripe
        bio.sector = sector + start
        bio.dev = self.env.device_by_devno(devno)
        return B.DM_MAPIO_REMAPPED

    def end_io(self, bio, error):
        if error and error != errno.EOPNOTSUPP and bio.op != B.DISCARD and bio.per_io is not None:
            self.errors[bio.per_io] += 1
            if self.errors[bio.per_io] < DM_IO_ERROR_THRESHOLD:
                self.env.table_event(self.md)
        return B.DM_ENDIO_DONE

    def device_areas(self):
        return [(devno, start, self.stripe_width) for devno, start in self.legs]

    def status(self, type_, noflush=False):
        if type_ == STATUSTYPE_INFO:
            return "%d %s1 %s" % (self.stripes,
                                  "".join("%d:%d " % d for d, _s in self.legs),
                                  "".join("D" if e else "A" for e in self.errors))
        if type_ == STATUSTYPE_TABLE:
            return "%d %d%s" % (self.stripes, self.chunk_size,
                                "".join(" %d:%d %d" % (d + (s,)) for d, s in self.legs))
        return ""
