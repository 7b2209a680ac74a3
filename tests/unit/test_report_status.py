"""Target status/table parsers behind `status --json` / `table --json`, on the golden
status lines captured from Linux 6.1."""

import pytest

from dmctl.libdm import status as S
from test_report_support import golden


def _line(name):
    text = golden(name)
    if text is None:
        pytest.skip("no golden %s" % name)
    start, length, ttype, params = (text.splitlines()[-1].split(" ", 3) + [""])[:4]
    return ttype, params


@pytest.mark.parametrize("name", [
    "era-status.txt", "era-status-after-write-1.txt", "era-status-after-checkpoint.txt",
    "era-status-after-take-metadata-snap.txt", "era-status-after-drop-metadata-snap.txt",
    "lw-status-initial.txt", "lw-status-after-mark.txt", "lw-status-after-write-2.txt",
    "mirror-core-status-insync.txt", "mirror-disk-status-insync.txt",
    "mirror-disk-status-immediate.txt", "mirror-core-nosync-status.txt",
    "mirror-disk-3legs-status.txt", "mirror-errleg-status-after-write.txt",
    "mirror-core-sync-he-status.txt",
])
def test_golden_status_lines_parse(name):
    ttype, params = _line(name)
    assert isinstance(S.parse(ttype, params, "status"), dict)


@pytest.mark.parametrize("name", [
    "era-table.txt", "lw-table.txt", "mirror-core-table.txt", "mirror-disk-table.txt",
    "mirror-core-nosync-table.txt", "mirror-core-sync-he-table.txt",
    "mirror-disk-he-table.txt", "mirror-disk-nosync-he-keeplog-table.txt",
    "mirror-disk-3legs-table.txt", "mirror-errleg-table.txt",
])
def test_golden_table_lines_parse(name):
    ttype, params = _line(name)
    assert isinstance(S.parse(ttype, params, "table"), dict)


def test_era_fields():
    assert S.parse("era", "8 13/2048 5 70") == {
        "metadata_block_size": 8, "metadata_used_blocks": 13, "metadata_total_blocks": 2048,
        "current_era": 5, "metadata_snap": 70}
    assert S.parse("era", "Error") == {"error": True}


def test_log_writes_fields():
    assert S.parse("log-writes", "8 32 logging_disabled") == {
        "logged_entries": 8, "highest_allocated_sector": 32, "logging_enabled": False}


def test_mirror_fields():
    d = S.parse("mirror", "2 7:4 254:0 0/16 1 AS 1 core")
    assert d["legs"][1]["health_name"] == "sync_error"
    assert d["in_sync"] is False and d["log"]["type"] == "core"
    d = S.parse("mirror", "userspace 2 253:3 253:4 512/512 1 AA 3 clustered-disk 253:2 A")
    assert d["log"]["device"]["minor"] == 2
    t = S.parse("mirror", "core 2 1024 nosync 2 7:4 0 7:5 0 1 handle_errors", "table")
    assert t["log"]["region_size"] == 1024 and t["log"]["sync"] == "nosync"
    assert t["handle_errors"] and not t["keep_log"]


def test_unknown_and_malformed():
    assert S.parse("striped", "x") is None
    with pytest.raises(S.StatusParseError):
        S.parse("era", "8 10 1 -")
    with pytest.raises(S.StatusParseError):
        S.parse("mirror", "2 7:4 7:5 16/16 1 A 1 core")
    assert "parse_error" in S.parse_or_none("linear", "junk", "status")
