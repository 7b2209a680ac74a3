"""`dmctl sim export`: a simulated device served over NBD (nbdkit and dmctl's Python
plugin) to unmodified programs -- nbdcopy, qemu-img, qemu-io, and through `nbdfuse`
as a plain file, dd, mkfs.ext4, fuse2fs, e2fsck, debugfs.

Every test uses the `dm` fixture of dmctl's own pytest plugin (dmctl.testing.plugin):
a simulator of its own, exports and FUSE mounts stopped at teardown.  The programs are
installed by scripts/test; without them a test is skipped, but fails in CI ($CI).
"""

import json
import os
import re
import subprocess

import pytest

from dmctl.testing.plugin import DmRunError

MiB = 1 << 20


def sh(*argv):
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, (argv, r.stderr.decode(errors="replace"))
    return r.stdout.decode(errors="replace")


def fails(*argv):
    r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert r.returncode != 0, argv
    return r.stdout.decode(errors="replace")


def linear(dm, name="lin", size=8 * MiB):
    disk = dm.file(name + ".img", size)
    dm.run("create", name, "--table", "0 %d linear %s 0" % (size >> 9, disk))
    return disk


def qemu_io(uri, *cmds):
    # -t writeback: qemu-io defaults to writethrough (a FUA on every write)
    argv = ["qemu-io", "-t", "writeback", "-f", "raw", uri]
    for c in cmds:
        argv += ["-c", c]
    return sh(*argv)


def put(dm, name, data):
    with open(dm.path(name), "wb") as f:
        f.write(data)
    return dm.path(name)


def get(path):
    with open(path, "rb") as f:
        return f.read()


def dmread(dm, dev, sector, nr):
    dm.run("io", "read", dev, str(sector), "--sectors", str(nr), "--to", dm.path("rd"))
    return get(dm.path("rd"))


def test_programs_read_what_dmctl_io_wrote_and_dmctl_reads_theirs(dm):
    dm.require("nbdkit", "nbdcopy", "qemu-img", "qemu-io")
    linear(dm)
    a = os.urandom(MiB)
    dm.run("io", "write", "lin", "0", "--from", put(dm, "a", a))   # volatile: reads see it
    e = dm.export("lin")
    assert e.uri == "nbd+unix:///?socket=" + e.socket and e.pid > 0
    sh("nbdcopy", e.uri, dm.path("out"))
    got = get(dm.path("out"))
    assert len(got) == 8 * MiB and got[:MiB] == a and got[MiB:] == bytes(7 * MiB)
    sh("qemu-img", "compare", "-f", "raw", "-F", "raw", e.uri, dm.path("out"))
    # the other way: what nbdcopy and qemu-io write, dmctl io reads
    b = os.urandom(2 * MiB)
    sh("nbdcopy", put(dm, "b", b), e.uri)
    qemu_io(e.uri, "write -P 0x5a %d %d" % (3 * MiB, MiB), "write -P 0x63 10 100")
    assert dmread(dm, "lin", 0, 4096) == b[:10] + b"c" * 100 + b[110:]
    assert dmread(dm, "lin", 3 * MiB >> 9, 2048) == b"\x5a" * MiB


def test_fua_flush_trim_and_zeroes_become_the_same_bios(dm):
    # a log-writes device records each bio's flags: the log shows what the export sent
    dm.require("nbdkit", "qemu-io")
    data, log = dm.file("data", 4 * MiB), dm.file("log", 4 * MiB)
    dm.run("create", "lw", "--table", "0 8192 log-writes %s %s" % (data, log))
    e = dm.export("lw")
    qemu_io(e.uri, "write -P 0x61 0 4k", "write -f -P 0x62 4k 4k", "flush",
            "discard 8k 64k", "write -z 4k 16k")
    dm.run("message", "lw", "0", "mark", "one")
    out = dm.run("replay-log", "--log", log, "--find", "--end-mark", "one", "-vv")
    ops = re.findall(r"seek entry \d+@\d+: (\d+), size (\d+), flags 0x[0-9a-f]+\((\w+)\)", out)
    assert ops == [                     # sector, sectors, flags
        ("8", "8", "FUA"),              # a FUA write is logged at once
        ("0", "8", "NONE"),             # a plain write: logged at the next flush
        ("0", "0", "FLUSH"),            # NBD_CMD_FLUSH: an empty flush
        ("16", "128", "DISCARD"),       # NBD_CMD_TRIM
        ("8", "32", "NONE"),            # NBD_CMD_WRITE_ZEROES: a zeroing write
        ("0", "0", "FLUSH"),            # qemu-io flushes when it closes the image
        ("0", "0", "MARK"),
    ], out
    assert get(data)[4096:20480] == bytes(16384)


def test_sim_crash_drops_unflushed_export_writes_and_sigterm_flushes(dm):
    dm.require("nbdkit", "nbdcopy")
    disk = linear(dm)
    e = dm.export("lin")
    a, b = os.urandom(MiB), os.urandom(MiB)
    sh("nbdcopy", "--flush", put(dm, "a", a), e.uri)          # durable
    sh("nbdcopy", put(dm, "b", b), e.uri)                     # overwrites, unflushed
    assert dmread(dm, "lin", 0, 2048) == b
    assert "1 block(s)" not in dm.run("sim", "status")        # 256 unflushed blocks
    dm.crash()
    # the device vanished with the power: the export answers errors until it is back
    fails("nbdcopy", e.uri, dm.path("x"))
    dm.run("create", "lin", "--table", "0 16384 linear %s 0" % disk)
    sh("nbdcopy", e.uri, dm.path("after"))
    assert get(dm.path("after"))[:MiB] == a
    # SIGTERM: nbdkit ends and flushes first, so a crash then loses nothing
    sh("nbdcopy", put(dm, "c", b), e.uri)
    e.stop()
    assert not os.path.exists(e.socket)
    dm.crash()
    assert get(disk)[:MiB] == b


def test_target_errors_are_nbd_errors(dm):
    dm.require("nbdkit", "qemu-io")
    dm.run("create", "err", "--table", "0 8192 error")
    e = dm.export("err")
    assert "Input/output error" in fails("qemu-io", "-f", "raw", e.uri, "-c", "read 0 4k")
    disk = linear(dm)
    e2 = dm.export("lin")
    dm.run("sim", "fail", disk, "--writes")
    assert "Input/output error" in fails("qemu-io", "-f", "raw", e2.uri, "-c", "write 0 4k")
    qemu_io(e2.uri, "read 0 4k")                              # reads still work
    dm.run("sim", "heal", disk)
    qemu_io(e2.uri, "write -P 0x41 0 4k")


def test_other_commands_work_while_exported(dm):
    dm.require("nbdkit", "qemu-io")
    linear(dm)
    e = dm.export("lin")
    qemu_io(e.uri, "write -P 0x41 0 4k")
    dm.run("suspend", "lin")
    assert "SUSPENDED" in dm.run("info", "lin")
    dm.run("resume", "lin")
    assert dm.run("status", "lin") == "0 16384 linear \n"
    qemu_io(e.uri, "read -P 0x41 0 4k")
    dm.run("io", "write", "lin", "8", "--pattern", "0x42", "--sectors", "8")
    qemu_io(e.uri, "read -P 0x42 4k 4k")


def test_readonly_export_and_start_errors(dm):
    dm.require("nbdkit", "qemu-io")
    linear(dm)
    e = dm.export("lin", readonly=True)
    sh("qemu-io", "-r", "-f", "raw", e.uri, "-c", "read 0 4k")
    assert "Permission denied" in fails("qemu-io", "-f", "raw", e.uri, "-c", "write 0 4k")
    with pytest.raises(DmRunError, match="not found"):
        dm.run("sim", "export", "nosuch", "--socket", dm.path("s"))
    with pytest.raises(DmRunError, match="exists"):
        dm.run("sim", "export", "lin", "--socket", e.socket)


def test_era_names_exactly_what_dd_wrote_through_nbdfuse(dm):
    dm.require("nbdkit", "nbdfuse", "dd", fuse=True)
    meta, origin = dm.file("meta", 8 * MiB), dm.file("origin", 32 * MiB)
    dm.run("create", "era", "--table", "0 65536 era %s %s 128" % (meta, origin))  # 64k blocks
    disk = dm.nbdfuse(dm.export("era"))
    assert os.path.getsize(disk) == 32 * MiB
    dm.run("message", "era", "0", "checkpoint")               # era 2 starts
    for block, count in ((3, 1), (10, 2), (100, 1)):
        sh("dd", "if=/dev/urandom", "of=" + disk, "bs=64k", "seek=%d" % block,
           "count=%d" % count, "oflag=direct", "conv=notrunc", "status=none")
    dm.run("message", "era", "0", "checkpoint")
    out = json.loads(dm.run("era", "changed-since", "--json", "2", meta))
    assert out["ranges"] == [[3, 4], [10, 12], [100, 101]]
