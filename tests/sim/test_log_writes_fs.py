"""Crash-consistency testing the way filesystem developers do it, with no kernel: an
ext4 image's changes are written through a simulated log-writes device with flushes and
marks between steps; replaying the log to each mark onto a fresh file must give a clean
filesystem (e2fsck -fn) holding exactly the files written up to that mark."""

import os
import shutil
import subprocess

import pytest

if not shutil.which("mkfs.ext4") and os.environ.get("CI"):
    raise RuntimeError("e2fsprogs must be installed in CI")
pytestmark = pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="e2fsprogs not installed")

SIZE = 32 << 20
BLK = 4096


def changed_blocks(old, new):
    out = []
    for i in range(0, len(new), BLK):
        if old[i:i + BLK] != new[i:i + BLK]:
            out.append(i // BLK)
    return out


def test_replay_to_each_mark_gives_a_clean_filesystem(dmctl, tmp_path, backing):
    img = tmp_path / "fs.img"
    with open(img, "wb") as f:
        f.truncate(SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,nodiscard",
                    str(img)], check=True)
    data = backing("data", SIZE)
    log = backing("log", 128 << 20)
    r = dmctl("create", "lw", "--table", "0 %d log-writes %s %s" % (SIZE >> 9, data, log))
    assert r.rc == 0, r.err
    assert dmctl("io", "copy", "lw", "--from", str(img), "--bs", "1048576").rc == 0
    assert dmctl("io", "flush", "lw").rc == 0
    assert dmctl("message", "lw", "0", "mark", "mkfs").rc == 0

    contents = {}
    prev = img.read_bytes()
    for k in range(1, 4):
        src = tmp_path / ("f%d.src" % k)
        src.write_bytes(os.urandom(20000 * k))
        contents["f%d" % k] = src.read_bytes()
        subprocess.run(["debugfs", "-w", "-R", "write %s f%d" % (src, k), str(img)],
                       check=True, capture_output=True)
        cur = img.read_bytes()
        blocks = changed_blocks(prev, cur)
        assert blocks
        script = ["write %d 8 from=%s@%d" % (b * 8, img, b * BLK) for b in blocks]
        script.append("flush")
        r = dmctl("io", "script", "lw", "-", input="\n".join(script) + "\n")
        assert r.rc == 0, r.err
        assert dmctl("message", "lw", "0", "mark", "step%d" % k).rc == 0
        prev = cur
    assert dmctl("remove", "lw").rc == 0

    for upto, mark in enumerate(["mkfs", "step1", "step2", "step3"]):
        rep = tmp_path / ("replay-%s.img" % mark)
        with open(rep, "wb") as f:
            f.truncate(SIZE)
        r = dmctl("replay-log", "--log", log, "--replay", str(rep), "--end-mark", mark)
        assert r.rc == 0, r.err
        p = subprocess.run(["e2fsck", "-fn", str(rep)], capture_output=True, text=True)
        assert p.returncode == 0, (mark, p.stdout + p.stderr)
        for k in range(1, 4):
            cat = subprocess.run(["debugfs", "-R", "cat f%d" % k, str(rep)], capture_output=True)
            if k <= upto:
                assert cat.stdout == contents["f%d" % k], (mark, k)
            else:
                assert b"not found" in cat.stderr or cat.stdout == b"", (mark, k)
    # the whole log ends with the target's end mark and reproduces the final image
    full = tmp_path / "full.img"
    with open(full, "wb") as f:
        f.truncate(SIZE)
    assert dmctl("replay-log", "--log", log, "--replay", str(full)).rc == 0
    assert full.read_bytes() == img.read_bytes()
    assert dmctl("replay-log", "--log", log, "--find", "--end-mark", "dm-log-writes-end").rc == 0
