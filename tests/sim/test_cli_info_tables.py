"""`info` of a device by which tables it has: live, inactive, both (a table loaded over a
live one) and, after `clear`, live again; compared with the golden captures of dmsetup
1.02.185 (INDEX-generic.tsv: multi is 254:0, lin1 254:1 with uuid LIN-UUID-0001)."""

import pytest

from testlib import need_golden


def ok(r):
    assert (r.rc, r.err) == (0, ""), r
    return r.out


@pytest.fixture
def lin1(dmctl, backing):
    """multi (254:0), then lin1 (254:1) as in the capture; returns the backing file."""
    loop7 = backing("loop7.img", 16 << 20)
    ok(dmctl("create", "multi", input="0 1024 linear %s 0\n1024 1024 zero\n2048 1024 error\n"
             % loop7))
    ok(dmctl("create", "lin1", "-u", "LIN-UUID-0001", "--table",
             "0 32768 linear %s 0" % loop7))
    return loop7


def test_info_live_and_inactive(dmctl, lin1):
    ok(dmctl("load", "lin1", "--table", "0 16384 linear %s 0" % lin1))
    out = ok(dmctl("info", "lin1"))
    assert "Tables present:    LIVE & INACTIVE\n" in out.splitlines(True)
    assert out == need_golden("generic-info-live-and-inactive.txt")
    assert ok(dmctl("info", "-c", "lin1")) == need_golden("generic-info-c-live-and-inactive.txt")
    # the attr column alone (the capture's Stat column), and what libdm's tables_loaded
    # field says for both tables (_dm_info_table_loaded_disp: "Both")
    assert ok(dmctl("info", "-c", "--noheadings", "-o", "attr", "lin1")) == "LI-w\n"
    assert ok(dmctl("info", "-c", "--noheadings", "--separator", ",", "-o",
                    "name,attr,tables_loaded", "lin1")) == "lin1,LI-w,Both\n"
    # both tables of the one device: the live one, then the inactive one
    assert ok(dmctl("table", "lin1")) == need_golden("generic-table-live.txt").replace(
        "7:7", "7:0")
    assert ok(dmctl("table", "--inactive", "lin1")) == need_golden(
        "generic-table-inactive-lin1.txt").replace("7:7", "7:0")
    # clear drops the inactive table: LIVE only again (the capture after clear)
    ok(dmctl("clear", "lin1"))
    assert ok(dmctl("info", "lin1")) == need_golden("generic-info-after-clear.txt")
    assert ok(dmctl("info", "-c", "--noheadings", "-o", "attr,tables_loaded",
                    "lin1")) == "L--w:Live\n"      # --noheadings: ':' between, no padding


def test_info_inactive_only_and_none(dmctl, lin1):
    ok(dmctl("create", "empty1", "--notable"))
    out = ok(dmctl("info", "empty1"))
    assert "Tables present:    None\n" in out
    ok(dmctl("load", "empty1", "--table", "0 1024 zero"))
    assert ok(dmctl("info", "empty1")) == need_golden("generic-info-inactive-only.txt")
    assert ok(dmctl("info", "-c", "--noheadings", "--separator", ",", "-o",
                    "attr,tables_loaded", "empty1")) == "-I-w,Inactive\n"
