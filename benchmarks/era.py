#!/usr/bin/env python3
"""era at scale: a 1 TiB origin with 64 KiB blocks (16 Mi era blocks).  Prints peak
memory next to the era array's theoretical size (4 bytes per block: the kernel's
documented cost; target peak <= 1.5x that floor) and the time of create, 10,000 random
4 KiB writes, a checkpoint and `changed-since`; and counts metadata commits per write
to an unmarked block (target: one) and to a marked block (target: none)."""

import os
import random
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BS = 128                                  # 64 KiB
ORIGIN = int(os.environ.get("BENCH_ERA_ORIGIN_GIB", "1024")) << 30
NR_BLOCKS = ORIGIN // (BS * 512)
NWRITES = int(os.environ.get("BENCH_ERA_WRITES", "10000"))


def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    with tempfile.TemporaryDirectory() as d:
        os.environ["DMCTL_SIM_DIR"] = os.path.join(d, "sim")
        from dmctl.backend.base import TargetLine
        from dmctl.backend.sim import SimMapper
        from dmctl.sim import io as sio
        from dmctl.formats import era_meta
        from dmctl.pdata.block import FileBlockStore
        meta = os.path.join(d, "meta")
        origin = os.path.join(d, "origin")
        with open(meta, "wb") as f:
            f.truncate(256 << 20)
        with open(origin, "wb") as f:
            f.truncate(ORIGIN)
        start_rss = rss_mib()
        m = SimMapper()
        t = time.perf_counter()
        m.create("era")
        m.load("era", [TargetLine(0, ORIGIN >> 9, "era", "%s %s %d" % (meta, origin, BS))])
        m.resume("era")
        t_create = time.perf_counter() - t

        # commits per write: count superblock writes (one per commit)
        from dmctl.formats.era_meta import EraMetadata
        commits = [0]
        orig_commit = EraMetadata.commit

        def counting_commit(self):
            commits[0] += 1
            return orig_commit(self)
        EraMetadata.commit = counting_commit

        rng = random.Random(3)
        blocks = [rng.randrange(NR_BLOCKS) for _ in range(NWRITES)]
        script = ["write %d 8 pattern=1" % (b * BS) for b in blocks]
        t = time.perf_counter()
        sio.run_script(m, "era", script)
        t_writes = time.perf_counter() - t
        commits_new = commits[0]
        commits[0] = 0
        sio.run_script(m, "era", script[:1000])         # all already marked
        commits_marked = commits[0]
        EraMetadata.commit = orig_commit

        t = time.perf_counter()
        m.message("era", 0, "checkpoint")
        t_cp = time.perf_counter() - t
        m.message("era", 0, "take_metadata_snap")
        t = time.perf_counter()
        ranges = era_meta.written_since(FileBlockStore(meta, readonly=True), 1, use_snapshot=True)
        t_cs = time.perf_counter() - t
        nblocks = sum(e - b for b, e in ranges)
        status = m.status("era")[1][0].params
        m.close()
        peak = rss_mib()
    floor = NR_BLOCKS * 4 / (1 << 20)
    print("== era with %d Mi blocks (%d GiB origin, 64 KiB blocks)" % (NR_BLOCKS >> 20, ORIGIN >> 30))
    print("peak RSS                     %8.1f MiB   era array floor (4 B/block) %6.1f MiB   ratio %.2fx (target <= 1.5x)"
          % (peak, floor, peak / floor))
    print("  (interpreter + modules before create: %.1f MiB)" % start_rss)
    print("create (format + resize)     %8.2f s" % t_create)
    print("%d random 4 KiB writes   %8.2f s  (%.0f writes/s)" % (NWRITES, t_writes, NWRITES / t_writes))
    print("commits for %d writes to unmarked blocks: %d (%.3f per distinct block; target 1)"
          % (NWRITES, commits_new, commits_new / len(set(blocks))))
    print("commits for 1000 writes to marked blocks:  %d (target 0)" % commits_marked)
    print("checkpoint                   %8.3f s" % t_cp)
    print("changed-since (snapshot)     %8.3f s  (%d blocks)" % (t_cs, nblocks))
    print("status: %s" % status)


if __name__ == "__main__":
    main()
