"""dm-era metadata written by dmctl, checked with thin-provisioning-tools 0.9.0.

era_check / era_dump / era_invalidate / era_restore read what EraMetadata writes (and
EraMetadata reads what era_restore writes).  The tools are skipped only outside CI: with
CI=true a missing tool fails.  Install: ``apt-get install -y thin-provisioning-tools``.
"""

import errno
import os
import random
import re
import shutil
import subprocess

import pytest

from dmctl.formats.era_meta import (EraMetadata, EraMetadataError, dump, format_invalidate,
                                    read_superblock, written_since, _Reader)
from dmctl.pdata.block import CrashableStore, FileBlockStore, InjectedCrash
from dmctl.pdata.errors import PDataError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "golden")
META_SIZE = 8 << 20          # the golden captures' metadata loop device


def tool(name):
    path = shutil.which(name) or (os.path.exists("/usr/sbin/" + name) and "/usr/sbin/" + name)
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("%s is missing (apt-get install -y thin-provisioning-tools)" % name)
        pytest.skip("%s not installed" % name)
    return path


def run(*args):
    return subprocess.run([tool(args[0])] + list(args[1:]), capture_output=True, text=True)


def golden(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return f.read()


def norm(xml):
    """era_invalidate 0.9.0 prints ``end = "``, 1.x ``end="``."""
    return re.sub(r"\s*=\s*", "=", xml)


def era_check_ok(path):
    r = run("era_check", path)
    assert r.returncode == 0, r.stderr
    return r


def tool_ranges(path, since, snapshot=False):
    args = ["era_invalidate", "--written-since", str(since)]
    if snapshot:
        args.append("--metadata-snapshot")
    r = run(*(args + [path]))
    assert r.returncode == 0, r.stderr
    out = []
    for m in re.finditer(r'<block block="(\d+)"/>|<range begin="(\d+)" end\s*=\s*"(\d+)"/>',
                         r.stdout):
        if m.group(1) is not None:
            out.append((int(m.group(1)), int(m.group(1)) + 1))
        else:
            out.append((int(m.group(2)), int(m.group(3))))
    return out, r.stdout


def ranges_of(blocks):
    out = []
    for b in sorted(blocks):
        if out and out[-1][1] == b:
            out[-1] = (out[-1][0], b + 1)
        else:
            out.append((b, b + 1))
    return out


class Worker:
    """The kernel era worker's ordering, as far as metadata is concerned (do_work).

    Every external event (a deferred bio, an RPC) runs one do_work: kick off digestion,
    one digest step, the bios (commit if one was newly marked), the RPCs (then a commit).
    Between events the remaining digest steps run in the background (``drain``).
    """

    def __init__(self, md):
        self.md = md
        self.suspended = False
        self.log = []

    def do_work(self, bios=(), rpcs=()):
        md = self.md
        md.kick_off_digest()
        if md.digesting:
            try:
                md.digest_step()
            except EraMetadataError:
                self.log.append("process_old_eras: digest step failed, stopping digestion")
        need = False
        for b in bios:
            if md.mark_block(b):
                need = True
        if need:
            md.commit()
        res = []
        if rpcs:
            for fn in rpcs:
                try:
                    res.append(fn())
                except EraMetadataError as e:
                    res.append(e)
            md.commit()
        return res

    def drain(self):
        while self.md.digesting and not self.suspended:
            self.do_work()

    def rpc(self, *fns):
        r = self.do_work(rpcs=fns)
        self.drain()
        return r

    def write(self, b):
        if not self.md.current_marked(b):
            self.do_work(bios=[b])
            self.drain()

    def status(self):
        return self.rpc(self.md.status_line)[0]

    def preresume(self, nr_blocks):
        md = self.md
        if self.nr_blocks != nr_blocks:
            md.resize(nr_blocks)
            md.commit()
            self.nr_blocks = nr_blocks
        self.suspended = False
        return self.rpc(md.era_rollover)

    nr_blocks = 0

    def postsuspend(self):
        self.do_work(rpcs=[self.md.era_archive])
        self.suspended = True
        self.md.commit()


def golden_status(name):
    return golden(name).split(" era ", 1)[1].strip()


# -- the golden history ---------------------------------------------------------------------

def test_golden_history_matches_the_kernel(tmp_path):
    """Replays INDEX-era.tsv's era section: status counts, snap block and tool outputs."""
    p = str(tmp_path / "meta")
    store = FileBlockStore(p, size=META_SIZE)
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(1024)
    assert w.status() == golden_status("era-status.txt")                     # 10/2048 1
    for b in range(4):
        w.write(b)
    assert w.status() == golden_status("era-status-after-write-1.txt")
    w.rpc(md.checkpoint)
    assert w.status() == golden_status("era-status-after-checkpoint.txt")    # 12/2048 2
    w.rpc(md.checkpoint)
    assert w.status() == golden_status("era-status-after-strace-checkpoint.txt")
    for b in (100, 101):
        w.write(b)
    w.rpc(md.checkpoint)
    assert w.status() == golden_status("era-status-after-checkpoint-2.txt")
    w.write(500)
    assert w.rpc(md.take_metadata_snap) == [None]
    assert w.status() == golden_status("era-status-after-take-metadata-snap.txt")  # 13/2048 5 70
    err = w.rpc(md.take_metadata_snap)[0]
    assert isinstance(err, EraMetadataError) and err.errno == errno.EINVAL
    assert err.text == "metadata_take_snap: metadata snapshot already exists"
    for since in (1, 2):
        out = format_invalidate(written_since(store, since, use_snapshot=True))
        assert out == golden("era_invalidate-metadata-snapshot-since-%d.txt" % since)
        assert tool_ranges(p, since, snapshot=True)[1] == out
    w.rpc(md.drop_metadata_snap)
    assert w.status() == golden_status("era-status-after-drop-metadata-snap.txt")
    err = w.rpc(md.drop_metadata_snap)[0]
    assert err.text == "metadata_drop_snap: no snap to drop"
    w.do_work(rpcs=[md.checkpoint])        # message era1 8 checkpoint: era 6, nothing
                                           # wakes the worker afterwards
    # dmsetup suspend: postsuspend's archive RPC kicks off digestion of era 5; the worker
    # keeps stepping until stop_worker sets ``suspended``, a race.  The capture matches the
    # kernel having finished era 5 but not era 6 by then.
    w.do_work(rpcs=[md.era_archive])
    while md.digesting and (md.digest.step == "lookup" or md.digest.era < 6):
        w.do_work()
    w.suspended = True
    md.commit()
    # the status issued while suspended waits in the RPC list; resume's rollover RPC is
    # added in front of it, so one do_work runs rollover (era 7), then the stats
    w.suspended = False
    res = w.do_work(rpcs=[md.era_rollover, md.status_line])
    assert res[1] == golden("era-status-suspended.txt").splitlines()[-1].split(" era ")[1]
    w.drain()
    w.postsuspend()                                        # dmsetup remove
    era_check_ok(p)
    assert run("era_dump", p).stdout == golden("era_dump-after-remove.txt")
    assert run("era_dump", "--logical", p).stdout == golden("era_dump-after-remove-logical.txt")
    assert dump(store) == golden("era_dump-after-remove.txt")
    assert dump(store, logical=True) == golden("era_dump-after-remove-logical.txt")
    assert format_invalidate(written_since(store, 2)) == golden(
        "era_invalidate-after-remove-since-2.txt")
    # recreate on the existing metadata, then the 2048-block table on it again
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(1024)
    assert w.status() == golden_status("era-status-recreated.txt")           # 14/2048 8
    w.postsuspend()
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(2048)
    assert w.status() == golden("era-bad-too-long-ACCEPTED.txt").split(" era ")[-1].strip()
    era_check_ok(p)


# -- random histories checked by the tools after every step -------------------------------

class Model:
    """What the tools must report: writes per era; which eras are archived."""

    def __init__(self):
        self.writes = {}          # era -> set of blocks
        self.archived = set()

    def since(self, n):
        out = set()
        for era, blocks in self.writes.items():
            if era >= n and era in self.archived:
                out |= blocks
        return ranges_of(out)


def check_with_tools(p, store, md, model, nr_blocks, step):
    era_check_ok(p)
    sb = read_superblock(store)
    assert sb["current_era"] == md.current_era
    for n in sorted({0, 1, max(0, md.current_era - 2), md.current_era,
                     md.current_era + 1}):
        got, _ = tool_ranges(p, n)
        mine = written_since(store, n)
        assert mine == got, (step, n)
        if n == 0:
            assert got == [(0, nr_blocks)]
        else:
            assert got == model.since(n), (step, n)
    r = run("era_dump", p)
    assert r.returncode == 0, r.stderr
    assert dump(store) == r.stdout, step


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_history_is_accepted_by_the_tools(tmp_path, seed):
    rnd = random.Random(seed)
    p = str(tmp_path / "meta")
    store = FileBlockStore(p, size=4 << 20)
    nr_blocks = rnd.choice([700, 1500, 40000])
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(nr_blocks)
    model = Model()
    snap = False
    for step in range(40):
        op = rnd.random()
        if op < 0.45:
            for _ in range(rnd.randint(1, 6)):
                b = rnd.randrange(nr_blocks)
                w.write(b)
                model.writes.setdefault(md.current_era, set()).add(b)
        elif op < 0.6:
            model.archived.add(md.current_era)
            w.rpc(md.checkpoint)
        elif op < 0.7:
            model.archived.add(md.current_era)
            w.postsuspend()
            w.preresume(nr_blocks)
        elif op < 0.8:
            if snap:
                w.rpc(md.drop_metadata_snap)
            else:
                model.archived.add(md.current_era)
                w.rpc(md.take_metadata_snap)
                out, _ = tool_ranges(p, 1, snapshot=True)
                assert out == written_since(store, 1, use_snapshot=True)
            snap = not snap
        elif op < 0.9:
            # a few digest steps only, then commit (interrupted digestion)
            md.kick_off_digest()
            md.digest_start()
            for _ in range(rnd.randint(1, 5)):
                try:
                    if not md.digest_step():
                        break
                except EraMetadataError:
                    break
            md.commit()
        else:
            w.status()
        used, total = md.stats()
        assert 0 < used <= total
        check_with_tools(p, store, md, model, nr_blocks, step)
    model.archived.add(md.current_era)
    w.postsuspend()
    check_with_tools(p, store, md, model, nr_blocks, "end")


# -- era_restore'd metadata is read and continued -------------------------------------------

def test_restore_then_continue(tmp_path):
    p = str(tmp_path / "meta")
    store = FileBlockStore(p, size=4 << 20)
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(3000)
    for b in (1, 2, 3, 2500):
        w.write(b)
    w.rpc(md.checkpoint)
    for b in (7, 2999):
        w.write(b)
    w.postsuspend()
    xml = tmp_path / "x.xml"
    xml.write_text(run("era_dump", p).stdout)
    q = str(tmp_path / "restored")
    with open(q, "wb") as f:
        f.truncate(4 << 20)
    r = run("era_restore", "-i", str(xml), "-o", q)
    assert r.returncode == 0, r.stderr
    assert run("era_dump", q).stdout == xml.read_text()
    rstore = FileBlockStore(q)
    assert dump(rstore) == xml.read_text()
    md2 = EraMetadata(rstore, 128)
    assert md2.current_era == md.current_era and md2.nr_blocks == 3000
    w2 = Worker(md2)
    w2.nr_blocks = 0
    w2.preresume(3000)
    w2.write(42)
    w2.rpc(md2.checkpoint)
    w2.postsuspend()
    era_check_ok(q)
    got, _ = tool_ranges(q, md.current_era + 1)
    assert got == [(42, 43)]
    got, _ = tool_ranges(q, 1)
    assert got == ranges_of({1, 2, 3, 2500, 7, 2999, 42})
    with pytest.raises(EraMetadataError) as e:
        EraMetadata(FileBlockStore(q), 256)
    assert e.value.errno == errno.EINVAL
    assert e.value.text == ("changing the data block size (from 128 to 256) is not "
                            "supported")


# -- crashes ----------------------------------------------------------------------------------

def all_marked(store):
    """Every block recorded anywhere: writeset tree, live writeset, era array."""
    r = _Reader(store)
    out = set()
    sets = [(n, root) for _e, n, root in r.writesets()]
    n, root = r.sb["current_writeset"]
    if root:
        sets.append((n, root))
    for nr_bits, root in sets:
        bits = r.bitset.to_bytes(root, nr_bits)
        out |= {i for i in range(nr_bits) if (bits[i >> 3] >> (i & 7)) & 1}
    out |= {i for i, v in enumerate(r.array.values(r.sb["era_array_root"], "<I")) if v}
    return out


def crash_history(store, committed):
    """A history; ``committed`` collects every block whose mark was committed."""
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(2000)
    rnd = random.Random(7)
    for i in range(25):
        b = rnd.randrange(2000)
        if not md.current_marked(b):
            w.do_work(bios=[b])       # returns once the mark is committed
            committed.add(b)
            w.drain()
        if i % 5 == 4:
            w.rpc(md.checkpoint)
        if i == 12:
            w.rpc(md.take_metadata_snap)
        if i == 20:
            w.rpc(md.drop_metadata_snap)
    w.postsuspend()
    w.preresume(2000)


@pytest.mark.parametrize("mode", ["drop_unflushed", "keep_written", "random_subset"])
def test_crash_at_any_point_keeps_committed_marks(tmp_path, mode):
    p = str(tmp_path / "meta")
    base = FileBlockStore(p, size=4 << 20)
    cs = CrashableStore(base)
    crash_history(cs, set())
    total_io = cs.writes + cs.flushes
    # The format (era's write_superblock at ctr) writes every block and the superblock and
    # flushes once, as the kernel's: a power cut before that flush may leave a superblock
    # whose blocks were lost, which the kernel then refuses to open as well.
    fresh = FileBlockStore(str(tmp_path / "fresh"), size=4 << 20)
    fcs = CrashableStore(fresh)
    EraMetadata(fcs, 128)
    format_io = fcs.writes + fcs.flushes
    assert fcs.flushes == 1 and not fcs.pending
    points = sorted(set(range(0, total_io, max(1, total_io // 60))) | {1, 2, 3, total_io - 1})
    for k in points:
        with open(p, "r+b") as f:
            f.truncate(0)
            f.truncate(4 << 20)
        base = FileBlockStore(p)
        cs = CrashableStore(base)
        cs.fail_after(k)
        committed = set()
        try:
            crash_history(cs, committed)
            crashed = False
        except InjectedCrash:
            crashed = True
        if mode == "keep_written":         # the writes reached the disk, the flush did not
            cs.crash(keep=lambda b: True)
        elif mode == "random_subset":      # any subset of the unflushed writes survives
            rnd = random.Random(k)
            cs.crash(keep=lambda b: rnd.random() < 0.5)
        else:
            cs.crash()
        if not any(base.read(0)):
            continue            # crashed before the format's superblock: nothing to check
        if k < format_io:
            # crashed inside the format: nothing was promised (the ctr had not returned);
            # the store opens, or it fails to as the kernel's would
            try:
                EraMetadata(base, 128)
            except (PDataError, EraMetadataError):
                pass
            continue
        if read_superblock(base)["nr_blocks"]:
            # (era_check 0.9.0 rejects a formatted but never resized store, as the kernel
            # leaves it between ctr and the first resume: "missing blocks [1, 0)")
            era_check_ok(p)
        assert committed <= all_marked(base), (k, crashed)
        md = EraMetadata(base, 128)       # reopens cleanly and can go on
        w = Worker(md)
        w.preresume(2000)
        w.write(1999)
        w.postsuspend()
        era_check_ok(p)


# -- scale: a 1 TiB origin with 64 KiB blocks -------------------------------------------------

@pytest.mark.slow
def test_16_mi_blocks_fit_the_kernels_memory_budget(tmp_path):
    """16 Mi era blocks: in-core cost stays near 4 bytes/block (two 2 MiB writesets plus
    buffered metadata blocks); marked blocks cost no I/O; the tools accept the result."""
    import time
    import tracemalloc
    n = 16 << 20
    p = str(tmp_path / "meta")
    store = FileBlockStore(p, size=256 << 20)
    tracemalloc.start()
    t0 = time.time()
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(n)
    rnd = random.Random(5)
    marked = sorted({rnd.randrange(n) for _ in range(50)})
    for b in marked:
        w.write(b)
    reads, writes = md.bm.reads, md.bm.writes
    for b in marked:
        assert md.current_marked(b)
        assert not md.mark_block(b)                 # already marked: no metadata I/O
    assert (md.bm.reads, md.bm.writes) == (reads, writes)
    w.rpc(md.checkpoint)
    w.postsuspend()
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * n + (16 << 20), peak
    assert time.time() - t0 < 600
    assert written_since(store, 1) == ranges_of(marked)
    got, _ = tool_ranges(p, 1)
    assert got == ranges_of(marked)
    era_check_ok(p)


# -- reading era_restore'd fixtures (the tools' own test cases) -------------------------------

def restore(tmp_path, nr_blocks, current_era, writesets, array):
    """era_restore a fixture; writesets = {era: set of blocks}, array = {block: era}."""
    lines = ['<superblock uuid="" block_size="128" nr_blocks="%d" current_era="%d">'
             % (nr_blocks, current_era)]
    for era in sorted(writesets):
        lines.append('  <writeset era="%d" nr_bits="%d">' % (era, nr_blocks))
        for b in range(nr_blocks):
            lines.append('    <bit block="%d" value="%s"/>'
                         % (b, "true" if b in writesets[era] else "false"))
        lines.append("  </writeset>")
    lines.append("  <era_array>")
    for b in range(nr_blocks):
        lines.append('    <era block="%d" era="%d"/>' % (b, array.get(b, 0)))
    lines += ["  </era_array>", "</superblock>"]
    xml = tmp_path / "fixture.xml"
    xml.write_text("\n".join(lines) + "\n")
    p = str(tmp_path / "fixture.meta")
    with open(p, "wb") as f:
        f.truncate(4 << 20)
    r = run("era_restore", "-i", str(xml), "-o", p)
    assert r.returncode == 0, r.stderr
    assert dump(FileBlockStore(p)) == xml.read_text()
    return p


@pytest.mark.parametrize("fixture,expect", [
    # the Rust tools' tests/era_invalidate.rs fixtures, checked with 0.9.0 (oracles.md 2.4)
    (dict(nr_blocks=16, current_era=5, writesets={},
          array={0: 1, 1: 2, 2: 3, 3: 4, 4: 5}),
     {0: [(0, 16)], 3: [(2, 5)], 6: []}),
    (dict(nr_blocks=16, current_era=5, writesets={3: {0, 1}, 4: {4, 5}, 5: {8, 9}},
          array={1: 1, 2: 2, 3: 1, 5: 1, 8: 2, 12: 2, 13: 2}),
     {3: [(0, 2), (4, 6), (8, 10)], 5: [(8, 10)], 2: [(0, 3), (4, 6), (8, 10), (12, 14)],
      6: [], 0: [(0, 16)]}),
    # 0.9.0 unions the era array with the writesets even when an older writeset is still
    # undigested (the Rust tools skip the array then; only inconsistent metadata differs)
    (dict(nr_blocks=16, current_era=6, writesets={3: {1}}, array={0: 5}),
     {2: [(0, 2)], 4: [(0, 1)], 5: [(0, 1)], 6: []}),
])
def test_written_since_matches_era_invalidate_on_fixtures(tmp_path, fixture, expect):
    p = restore(tmp_path, **fixture)
    store = FileBlockStore(p)
    for since, ranges in expect.items():
        got, text = tool_ranges(p, since)
        assert got == ranges, since
        assert written_since(store, since) == ranges
        assert format_invalidate(ranges) == text
    # dmctl opens the tools' metadata and goes on from it
    md = EraMetadata(store, 128)
    w = Worker(md)
    w.preresume(fixture["nr_blocks"])
    w.write(15)
    w.postsuspend()
    era_check_ok(p)
    got, _ = tool_ranges(p, fixture["current_era"] + 1)
    assert got == [(15, 16)]
