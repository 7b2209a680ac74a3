"""dmsetup's query commands against golden captures from dmsetup 1.02.185, using an
in-memory mapper holding the captured device state (so device numbers match)."""

import pytest

from testlib import GENERIC_QUERIES
from test_report_support import FakeMapper, golden, mirror_devices, run

# (golden file, argv) — generic section state: empty1, lin1, multi, ro1, stack1
GENERIC = GENERIC_QUERIES + [
    ("dmsetup-targets.txt", ["targets"]),
    ("dmsetup-target-version.txt", ["target-version", "era", "log-writes", "mirror", "linear",
                                    "striped", "error", "zero"]),
]


@pytest.mark.parametrize("name,argv", GENERIC, ids=[g[0] for g in GENERIC])
def test_generic_golden(monkeypatch, capsys, name, argv):
    want = golden(name)
    rc, out, err = run(monkeypatch, capsys, argv)
    assert (rc, out) == (0, want), err


MIRROR = [
    ("mirror-disk-info-c.txt", ["info", "-c", "m2"]),
    ("mirror-disk-ls-tree.txt", ["ls", "--tree", "-o", "utf"]),
    ("mirror-disk-ls-tree-ascii.txt", ["ls", "--tree", "-o", "ascii"]),
    ("mirror-disk-ls-tree-utf.txt", ["ls", "--tree", "-o", "utf"]),
    ("mirror-disk-ls-tree-inverted.txt", ["ls", "--tree", "-o", "utf,inverted"]),
    ("mirror-disk-ls-tree-compact-ascii.txt", ["ls", "--tree", "-o", "ascii,compact"]),
    ("mirror-disk-ls-tree-full-ascii.txt", ["ls", "--tree", "-o",
                                            "ascii,device,active,open,rw,uuid"]),
    ("mirror-disk-table.txt", ["table", "m2"]),
    ("mirror-disk-status-insync.txt", ["status", "m2"]),
    ("mirror-disk-deps.txt", ["deps", "m2"]),
]


@pytest.mark.parametrize("name,argv", MIRROR, ids=[g[0] for g in MIRROR])
def test_mirror_golden(monkeypatch, capsys, name, argv):
    want = golden(name)
    rc, out, err = run(monkeypatch, capsys, argv, FakeMapper(mirror_devices()))
    assert (rc, out) == (0, want), err


def test_info_c_o_help(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["info", "-c", "-o", "help"], FakeMapper([]))
    assert rc == 0
    assert out == golden("dmsetup-info-c-o-help.txt")
    assert err == golden("dmsetup-info-c-o-help.stderr.txt")


def test_help_columns(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["help", "-c"], FakeMapper([]))
    assert rc == 0 and out == ""
    assert err == golden("dmsetup-help-columns.stderr.txt")


def test_help(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["help"], FakeMapper([]))
    assert (rc, out, err) == (0, "", golden("dmsetup-help.stderr.txt"))


@pytest.mark.parametrize("cmd", ["ls", "info", "status", "table"])
def test_empty(monkeypatch, capsys, cmd):
    rc, out, err = run(monkeypatch, capsys, [cmd], FakeMapper([]))
    assert (rc, out, err) == (0, golden("dmsetup-%s-empty.txt" % cmd), "")


def test_target_version_unknown(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["target-version", "nosuch"])
    assert (rc, out) == (1, "")
    assert err == golden("dmsetup-target-version-unknown.stderr.txt")


@pytest.mark.parametrize("cmd", ["info", "status", "table"])
def test_nonexistent(monkeypatch, capsys, cmd):
    rc, out, err = run(monkeypatch, capsys, [cmd, "nosuchdev"])
    assert (rc, out) == (1, "")
    assert err == golden("generic-%s-nonexistent.stderr.txt" % cmd)


def test_splitname(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["splitname", "vg-lv-layer", "LVM"])
    assert (rc, out, err) == (0, golden("generic-splitname.txt"), "")


def test_version_sim(monkeypatch, capsys):
    from dmctl import LIBRARY_VERSION
    rc, out, err = run(monkeypatch, capsys, ["version"])
    assert (rc, err) == (0, "")
    assert out == "Library version:   %s\nDriver version:    4.47.0 (simulated)\n" % LIBRARY_VERSION


def test_hide_keys_crypt_and_integrity():
    from dmctl.cli.cmd_query import hide_keys
    assert hide_keys("crypt", "aes-xts-plain64 0123abcd 0 8:1 0") == \
        "aes-xts-plain64 00000000 0 8:1 0"
    assert hide_keys("crypt", "aes-xts-plain64 :32:logon:k 0 8:1 0") == \
        "aes-xts-plain64 :32:logon:k 0 8:1 0"
    p = "8:1 0 32 J 3 internal_hash:hmac(sha256):abcd journal_crypt:ctr(aes):beef x"
    assert hide_keys("integrity", p) == \
        "8:1 0 32 J 3 internal_hash:hmac(sha256):0000 journal_crypt:ctr(aes):0000 x"
    assert hide_keys("integrity", "8:1 0 32 J 1 internal_hash:crc32c") == \
        "8:1 0 32 J 1 internal_hash:crc32c"


def test_table_hides_crypt_key_unless_showkeys(monkeypatch, capsys):
    from test_report_support import Dev
    dev = Dev("c", 0, table=[(0, 8, "crypt", "aes-cbc-essiv:sha256 0a1b 0 7:7 0")])
    rc, out, _ = run(monkeypatch, capsys, ["table", "c"], FakeMapper([dev]))
    assert out == "0 8 crypt aes-cbc-essiv:sha256 0000 0 7:7 0\n"
    rc, out, _ = run(monkeypatch, capsys, ["table", "--showkeys", "c"], FakeMapper([dev]))
    assert out == "0 8 crypt aes-cbc-essiv:sha256 0a1b 0 7:7 0\n"


def test_options_errors(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["ls", "-o", "devno,bogus"])
    assert (rc, out, err) == (1, "", "Option not recognised: bogus.\nCouldn't process command line.\n")
    rc, out, err = run(monkeypatch, capsys, ["ls", "--tree", "-o", "ascii,zz"])
    assert (rc, err) == (1, "Tree options not recognised: zz.\nCouldn't process command line.\n")


def test_unrecognised_field(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["info", "-c", "-o", "name,nope"])
    assert rc == 1 and out == ""
    assert err.endswith("  ?                     - Show help.\n \nUnrecognised field: nope\n")


def test_count_repeats_headings(monkeypatch, capsys):
    import time
    monkeypatch.setattr(time, "sleep", lambda s: None)
    rc, out, err = run(monkeypatch, capsys, ["info", "-c", "--count", "2", "-o", "name", "ro1"])
    assert out == "Name            \nro1             \n\nName            \nro1             \n"


def test_info_splitname_fields(monkeypatch, capsys):
    from test_report_support import Dev
    devs = [Dev("vg--a-lv-tpool", 0, "LVM-abc-tpool", table=[(0, 8, "zero", "")]),
            Dev("crypt1", 1, "CRYPT-LUKS2-00-crypt1", table=[(0, 8, "zero", "")]),
            Dev("plain", 2, table=[(0, 8, "zero", "")])]
    rc, out, err = run(monkeypatch, capsys, ["info", "-c", "-o", "name,splitname_all"],
                       FakeMapper(devs))
    assert out == ("Name             Subsys VG   LV   LVLayer\n"
                   "crypt1           CRYPT                   \n"
                   "plain                                    \n"
                   "vg--a-lv-tpool   LVM    vg-a lv   tpool  \n")


def test_info_tree_and_deps_fields_all(monkeypatch, capsys):
    rc, out, err = run(monkeypatch, capsys, ["info", "-c", "-o", "name,deps_all,tree_all",
                                             "-O", "-device_ref_count,name"])
    assert rc == 0, err
    assert out.splitlines()[0].split() == ["Name", "#Devs", "DevNosUsed", "BlkDevNamesUsed",
                                           "DevNamesUsed", "#Refs", "RefNames", "RefDevNos"]
    assert out.splitlines()[1].split() == ["lin1", "1", "7:7", "loop7", "1", "stack1", "254:4"]
    assert out.splitlines()[-1].split() == ["stack1", "1", "254:1", "dm-1", "lin1", "0"]


def test_unresolvable_block_device_name(monkeypatch, capsys):
    from test_report_support import Dev
    dev = Dev("d", 0, table=[(0, 8, "linear", "8:2 0")], deps=[(8, 2)])
    rc, out, err = run(monkeypatch, capsys, ["info", "-c", "-o", "name,blkdevs_used", "d"],
                       FakeMapper([dev]))
    assert (rc, out) == (1, "")
    assert err == ("Could not resolve block device name for 8:2.\n"
                   "_do_report_object: report function failed for field blkdevs_used\n"
                   "Command failed.\n")
    rc, out, err = run(monkeypatch, capsys, ["deps", "-o", "blkdevname", "d"], FakeMapper([dev]))
    assert (rc, out) == (0, "1 dependencies\t: (8, 2)\n")
