"""Typed, symmetric target params and typed status (dmctl.libdm.params, .status):
every table and status line the kernel printed in tests/golden, and every example in
tables/, parses into its typed object and formats back byte for byte."""

import glob
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmctl.libdm import params as P
from dmctl.libdm import status as S
from dmctl.libdm.fields import ParseError
from dmctl.libdm.table import TableError, parse_concise
from testlib import GOLDEN, ROOT

TYPED = {"linear", "striped", "zero", "error", "era", "log-writes", "mirror"}
_NAMED = re.compile(r"^(\S+): (\d.*)$")


def _kernel_lines(kind):
    """(file, line) for every target line in the golden captures of ``kind``
    (``table`` or ``status``), device-name prefixes removed."""
    out = []
    for path in sorted(glob.glob(os.path.join(GOLDEN, "*%s*" % kind))):
        base = os.path.basename(path)
        if base.endswith((".stderr.txt", ".dmesg.txt")) or "bad" in base:
            continue
        text = open(path).read()
        if "concise" in base:
            for dev in parse_concise(text.strip()):
                out += [(base, t.format()) for t in dev.lines()]
            continue
        for line in text.split("\n"):
            m = _NAMED.match(line)
            if m:
                line = m.group(2)
            if line[:1].isdigit():
                out.append((base, line))
    return out


TABLE_LINES = _kernel_lines("table")
STATUS_LINES = _kernel_lines("status")


def _example_lines():
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tables", "*.table"))):
        for line in open(path).read().split("\n"):
            if line and not line.startswith("#"):
                out.append((os.path.basename(path), line))
    return out


EXAMPLE_LINES = _example_lines()


def test_the_corpus_covers_every_typed_target():
    types = {line.split()[2] for _f, line in TABLE_LINES + EXAMPLE_LINES}
    assert types >= {"linear", "zero", "error", "era", "log-writes", "mirror"}
    logs = {line.split()[3] for _f, line in TABLE_LINES + EXAMPLE_LINES
            if line.split()[2] == "mirror"}
    assert logs == {"core", "disk", "userspace"}
    assert len(TABLE_LINES) >= 30 and len(STATUS_LINES) >= 40


@pytest.mark.parametrize("src,line", TABLE_LINES + EXAMPLE_LINES)
def test_table_lines_round_trip(src, line):
    tl = P.TableLine.parse(line)
    if tl.target_type in TYPED:
        assert type(tl.params) is P.params_class(tl.target_type)
    # dmsetup prints a space after the type even without params; tables/ may omit it
    assert tl.format() == (line + " " if len(line.split()) == 3 and src in dict(
        EXAMPLE_LINES) else line)
    words = line.split(" ", 3)
    params = words[3] if len(words) > 3 else ""
    assert str(P.parse_params(words[2], params)) == params


@pytest.mark.parametrize("src,line", STATUS_LINES)
def test_status_lines_round_trip(src, line):
    _start, _len, ttype, text = (line.split(" ", 3) + [""])[:4]
    st_ = S.parse_status(ttype, text)
    assert st_ is not None and st_.target_type == ttype
    assert st_.format() == text
    assert type(st_).parse(st_.format()) == st_


def test_whole_tables_round_trip():
    for name in ("generic-table-multiline.txt", "mirror-disk-table.txt", "era-table.txt"):
        text = open(os.path.join(GOLDEN, name)).read()
        t = P.parse_table(text)
        assert t.format() == text == str(t)
        assert P.Table.from_target_lines(t.target_lines()) == t
    t = P.parse_table(open(os.path.join(ROOT, "tables", "multi.table")).read())
    assert [type(x.params) for x in t] == [P.LinearParams, P.ZeroParams, P.ErrorParams]
    assert t.size == 3072 and len(t) == 3 and t[1].start == 1024


def test_unknown_targets_pass_through_verbatim():
    t = P.parse_table("0 8 crypt aes-xts-plain64 :64:logon:k 0 /dev/sdb 0 1 allow_discards\n"
                      "8 8 thin-pool  whatever  goes \n")
    assert isinstance(t[0].params, P.RawParams) and t[0].target_type == "crypt"
    assert t[0].params.text == "aes-xts-plain64 :64:logon:k 0 /dev/sdb 0 1 allow_discards"
    assert t.format().split("\n")[1] == "8 8 thin-pool whatever  goes"
    assert t.target_lines()[0].params == t[0].params.text


def test_built_objects_format_as_the_kernel_prints():
    assert str(P.LinearParams("/dev/sdb", 2048)) == "/dev/sdb 2048"
    assert str(P.EraParams("7:1", "7:0", 128)) == "7:1 7:0 128"
    assert str(P.LogWritesParams("7:2", "7:3")) == "7:2 7:3"
    assert str(P.StripedParams(64, [P.Leg("7:1", 0), P.Leg("/dev/sdc", 8)])) == \
        "2 64 7:1 0 /dev/sdc 8"
    assert str(P.ZeroParams()) == str(P.ErrorParams()) == ""
    legs = [P.Leg("7:4"), P.Leg("7:5")]
    assert str(P.MirrorParams(P.CoreLog(1024), legs)) == "core 1 1024 2 7:4 0 7:5 0"
    assert str(P.MirrorParams(P.DiskLog("7:6", 1024, "nosync"), legs,
                              ("handle_errors", "keep_log"))) == \
        "disk 3 7:6 1024 nosync 2 7:4 0 7:5 0 2 handle_errors keep_log"
    assert str(P.MirrorParams(P.UserspaceLog("U-1", "clustered-disk", 1024, device="7:6"),
                              legs, ("handle_errors",))) == \
        "userspace 4 U-1 clustered-disk 7:6 1024 2 7:4 0 7:5 0 1 handle_errors"
    line = P.TableLine(0, 16384, P.MirrorParams(P.CoreLog(1024, "sync"), legs))
    assert line.format() == "0 16384 mirror core 2 1024 sync 2 7:4 0 7:5 0"
    assert line.to_target_line().params == "core 2 1024 sync 2 7:4 0 7:5 0"
    assert P.TableLine(0, 8, P.ZeroParams()).format() == "0 8 zero "


def test_parsed_fields():
    m = P.parse_params("mirror", "userspace 6 UU integrated_flush clustered-core 1024 "
                                 "nosync block_on_error 3 7:4 0 7:5 8 /x 16 1 handle_errors")
    assert m.log == P.UserspaceLog("UU", "clustered-core", 1024, None,
                                   ("nosync", "block_on_error"), True)
    assert [g.offset for g in m.legs] == [0, 8, 16] and m.legs[2].device == "/x"
    assert m.handle_errors and not m.keep_log
    assert str(m).startswith("userspace 6 UU integrated_flush clustered-core 1024 nosync")
    e = P.parse_params("era", "/dev/meta /dev/origin 64")
    assert (e.metadata_dev, e.origin_dev, e.block_size) == ("/dev/meta", "/dev/origin", 64)


def test_as_dict_is_what_table_json_prints():
    assert P.parse_params("linear", "7:7 0").as_dict() == {
        "major": 7, "minor": 7, "device": "7:7", "offset": 0}
    assert P.parse_params("era", "7:1 /dev/loop0 128").as_dict() == {
        "metadata_dev": {"major": 7, "minor": 1, "device": "7:1"},
        "origin_dev": {"device": "/dev/loop0"}, "block_size": 128}
    d = P.parse_params("mirror", "disk 3 7:6 1024 nosync 2 7:4 0 7:5 0 2 handle_errors "
                                 "keep_log").as_dict()
    assert d == {"log": {"type": "disk", "args": ["7:6", "1024", "nosync"],
                         "device": {"major": 7, "minor": 6, "device": "7:6"},
                         "region_size": 1024, "sync": "nosync"},
                 "nr_mirrors": 2,
                 "legs": [{"major": 7, "minor": 4, "device": "7:4", "offset": 0},
                          {"major": 7, "minor": 5, "device": "7:5", "offset": 0}],
                 "features": ["handle_errors", "keep_log"],
                 "handle_errors": True, "keep_log": True}
    for ttype, text in (("era", "7:1 7:0 128"), ("log-writes", "7:2 7:3"),
                        ("mirror", "core 1 1024 2 7:4 0 254:0 0 1 handle_errors")):
        assert S.parse(ttype, text, "table") == P.parse_params(ttype, text).as_dict()


@pytest.mark.parametrize("ttype,text", [
    ("linear", "7:7"), ("linear", "7:7 x"), ("linear", "7:7 -1"), ("linear", "7:7 0 1"),
    ("zero", "x"), ("error", "1"), ("era", "7:1 7:0"), ("era", "7:1 7:0 1k"),
    ("log-writes", "7:2"), ("striped", "2 64 7:1 0"), ("striped", "x 64"),
    ("mirror", "core"), ("mirror", "core 2 1024"), ("mirror", "core 1 1024 2 7:4 0"),
    ("mirror", "core 2 1024 maybe 2 7:4 0 7:5 0"), ("mirror", "disk 1 7:6 2 7:4 0 7:5 0"),
    ("mirror", "weird 1 1024 2 7:4 0 7:5 0"),
    ("mirror", "core 1 1024 2 7:4 0 7:5 0 2 handle_errors"),
    ("mirror", "core 1 1024 2 7:4 0 7:5 0 1 keep_log"),
    ("mirror", "core 1 1024 2 7:4 0 7:5 0 1 fast"),
    ("mirror", "userspace 2 UU clustered-core 2 7:4 0 7:5 0"),
    ("mirror", "userspace 4 UU clustered-core 1024 sometimes 2 7:4 0 7:5 0"),
])
def test_malformed_params_raise(ttype, text):
    with pytest.raises(ParseError):
        P.parse_params(ttype, text)


def test_table_text_errors():
    with pytest.raises(TableError):
        P.parse_table("0 x linear /dev/sdb 0\n")
    with pytest.raises(TableError):
        P.TableLine.parse("# only a comment")
    with pytest.raises(ParseError):
        P.parse_table("0 8 linear /dev/sdb\n")


def test_status_fields():
    st_ = S.parse_status("era", "8 13/2048 5 70")
    assert (st_.metadata_block_size, st_.metadata_used_blocks, st_.metadata_total_blocks,
            st_.current_era, st_.metadata_snap, st_.error) == (8, 13, 2048, 5, 70, False)
    assert S.parse_status("era", "8 13/2048 5 -").metadata_snap is None
    err = S.parse_status("era", "Error")
    assert err.error and err.current_era is None and str(err) == "Error"
    lw = S.parse_status("log-writes", "8 32 logging_disabled")
    assert (lw.logged_entries, lw.highest_allocated_sector, lw.logging_disabled) == \
        (8, 32, True)
    m = S.parse_status("mirror", "3 7:4 7:5 7:7 5/16 1 ADS 3 disk 7:6 F")
    assert m.nr_mirrors == 3 and [g.health for g in m.legs] == list("ADS")
    assert [g.health_name for g in m.legs] == ["alive", "write_error", "sync_error"]
    assert (m.in_sync_regions, m.total_regions, m.in_sync) == (5, 16, False)
    assert (m.log.log_type, m.log.device, m.log.health) == ("disk", "7:6", "F")
    core = S.parse_status("mirror", "2 7:4 7:5 16/16 1 AA 1 core")
    assert core.in_sync and core.log.log_type == "core" and core.log.device is None
    s = S.parse_status("striped", "2 7:1 7:2 1 AD")
    assert [(x.device, x.alive) for x in s.stripes] == [("7:1", True), ("7:2", False)]
    assert str(s) == "2 7:1 7:2 1 AD"
    assert S.parse_status("linear", "") == S.LinearStatus()
    assert S.parse_status("crypt", "whatever") is None


def test_mirror_status_without_log_server():
    """The kernel's ``userspace 1 COM_FAILURE`` log status (libdm reads it too)."""
    text = "2 7:4 7:5 0/16 1 AA userspace 1 COM_FAILURE"
    m = S.parse_status("mirror", text)
    assert m.log.com_failure and m.log.log_type == "userspace" and str(m) == text
    assert S.parse("mirror", text)["log"] == {"type": "userspace", "args": ["COM_FAILURE"],
                                              "com_failure": True}


@pytest.mark.parametrize("ttype,text", [
    ("era", "8 13/2048 5"), ("era", "8 13-2048 5 -"), ("log-writes", "1 2 logging_on"),
    ("striped", "2 7:1 7:2 1 A"), ("striped", "2 7:1 7:2 2 AA"), ("striped", "1 7:1 1 X"),
    ("mirror", "2 7:4 7:5 16/16 1 AA 3 disk 7:6"), ("mirror", "2 7:4 7:5 16/16 1 AA"),
    ("linear", "x"),
])
def test_malformed_status_raises(ttype, text):
    with pytest.raises(ParseError):
        S.parse_status(ttype, text)


def test_status_as_dict_is_what_status_json_prints():
    for line in ("8 13/2048 5 70", "Error"):
        assert S.parse("era", line) == S.parse_status("era", line).as_dict()
    assert S.parse_status("log-writes", "0 0").as_dict() == {
        "logged_entries": 0, "highest_allocated_sector": 0, "logging_enabled": True}
    d = S.parse_status("mirror", "2 7:4 7:5 16/16 1 AA 3 disk 7:6 A").as_dict()
    assert d["log"] == {"type": "disk", "args": ["disk", "7:6", "A"],
                        "device": {"major": 7, "minor": 6, "device": "7:6"},
                        "health": "A", "health_name": "alive"}
    assert d["legs"][0] == {"major": 7, "minor": 4, "device": "7:4", "health": "A",
                            "health_name": "alive"}


# ------------------------------------------------------------------ generated params

_dev = st.one_of(st.builds("{}:{}".format, st.integers(0, 4095), st.integers(0, 1 << 20)),
                 st.from_regex(r"/dev/[a-z][a-z0-9_.-]{0,12}", fullmatch=True))
_sector = st.integers(0, (1 << 64) - 1)
_legs = st.lists(st.builds(P.Leg, _dev, _sector), min_size=1, max_size=9)
_sync = st.sampled_from([None, "sync", "nosync"])
_log = st.one_of(
    st.builds(P.CoreLog, st.integers(1, 1 << 31), _sync),
    st.builds(P.DiskLog, _dev, st.integers(1, 1 << 31), _sync),
    st.builds(P.UserspaceLog, st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,40}", fullmatch=True),
              st.sampled_from(["clustered-core", "clustered-disk"]), st.integers(1, 1 << 31),
              st.one_of(st.none(), _dev),
              st.lists(st.sampled_from(["sync", "nosync", "block_on_error"]), max_size=2),
              st.booleans()))
_features = st.sampled_from([(), ("handle_errors",), ("handle_errors", "keep_log")])
_params = st.one_of(
    st.builds(P.LinearParams, _dev, _sector),
    st.builds(P.StripedParams, st.integers(1, 1 << 20), _legs),
    st.builds(P.EraParams, _dev, _dev, st.integers(8, 1 << 20)),
    st.builds(P.LogWritesParams, _dev, _dev),
    st.builds(P.MirrorParams, _log, _legs, _features),
    st.just(P.ZeroParams()), st.just(P.ErrorParams()))


@settings(max_examples=300, deadline=None)
@given(_params, _sector, st.integers(1, 1 << 40))
def test_generated_params_round_trip(params, start, length):
    text = params.format()
    assert P.parse_params(params.target_type, text) == params
    line = P.TableLine(start, length, params)
    assert P.TableLine.parse(line.format()) == line
    assert P.parse_table(line.format() + "\n").format() == line.format() + "\n"
