"""The mirror target's constructor, status and table against the kernel's own output
(tests/golden/mirror-*: Linux 6.1, mirror v1.14.0, dmsetup 1.02.185)."""

import errno
import os

import pytest

from dmctl.errors import DmError
from test_mirror_helpers import (create_table, golden, golden_commands, make_loops, mk,
                                 status_line, subst)


@pytest.fixture
def loops(mapper, tmp_path):
    return make_loops(mapper, tmp_path)


BAD = [(n, argv) for n, rc, argv in golden_commands("mirror-") if rc == 1
       and argv[:2] == ["dmsetup", "create"]]


@pytest.mark.parametrize("name,argv", BAD, ids=[n for n, _ in BAD])
def test_bad_table_fails_with_the_kernels_log_and_errno(mapper, loops, name, argv):
    dev, table = create_table(argv)
    with pytest.raises(DmError) as ei:
        mk(mapper, dev, subst(table, loops))
    want = golden(name + ".dmesg.txt").splitlines()
    got = ei.value.detail.splitlines()
    # the kernel names the new device 254:0
    assert got == want
    stderr = golden(name + ".stderr.txt").splitlines()[0]
    assert stderr.endswith(": " + os.strerror(ei.value.errno))
    assert mapper.list_devices() == []


def test_keep_log_with_core_log_is_accepted(mapper, loops):
    cmd = dict((n, argv) for n, rc, argv in golden_commands())["mirror-bad-keeplog-core"]
    mk(mapper, "mbad", subst(create_table(cmd)[1], loops))
    got = status_line(mapper, "mbad", table=True) + "\n" + status_line(mapper, "mbad") + "\n"
    assert got == golden("mirror-bad-keeplog-core-ACCEPTED.txt")


# (create capture, [(capture, what)]) for tables the kernel accepted
GOOD = [
    ("mirror-core-create", [("mirror-core-status-immediate", "status"),
                            ("mirror-core-status-insync", "status"),
                            ("mirror-core-table", "table")]),
    ("mirror-core-nosync-create", [("mirror-core-nosync-status", "status"),
                                   ("mirror-core-nosync-table", "table")]),
    ("mirror-core-sync-he-create", [("mirror-core-sync-he-status", "status"),
                                    ("mirror-core-sync-he-table", "table")]),
    ("mirror-disk-create", [("mirror-disk-status-immediate", "status"),
                            ("mirror-disk-status-insync", "status"),
                            ("mirror-disk-table", "table")]),
    ("mirror-disk-he-create", [("mirror-disk-he-status", "status"),
                               ("mirror-disk-he-table", "table")]),
    ("mirror-disk-nosync-he-keeplog-create", [("mirror-disk-nosync-he-keeplog-status", "status"),
                                              ("mirror-disk-nosync-he-keeplog-table", "table")]),
    ("mirror-disk-3legs-create", [("mirror-disk-3legs-status", "status"),
                                  ("mirror-disk-3legs-table", "table")]),
]


@pytest.mark.parametrize("create,checks", GOOD, ids=[c for c, _ in GOOD])
def test_status_and_table_match_the_kernel(mapper, loops, create, checks):
    cmds = dict((n, argv) for n, rc, argv in golden_commands())
    argv = cmds[create]
    name, table = create_table(argv)
    uuid = argv[argv.index("-u") + 1] if "-u" in argv else None
    mk(mapper, name, subst(table, loops), uuid=uuid)
    for cap, what in checks:
        assert status_line(mapper, name, table=(what == "table")) + "\n" == golden(cap + ".txt"), cap


def test_deps_are_in_the_kernels_order(mapper, loops):
    mk(mapper, "m1", "0 16384 mirror core 1 1024 2 %s 0 %s 0" % (loops[4], loops[5]))
    assert golden("mirror-core-deps.txt") == "2 dependencies\t: (7, 5) (7, 4)\n"
    assert mapper.deps("m1")[1] == [(7, 5), (7, 4)]
    mk(mapper, "m2", "0 16384 mirror disk 2 %s 1024 2 %s 0 %s 0" % (loops[6], loops[4], loops[5]))
    assert golden("mirror-disk-deps.txt") == "3 dependencies\t: (7, 5) (7, 4) (7, 6)\n"
    assert mapper.deps("m2")[1] == [(7, 5), (7, 4), (7, 6)]


def test_first_sync_raises_one_event(mapper, loops):
    # mirror-core-info / mirror-disk-info: "Event number: 1" after create
    assert "Event number:      1" in golden("mirror-core-info.txt")
    mk(mapper, "m1", "0 16384 mirror core 1 1024 2 %s 0 %s 0" % (loops[4], loops[5]))
    assert mapper.info("m1").event_nr == 1
    mk(mapper, "m2", "0 16384 mirror disk 2 %s 1024 2 %s 0 %s 0" % (loops[6], loops[4], loops[5]),
       uuid="MIRROR-UUID-0002")
    assert mapper.info("m2").event_nr == 1
    # suspend/resume: in sync already, no new event
    mapper.suspend("m2")
    assert status_line(mapper, "m2") + "\n" == golden("mirror-disk-status-suspended.txt").split("\n", 1)[1]
    mapper.resume("m2")
    assert mapper.info("m2").event_nr == 1


def test_messages_are_not_supported(mapper, loops):
    mk(mapper, "m1", "0 16384 mirror core 1 1024 2 %s 0 %s 0" % (loops[4], loops[5]))
    with pytest.raises(DmError) as ei:
        mapper.message("m1", 0, "hello")
    assert ei.value.errno == errno.EINVAL
    assert ei.value.detail == golden("mirror-core-message.dmesg.txt").strip()


def test_legs_identical_after_sync(mapper, loops):
    with open(loops[4], "r+b") as f:
        f.write(os.urandom(1 << 20))
    mk(mapper, "m1", "0 16384 mirror core 1 1024 2 %s 0 %s 0" % (loops[4], loops[5]))
    assert golden("mirror-core-legs-equal.txt") == "legs identical\n"
    with open(loops[4], "rb") as a, open(loops[5], "rb") as b:
        assert a.read() == b.read()


def test_ima_status(mapper, loops):
    mk(mapper, "m1", "0 16384 mirror core 1 1024 2 %s 0 %s 0 1 handle_errors" % (loops[4], loops[5]))
    line = mapper.measure("m1")[1][0].params
    assert line == ("target_name=mirror,target_version=1.14.0,nr_mirrors=2,"
                    "mirror_device_0=7:4,mirror_device_0_status=A,"
                    "mirror_device_1=7:5,mirror_device_1_status=A,"
                    "handle_errors=y,keep_log=n,log_type_status=;")


def test_more_kernel_ctr_checks(mapper, loops):
    a, b = loops[4], loops[5]
    cases = [
        ("core", errno.EINVAL, "Insufficient mirror log arguments", None),
        ("core x 1024 2 %s 0 %s 0" % (a, b), errno.EINVAL, "Invalid mirror log argument count", None),
        ("core 5 1024 2 %s 0" % a, errno.EINVAL, "Insufficient mirror log arguments", None),
        ("core 1 1024", errno.EINVAL, "Invalid number of mirrors", None),
        ("core 1 1024 10 " + " ".join("%s 0" % a for _ in range(10)), errno.EINVAL,
         "Invalid number of mirrors", None),
        ("core 1 1024 2 %s x %s 0" % (a, b), errno.EINVAL, "Invalid offset", None),
        ("core 1 1024 2 %s 0 %s 0 x" % (a, b), errno.EINVAL, "Invalid number of features", None),
        ("core 1 1024 2 %s 0 %s 0 1 handle_errors extra" % (a, b), errno.EINVAL,
         "Too many mirror arguments", None),
        ("core 1 1024 2 %s 0 %s 0 1 Handle_errors" % (a, b), errno.EINVAL,
         "Unrecognised feature requested", None),
        ("disk 2 /dev/nonexistent 1024 2 %s 0 %s 0" % (a, b), errno.EINVAL,
         "Error creating mirror dirty log", None),
        ("core 1 1 2 %s 0 %s 0" % (a, b), errno.EINVAL, "Error creating mirror dirty log",
         "device-mapper: dirty region log: invalid region size 1"),
    ]
    for params, err, text, log in cases:
        with pytest.raises(DmError) as ei:
            mk(mapper, "mb", "0 16384 mirror " + params)
        assert ei.value.errno == err, params
        lines = ei.value.detail.splitlines()
        assert lines[-2] == "device-mapper: table: 254:0: mirror: %s (-%s)" % (
            text, errno.errorcode[err]), params
        if log:
            assert lines[0] == log
    # zero features and repeated features are accepted
    mk(mapper, "m0", "0 16384 mirror core 1 1024 2 %s 0 %s 0 0" % (a, b))
    assert mapper.table("m0")[1][0].params == "core 1 1024 2 7:4 0 7:5 0"
    mk(mapper, "m3", "0 16384 mirror core 1 1024 2 %s 0 %s 0 3 keep_log handle_errors keep_log" % (a, b))
    assert mapper.table("m3")[1][0].params == "core 1 1024 2 7:4 0 7:5 0 2 handle_errors keep_log"


def test_disk_log_device_too_small(mapper, tmp_path, loops):
    small = str(tmp_path / "small.img")
    with open(small, "wb") as f:
        f.truncate(1024)        # needs 1536 bytes for 16 regions
    with pytest.raises(DmError) as ei:
        mk(mapper, "mb", "0 16384 mirror disk 2 %s 1024 2 %s 0 %s 0" % (small, loops[4], loops[5]))
    lines = ei.value.detail.splitlines()
    assert lines[0] == "device-mapper: dirty region log: log device 7:8 too small: need 1536 bytes"
    assert lines[1] == "device-mapper: table: 254:0: mirror: Error creating mirror dirty log (-EINVAL)"


def test_cli_output_matches_dmsetup(mapper, loops, dmctl):
    """The whole `dmsetup create/status/table/deps/info/ls --tree` output of the
    captured disk-log session, through the dmctl command line."""
    cmds = dict((n, argv) for n, rc, argv in golden_commands())
    name, table = create_table(cmds["mirror-disk-create"])
    r = dmctl("create", name, "-u", "MIRROR-UUID-0002", "--table", subst(table, loops))
    assert r.rc == 0 and r.out == "" and r.err == ""
    for cap in ("mirror-disk-status-immediate", "mirror-disk-table", "mirror-disk-deps",
                "mirror-disk-info", "mirror-disk-info-c", "mirror-disk-ls-tree",
                "mirror-disk-ls-tree-ascii", "mirror-disk-ls-tree-compact-ascii",
                "mirror-disk-ls-tree-full-ascii", "mirror-disk-ls-tree-inverted"):
        r = dmctl(*cmds[cap][1:])
        assert (r.rc, r.out) == (0, golden(cap + ".txt")), cap
    r = dmctl("message", name, "0", "hello")
    assert r.rc == 1
    assert r.err.splitlines()[0] == golden("mirror-core-message.stderr.txt").splitlines()[0].replace("m1", name)
