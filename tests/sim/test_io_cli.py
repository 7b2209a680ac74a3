"""`dmctl io` and `dmctl sim` from the command line, and real workloads through the
simulator: a 256 MiB multi-file device round trip and an ext4 image checked by e2fsck."""

import hashlib
import os
import shutil
import subprocess

import pytest


def test_io_commands_round_trip_and_crash(dmctl, backing, tmp_path):
    f = backing("d.img", 1 << 20)
    assert dmctl("create", "lin", "--table", "0 2048 linear %s 0" % f).rc == 0
    src = tmp_path / "src"
    src.write_bytes(os.urandom(4096))
    r = dmctl("io", "write", "lin", "16", "--from", str(src))
    assert r.rc == 0, r.err
    r = dmctl("io", "read", "lin", "16", "--sectors", "8", binary=True)
    assert r.rc == 0 and r.out == src.read_bytes()
    r = dmctl("io", "write", "/dev/mapper/lin", "0", "--pattern", "0x41", "--sectors", "8", "--fua")
    assert r.rc == 0, r.err
    out = tmp_path / "out"
    assert dmctl("io", "read", "254:0", "0", "--sectors", "8", "--to", str(out)).rc == 0
    assert out.read_bytes() == b"A" * 4096
    st = dmctl("sim", "status")
    assert "unflushed_blocks=1" in st.out, st.out      # the 4 KiB at sector 16
    r = dmctl("sim", "crash")
    assert r.rc == 0
    assert "1 block(s) lost" in r.out
    assert dmctl("ls").out == "No devices found\n"
    data = open(f, "rb").read()
    assert data[:4096] == b"A" * 4096                    # FUA: durable
    assert data[16 * 512:16 * 512 + 4096] == bytes(4096)  # unflushed: lost


def test_io_script_cli_and_errors(dmctl, backing, tmp_path):
    f = backing("d.img", 1 << 20)
    dmctl("create", "mix", "--table", "0 8 linear %s 0\n8 8 error" % f)
    r = dmctl("io", "script", "mix", "-", input="write 0 8 pattern=0x42\nflush\nread 0 1\n",
              binary=False)
    assert r.rc == 0, r.err
    assert r.out == "B" * 512
    r = dmctl("io", "script", "mix", "-", input="write 8 1 pattern=1\n")
    assert r.rc == 1
    assert "line 1: write failed: Input/output error" in r.err
    r = dmctl("io", "script", "mix", "-", input="write 0 x\n")
    assert r.rc == 1 and "line 1" in r.err
    r = dmctl("io", "read", "nosuch", "0", "--sectors", "1")
    assert r.rc == 1 and "nosuch" in r.err
    r = dmctl("io", "write", "mix", "0", "--pattern", "1")
    assert r.rc != 0


def test_sim_fail_and_heal_cli(dmctl, backing):
    f = backing("d.img", 1 << 20)
    dmctl("create", "lin", "--table", "0 2048 linear %s 0" % f)
    assert dmctl("sim", "fail", f, "--reads", "--sectors", "0-8").rc == 0
    r = dmctl("io", "read", "lin", "0", "--sectors", "1")
    assert r.rc == 1 and "Input/output error" in r.err
    assert dmctl("io", "read", "lin", "8", "--sectors", "1").rc == 0
    assert dmctl("sim", "heal", f).rc == 0
    assert dmctl("io", "read", "lin", "0", "--sectors", "1").rc == 0


def _sha(path, n=None):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        left = n
        while True:
            b = fh.read(1 << 20 if left is None else min(1 << 20, left))
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
                if not left:
                    break
    return h.hexdigest()


def test_256mib_device_from_several_files_round_trips_a_random_image(dmctl, tmp_path):
    parts = []
    table = []
    start = 0
    for i, mib in enumerate((64, 96, 32, 64)):
        p = tmp_path / ("part%d" % i)
        with open(p, "wb") as fh:
            fh.truncate((mib + 1) << 20)
        sectors = mib << 11
        table.append("%d %d linear %s 2048" % (start, sectors, p))   # offset 1 MiB into each
        start += sectors
        parts.append(p)
    assert start == 256 << 11
    assert dmctl("create", "big", "--table", "\n".join(table)).rc == 0
    img = tmp_path / "img"
    with open(img, "wb") as fh:
        for _ in range(256):
            fh.write(os.urandom(1 << 20))
    r = dmctl("io", "copy", "big", "--from", str(img), "--fsync-every", "64")
    assert r.rc == 0, r.err
    back = tmp_path / "back"
    r = dmctl("io", "read", "big", "0", "--sectors", str(256 << 11), "--to", str(back))
    assert r.rc == 0, r.err
    assert _sha(back) == _sha(img)
    # and the data landed in the right places of the right files
    with open(img, "rb") as fh, open(parts[1], "rb") as p1:
        fh.seek(64 << 20)
        p1.seek(1 << 20)
        assert fh.read(1 << 20) == p1.read(1 << 20)


@pytest.mark.skipif(not shutil.which("mkfs.ext4") and not os.environ.get("CI"),
                    reason="e2fsprogs not installed")
def test_ext4_image_copied_through_the_simulator_passes_e2fsck(dmctl, tmp_path, backing):
    img = tmp_path / "fs.img"
    with open(img, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0", str(img)], check=True)
    subprocess.run(["debugfs", "-w", "-R", "write /etc/services services", str(img)],
                   check=True, capture_output=True)
    a = backing("a.img", 32 << 20)
    b = backing("b.img", 32 << 20)
    table = "0 65536 linear %s 0\n65536 65536 linear %s 0" % (a, b)
    assert dmctl("create", "fs", "--table", table).rc == 0
    assert dmctl("io", "copy", "fs", "--from", str(img), "--bs", "65536").rc == 0
    assert dmctl("io", "flush", "fs").rc == 0
    out = tmp_path / "out.img"
    assert dmctl("io", "read", "fs", "0", "--sectors", str(64 << 11), "--to", str(out)).rc == 0
    p = subprocess.run(["e2fsck", "-fn", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    cat = subprocess.run(["debugfs", "-R", "cat services", str(out)], capture_output=True)
    assert cat.stdout == open("/etc/services", "rb").read()
