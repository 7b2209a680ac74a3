"""era (drivers/md/dm-era-target.c, v1.0.0) in the simulator.

The metadata device holds the kernel's exact format (dmctl.formats.era_meta), written
through simulated bios, so the volatile write cache and ``dmctl sim crash`` apply to
it exactly as to a real disk, and thin-provisioning-tools read what this writes.

Kernel behaviour reproduced here:
* ctr checks in the kernel's order with its ti->error strings and errnos;
* the first preresume resizes the era array, every preresume rolls the era over
  (a fresh device reports era 1), postsuspend archives and commits;
* a write or discard to a block not yet marked in the current writeset is marked on
  disk and committed *before* it is passed on (one commit per newly marked block;
  already-marked writes, reads and flushes pass straight through);
* every RPC to the worker (status, messages) is followed by a commit;
* archived writesets are digested into the era array as background work,
  100 bits per step (INSERTS_PER_STEP).
Deviation (documented): the kernel's status blocks while the device is suspended
(the worker is stopped); the simulator answers from the in-core state without the
RPC's commit instead of hanging.
"""

import errno
import io
import operator
import pickle

from dmctl.errors import TargetError
from dmctl.numbers import kernel_sscanf_u
from dmctl.pdata.errors import PDataError
from dmctl.sim import bio as B
from dmctl.sim.targets.base import (STATUSTYPE_INFO, STATUSTYPE_TABLE, Target)

MIN_BLOCK_SIZE = 8
PREFIX = "device-mapper: era: "          # DMERR's prefix (DM_MSG_PREFIX "era")
_EQ_CODE = (lambda a, b: a == b).__code__.co_code


class BioBlockStore:
    """4 KiB metadata blocks on a simulated device, through bios."""

    def __init__(self, env, devno):
        self.env = env
        self.devno = devno
        self.dev = env.device_by_devno(devno)
        self.nr_blocks = (self.dev.size << 9) // 4096

    def _io(self, op, blocknr, data=None, flags=0):
        b = B.Bio(op, blocknr * 8, 0 if op == B.WRITE and data is None else 8, data, flags)
        self.dev.submit(b)
        if b.error:
            raise OSError(b.error, "era metadata I/O failed")
        return b

    def read(self, blocknr):
        buf = bytearray(4096)
        self._io(B.READ, blocknr, buf)
        return bytes(buf)

    def write(self, blocknr, data):
        self._io(B.WRITE, blocknr, bytes(data))

    def flush(self):
        b = B.Bio(B.WRITE, 0, 0, None, B.PREFLUSH)
        self.dev.submit(b)
        if b.error:
            raise OSError(b.error, "era metadata flush failed")


def _eq():
    return operator.eq


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, BioBlockStore):
            return ("store", obj.devno)
        return None

    def reducer_override(self, obj):
        code = getattr(obj, "__code__", None)
        if code is not None and getattr(obj, "__name__", "") == "<lambda>":
            if code.co_code == _EQ_CODE:
                return (_eq, ())
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, env):
        super().__init__(f)
        self.env = env

    def persistent_load(self, pid):
        kind, devno = pid
        return BioBlockStore(self.env, tuple(devno))


def _meta_error(e):
    from dmctl.pdata.errors import PDataError
    err = getattr(e, "errno", None) or errno.EIO
    text = getattr(e, "text", None) or str(e)
    return err, text


class Era(Target):
    name = "era"
    version = (1, 0, 0)
    transient = Target.transient + ("md_",)

    @classmethod
    def ctr(cls, env, ti, argv):
        t = cls(env, ti)
        if len(argv) != 3:
            raise TargetError(errno.EINVAL, "Invalid argument count")
        t.metadata_dev = t.get_device(argv[0], "Error opening metadata device", errno.EINVAL).devno
        t.origin_dev = t.get_device(argv[1], "Error opening data device", errno.EINVAL).devno
        bs = kernel_sscanf_u(argv[2])
        if bs is None:
            raise TargetError(errno.EINVAL, "Error parsing block size")
        if bs == 0 or bs % MIN_BLOCK_SIZE:
            raise TargetError(errno.EINVAL, "Invalid block size")
        t.sectors_per_block = bs
        ti.max_io_len = bs          # dm_set_target_max_io_len: one era block per bio
        t.shift = (bs.bit_length() - 1) if bs & (bs - 1) == 0 else -1
        from dmctl.formats.era_meta import EraMetadata
        try:
            store = BioBlockStore(env, t.metadata_dev)
            t.md_ = EraMetadata(store, bs)
        except Exception as e:
            err, text = _meta_error(e)
            # metadata_open fails silently on an I/O error (dm-bufio logs nothing);
            # only the persistent-data checks (sb_check, ...) say why
            logs = isinstance(e, PDataError) and getattr(e, "kernel_logs", True)
            raise TargetError(err, "Error reading metadata",
                              log=PREFIX + text if text and logs else None)
        t.nr_blocks = 0
        t.suspended = True      # the worker starts at preresume
        ti.num_flush_bios = 1
        ti.num_discard_bios = 1
        return t

    # -- persistence ------------------------------------------------------------------
    def save(self):
        st = Target.save(self)
        md = self.md_
        # Write dirty metadata blocks back before the in-core state is saved: they are
        # shadows (copy-on-write), so writing them early is what the kernel's buffer
        # cache may do at any time too, and the saved state stays small.
        md.bm.write_dirty()
        md.bm.clean.clear()
        buf = io.BytesIO()
        _Pickler(buf, protocol=4).dump(md)
        st["md_blob"] = buf.getvalue()
        return st

    def attach(self):
        blob = self.__dict__.pop("md_blob")
        self.md_ = _Unpickler(io.BytesIO(blob), self.env).load()

    def _block(self, sector):
        if self.shift >= 0:
            return sector >> self.shift
        return sector // self.sectors_per_block

    def _target_nr_blocks(self):
        return -(-self.ti.len // self.sectors_per_block)

    def _do_work(self):
        """What each run of the kernel's era worker does before handling its event
        (a deferred bio or an RPC): kick off digestion of archived writesets and run
        one digest step.  The remaining steps run as background work."""
        md = self.md_
        md.kick_off_digest()
        if md.digesting:
            try:
                md.digest_step()
            except Exception:
                self.env.klog(PREFIX + "process_old_eras: digest step failed, stopping digestion")

    def _rpc(self, fn):
        """in_worker0/1: run ``fn`` in the worker, then commit (always, as
        process_rpc_calls does).  Returns fn's result; its exception is re-raised after
        the commit."""
        self._do_work()
        try:
            return fn()
        finally:
            self._commit()

    def _commit(self):
        try:
            self.md_.commit()
            return True
        except Exception as e:
            err, text = _meta_error(e)
            self.env.klog(PREFIX + "metadata_commit failed: %s" % text)
            return False

    # -- I/O ------------------------------------------------------------------------------
    def map(self, bio):
        bio.dev = self.env.device_by_devno(self.origin_dev)
        if bio.op != B.READ and bio.nr_sectors and not (bio.flags & B.PREFLUSH):
            block = self._block(bio.sector)
            md = self.md_
            if not md.current_marked(block):
                # deferred to the worker: do_work, then process_deferred_bios marks
                # the block on disk, commits, and only then submits the bio
                self._do_work()
                try:
                    newly = md.mark_block(block)
                except Exception:
                    md.discard_pending_marks()
                    B.bio_endio(bio, errno.EIO)
                    return B.DM_MAPIO_SUBMITTED
                if newly and not self._commit():
                    md.discard_pending_marks()
                    B.bio_endio(bio, errno.EIO)
                    return B.DM_MAPIO_SUBMITTED
        return B.DM_MAPIO_REMAPPED

    # -- lifecycle --------------------------------------------------------------------------
    def postsuspend(self):
        md = self.md_
        try:
            self._rpc(md.era_archive)
        except Exception as e:
            self.env.klog(PREFIX + "%s: couldn't archive current era" % "era_postsuspend")
        self.suspended = True      # stop_worker: digestion pauses
        self._commit()

    def preresume(self):
        md = self.md_
        new_size = self._target_nr_blocks()
        if self.nr_blocks != new_size:
            try:
                md.resize(new_size)
            except Exception as e:
                err, text = _meta_error(e)
                raise TargetError(err, "resize failed", log=PREFIX + text)
            if not self._commit():
                raise TargetError(errno.EIO, "commit failed")
            self.nr_blocks = new_size
        self.suspended = False     # start_worker
        try:
            self._rpc(md.era_rollover)
        except Exception as e:
            err, text = _meta_error(e)
            raise TargetError(err, "rollover failed",
                              log=PREFIX + "%s: metadata_era_rollover failed" % "era_preresume")

    def dtr(self):
        self.md_ = None

    # -- background work (the era worker: digestion) --------------------------------------------
    def work(self, budget):
        md = self.md_
        if self.suspended or md is None:
            return 0
        # the worker re-wakes itself only while a digestion is in progress
        n = 0
        while n < budget and md.digesting:
            try:
                md.digest_step()
            except Exception:
                # "digest step failed, stopping digestion" (harmless at an empty tree)
                self.env.klog(PREFIX + "process_old_eras: digest step failed, stopping digestion")
            n += 1
        return n

    # -- reporting --------------------------------------------------------------------------------
    def status(self, type_, noflush=False):
        if type_ == STATUSTYPE_INFO:
            md = self.md_
            if not self.suspended:
                # the stats RPC goes through the worker, which commits afterwards
                try:
                    used, total = self._rpc(md.stats)
                except Exception:
                    return "Error"
            else:
                used, total = md.stats()
            snap = str(md.metadata_snap) if md.metadata_snap else "-"
            return "%d %d/%d %d %s" % (8, used, total, md.current_era, snap)
        if type_ == STATUSTYPE_TABLE:
            return "%d:%d %d:%d %d" % (self.metadata_dev + self.origin_dev + (self.sectors_per_block,))
        return ""

    has_message = True

    def message(self, argv):
        if len(argv) != 1:
            raise TargetError(errno.EINVAL, "incorrect number of message arguments",
                              log=PREFIX + "incorrect number of message arguments")
        word = argv[0].lower()
        md = self.md_
        fns = {"checkpoint": md.era_rollover, "take_metadata_snap": md.take_metadata_snap,
               "drop_metadata_snap": md.drop_metadata_snap}
        fn = fns.get(word)
        if fn is None:
            raise TargetError(errno.EINVAL, "unsupported message '%s'" % argv[0],
                              log=PREFIX + "unsupported message '%s'" % argv[0])
        try:
            self._rpc(fn)
        except Exception as e:
            err, text = _meta_error(e)
            raise TargetError(err or errno.EINVAL, text, log=PREFIX + text)
        return None
