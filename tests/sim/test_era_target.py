"""The era target in the simulator, checked against the kernel's strings and against
thin-provisioning-tools' era_check / era_invalidate / era_dump on what it writes."""

import errno
import os
import re
import shutil
import subprocess

import pytest

from dmctl.backend.base import TargetLine as L
from dmctl.errors import DmError
from dmctl.sim import io as sio

TOOLS = all(shutil.which(t) for t in ("era_check", "era_invalidate", "era_dump"))
if not TOOLS and os.environ.get("CI"):
    raise RuntimeError("thin-provisioning-tools must be installed in CI")
needs_tools = pytest.mark.skipif(not TOOLS, reason="thin-provisioning-tools not installed")

BS = 128                     # sectors per era block (64 KiB)
ORIGIN_SECTORS = 131072      # 64 MiB, 1024 era blocks


@pytest.fixture
def era(mapper, backing):
    meta = backing("meta", 8 << 20)
    origin = backing("origin", ORIGIN_SECTORS * 512)

    def create(name="era1", meta_=meta, origin_=origin, bs=BS, length=ORIGIN_SECTORS):
        mapper.create(name)
        try:
            mapper.load(name, [L(0, length, "era", "%s %s %d" % (meta_, origin_, bs))])
        except DmError:
            mapper.remove(name)
            raise
        mapper.resume(name)
    create.meta = meta
    create.origin = origin
    return create


def status(m, name="era1"):
    return m.status(name)[1][0].params


def era_of(m, name="era1"):
    return int(status(m, name).split()[2])


def write_block(m, b, name="era1", byte=0x5A, fua=False):
    sio.write(m, name, b * BS, bytes([byte]) * (BS * 512), fua=fua)


def invalidate(meta, since, snapshot=False):
    args = ["era_invalidate", "--written-since", str(since)]
    if snapshot:
        args.append("--metadata-snapshot")
    out = subprocess.run(args + [meta], capture_output=True, text=True, check=True).stdout
    blocks = set()
    for a, b in re.findall(r'<range begin="(\d+)" end\s*=\s*"(\d+)"/>', out):
        blocks.update(range(int(a), int(b)))
    for a in re.findall(r'<block block="(\d+)"/>', out):
        blocks.add(int(a))
    return blocks


def era_check(meta):
    p = subprocess.run(["era_check", meta], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_fresh_create_reports_era_1_and_kernel_table(mapper, era):
    era()
    st = status(mapper)
    assert re.fullmatch(r"8 \d+/2048 1 -", st), st
    table = mapper.table("era1")[1][0]
    assert table.params == "7:0 7:1 128"
    assert mapper.deps("era1")[1] == [(7, 1), (7, 0)]       # origin first, as the kernel


def test_checkpoint_and_suspend_resume_increment_the_era(mapper, era):
    era()
    mapper.message("era1", 0, "checkpoint")
    assert era_of(mapper) == 2
    mapper.message("era1", 8, "CHECKPOINT")                  # sector ignored, case-insensitive
    assert era_of(mapper) == 3
    mapper.suspend("era1")
    mapper.resume("era1")
    assert era_of(mapper) == 4


@pytest.mark.parametrize("msg,log", [
    ("frobnicate", "device-mapper: era: unsupported message 'frobnicate'"),
    ("checkpoint now", "device-mapper: era: incorrect number of message arguments"),
    ("drop_metadata_snap", "device-mapper: era: metadata_drop_snap: no snap to drop"),
])
def test_message_failures(mapper, era, msg, log):
    era()
    with pytest.raises(DmError) as ei:
        mapper.message("era1", 0, msg)
    assert ei.value.errno == errno.EINVAL
    assert ei.value.detail == log


def test_take_metadata_snap_twice_fails_and_status_shows_the_snap(mapper, era):
    era()
    mapper.message("era1", 0, "take_metadata_snap")
    st = status(mapper).split()
    assert st[2] == "2" and st[3].isdigit()
    with pytest.raises(DmError) as ei:
        mapper.message("era1", 0, "take_metadata_snap")
    assert ei.value.detail == "device-mapper: era: metadata_take_snap: metadata snapshot already exists"
    mapper.message("era1", 0, "drop_metadata_snap")
    assert status(mapper).split()[3] == "-"


@pytest.mark.parametrize("params,text", [
    ("{meta} {origin}", "Invalid argument count"),
    ("{meta} {origin} 128 extra", "Invalid argument count"),
    ("{meta} {origin} abc", "Error parsing block size"),
    ("{meta} {origin} 7", "Invalid block size"),
    ("{meta} {origin} 0", "Invalid block size"),
    ("/nonexistent {origin} 128", "Error opening metadata device"),
    ("{meta} /nonexistent 128", "Error opening data device"),
])
def test_constructor_errors_are_the_kernels(mapper, era, params, text):
    mapper.create("erabad")
    p = params.format(meta=era.meta, origin=era.origin)
    with pytest.raises(DmError) as ei:
        mapper.load("erabad", [L(0, ORIGIN_SECTORS, "era", p)])
    assert ei.value.errno == errno.EINVAL
    assert ei.value.detail.splitlines() == [
        "device-mapper: table: 254:0: era: %s (-EINVAL)" % text,
        "device-mapper: ioctl: error adding target to table"]
    assert not mapper.info("erabad").inactive_table


def test_metadata_device_too_small_fails_without_an_era_log_line(mapper, era, backing):
    # Linux 6.1 (the VM's fidelity test): the superblock read past the end of a
    # 1 KiB metadata device fails with EIO in the block layer; era logs only ti->error.
    tiny = backing("tiny", 1024)
    mapper.create("erabad")
    with pytest.raises(DmError) as ei:
        mapper.load("erabad", [L(0, ORIGIN_SECTORS, "era", "%s %s 8" % (tiny, era.origin))])
    assert ei.value.errno == errno.EIO
    assert ei.value.detail.splitlines() == [
        "device-mapper: table: 254:0: era: Error reading metadata (-EIO)",
        "device-mapper: ioctl: error adding target to table"]


def test_block_size_change_is_refused(mapper, era):
    era()
    mapper.remove("era1")
    mapper.create("era2")
    with pytest.raises(DmError) as ei:
        mapper.load("era2", [L(0, ORIGIN_SECTORS, "era", "%s %s 256" % (era.meta, era.origin))])
    assert "Error reading metadata" in ei.value.detail
    assert "changing the data block size (from 128 to 256) is not supported" in ei.value.detail


@needs_tools
def test_written_since_matches_history_across_many_eras(mapper, era):
    era()
    history = {}                  # block -> last era written
    import random
    rng = random.Random(5)
    for step in range(12):
        e = era_of(mapper)
        for b in rng.sample(range(1024), 6):
            write_block(mapper, b)
            history[b] = e
        if step % 3 == 2:
            mapper.suspend("era1")
            mapper.resume("era1")
        else:
            mapper.message("era1", 0, "checkpoint")
    final = era_of(mapper)
    mapper.remove("era1")
    era_check(era.meta)
    for since in (0, 1, 2, 5, 9, final - 1, final, final + 1):
        expect = set(range(1024)) if since == 0 else {b for b, e in history.items() if e >= since}
        assert invalidate(era.meta, since) == expect, since


@needs_tools
def test_rewrites_and_metadata_snapshot_live(mapper, era):
    era()
    write_block(mapper, 5)                       # era 1
    mapper.message("era1", 0, "checkpoint")      # -> 2
    write_block(mapper, 5)
    write_block(mapper, 9)                       # era 2
    mapper.message("era1", 0, "take_metadata_snap")   # -> 3
    write_block(mapper, 11)                      # era 3, after the snapshot
    assert invalidate(era.meta, 2, snapshot=True) == {5, 9}
    assert invalidate(era.meta, 1, snapshot=True) == {5, 9}
    mapper.message("era1", 0, "drop_metadata_snap")
    mapper.remove("era1")
    era_check(era.meta)
    assert invalidate(era.meta, 3) == {11}
    assert invalidate(era.meta, 2) == {5, 9, 11}


@needs_tools
def test_era_check_clean_after_every_step(mapper, era):
    era()
    steps = [lambda: write_block(mapper, 1), lambda: mapper.message("era1", 0, "checkpoint"),
             lambda: write_block(mapper, 2), lambda: mapper.suspend("era1"),
             lambda: mapper.resume("era1"), lambda: mapper.message("era1", 0, "take_metadata_snap"),
             lambda: write_block(mapper, 3), lambda: mapper.message("era1", 0, "drop_metadata_snap"),
             lambda: sio.settle(mapper)]
    for s in steps:
        s()
        era_check(era.meta)


@needs_tools
@pytest.mark.parametrize("crash_after", range(0, 9))
def test_crash_never_loses_a_completed_write(mapper, era, crash_after):
    era()
    written = {}
    ops = []
    for i in range(9):
        ops.append(("w", i * 7 % 1024))
        if i % 3 == 1:
            ops.append(("c", None))
    done = 0
    for kind, arg in ops:
        if done == crash_after:
            break
        if kind == "w":
            written[arg] = era_of(mapper)
            write_block(mapper, arg)
        else:
            mapper.message("era1", 0, "checkpoint")
        done += 1
    sio.crash(mapper)
    era_check(era.meta)
    # re-create after the power cut: every block whose write completed is reported
    era(name="era1")
    mapper.remove("era1")
    era_check(era.meta)
    got = invalidate(era.meta, 1)
    assert set(written) <= got


def test_status_lines_match_the_kernels_for_the_golden_history(mapper, era):
    """The era section of the golden captures (INDEX-era.tsv), replayed: the used
    metadata block counts, eras and the snapshot block equal the real kernel's."""
    from testlib import golden

    def g(name):
        return golden(name).split(" era ", 1)[1].strip()
    era()
    assert status(mapper) == g("era-status.txt")
    for i in range(4):
        write_block(mapper, i)
    assert status(mapper) == g("era-status-after-write-1.txt")
    mapper.message("era1", 0, "checkpoint")
    assert status(mapper) == g("era-status-after-checkpoint.txt")
    mapper.message("era1", 0, "checkpoint")
    assert status(mapper) == g("era-status-after-strace-checkpoint.txt")
    write_block(mapper, 100)
    write_block(mapper, 101)
    mapper.message("era1", 0, "checkpoint")
    assert status(mapper) == g("era-status-after-checkpoint-2.txt")
    write_block(mapper, 500)
    mapper.message("era1", 0, "take_metadata_snap")
    assert status(mapper) == g("era-status-after-take-metadata-snap.txt")
    mapper.message("era1", 0, "drop_metadata_snap")
    assert status(mapper) == g("era-status-after-drop-metadata-snap.txt")
    mapper.message("era1", 8, "checkpoint")
    mapper.suspend("era1")
    mapper.resume("era1")
    mapper.remove("era1")
    era()
    assert status(mapper) == g("era-status-recreated.txt")


@needs_tools
def test_the_target_opens_metadata_written_by_era_restore(mapper, era, backing, tmp_path):
    """era_dump the simulator's metadata, era_restore it onto a fresh file, and run an
    era device on the restored metadata: it continues from the restored era and
    reports the same changed blocks."""
    era()
    write_block(mapper, 3)
    mapper.message("era1", 0, "checkpoint")
    write_block(mapper, 7)
    mapper.remove("era1")
    xml = tmp_path / "meta.xml"
    with open(xml, "w") as f:
        subprocess.run(["era_dump", era.meta], stdout=f, check=True)
    restored = backing("restored", 8 << 20)
    subprocess.run(["era_restore", "-i", str(xml), "-o", restored], check=True)
    era_check(restored)
    assert invalidate(era.meta, 1) == {3, 7} and invalidate(era.meta, 2) == {7}
    era(name="era2", meta_=restored)
    # the restored superblock holds era 2 (remove archives, it does not roll over);
    # the first resume rolls over to 3
    assert era_of(mapper, "era2") == 3
    write_block(mapper, 9, name="era2")
    mapper.remove("era2")
    era_check(restored)
    assert invalidate(restored, 1) == {3, 7, 9}
    assert invalidate(restored, 2) == {7, 9}
    assert invalidate(restored, 3) == {9}
