"""era counts a discard as a write.

In dm-era-target.c's era_map a bio whose bio_data_dir() is WRITE (a discard is: its op
is odd) and whose block is not yet marked in the current era is deferred to the worker,
which marks the block on disk and commits before passing the bio on, exactly as for a
write.  Checked through the command line: `dmctl io discard` on the simulator, then what
a backup tool reads (`dmctl era changed-since`, thin-provisioning-tools' era_invalidate)
and the status line, against a twin device that got writes instead.
"""

import json
import re
import shutil
import subprocess

import pytest

BS = 128                  # sectors per era block
SECTORS = 131072          # 1024 era blocks


def ok(r):
    assert (r.rc, r.err) == (0, ""), r
    return r.out


@pytest.fixture
def era(dmctl, backing):
    """era(name) -> the metadata file of a fresh era device NAME (block size BS)."""
    def make(name):
        meta = backing(name + "-meta.img", 8 << 20)
        origin = backing(name + "-origin.img", SECTORS * 512)
        ok(dmctl("create", name, "--table", "0 %d era %s %s %d" % (SECTORS, meta, origin, BS)))
        return meta
    return make


def changed_since(dmctl, era_nr, meta, snapshot=False):
    argv = ["era", "changed-since", "--json"]
    argv += ["--metadata-snapshot"] if snapshot else []
    return json.loads(ok(dmctl(*argv + [str(era_nr), meta])))["ranges"]


def status(dmctl, name):
    return ok(dmctl("status", name))


def test_a_discard_marks_its_block_like_a_write(dmctl, era):
    meta_d, meta_w = era("disc"), era("wr")
    assert status(dmctl, "disc") == status(dmctl, "wr") == "0 131072 era 8 10/2048 1 -\n"
    # era 1: block 2 (its first 8 sectors) and block 5 (its second half)
    for sector, n in ((2 * BS, 8), (5 * BS + 64, 64)):
        ok(dmctl("io", "discard", "disc", str(sector), "--sectors", str(n)))
        ok(dmctl("io", "write", "wr", str(sector), "--sectors", str(n), "--pattern", "0x5a"))
    ok(dmctl("message", "disc", "0", "checkpoint"))       # archives era 1's writeset
    ok(dmctl("message", "wr", "0", "checkpoint"))
    assert changed_since(dmctl, 1, meta_d) == [[2, 3], [5, 6]]
    assert changed_since(dmctl, 1, meta_w) == [[2, 3], [5, 6]]
    assert changed_since(dmctl, 2, meta_d) == []
    # the same metadata work as the writes: marked on disk, committed, era rolled over
    assert status(dmctl, "disc") == status(dmctl, "wr") == "0 131072 era 8 12/2048 2 -\n"


def test_discards_in_a_later_era_and_to_marked_blocks(dmctl, era):
    meta = era("e")
    ok(dmctl("io", "discard", "e", str(3 * BS), "--sectors", "8"))
    before = status(dmctl, "e")
    # already marked in this era: passed straight through, no metadata change
    ok(dmctl("io", "discard", "e", str(3 * BS + 8), "--sectors", "8"))
    assert status(dmctl, "e") == before
    ok(dmctl("message", "e", "0", "checkpoint"))
    ok(dmctl("io", "discard", "e", str(7 * BS), "--sectors", str(BS)))     # all of block 7
    ok(dmctl("message", "e", "0", "take_metadata_snap"))
    assert changed_since(dmctl, 2, meta, snapshot=True) == [[7, 8]]
    assert changed_since(dmctl, 1, meta, snapshot=True) == [[3, 4], [7, 8]]
    # and thin-provisioning-tools read the same from what the simulator wrote
    # (installed by scripts/test: its absence fails the test)
    tool = shutil.which("era_invalidate")
    assert tool, "era_invalidate is missing: install thin-provisioning-tools"
    out = subprocess.run([tool, "--metadata-snapshot", "--written-since", "1", meta],
                         capture_output=True, text=True, check=True).stdout
    assert re.findall(r"<(?:range|block) [^>]*>", out) == [
        '<block block="3"/>', '<block block="7"/>'], out
