"""cmirrord's cluster messages as ``dmctl.logd.cluster`` packs them (cluster-log.md §2.4,
§2.5): the 184-byte ``clog_request`` header and the checkpoint payload."""

import struct

import pytest

from dmctl.constants import DM_ULOG_MARK_REGION, DM_ULOG_RESPONSE
from dmctl.formats import mirror_log as F
from dmctl.logd import cluster as CL
from dmctl.logd import cpg
from dmctl.logd.state import ClusteredLog


def test_clog_request_layout():
    req = {"uuid": "LVM-abc", "version": 3, "error": 0, "seq": 77,
           "request_type": DM_ULOG_MARK_REGION, "luid": 0xffff888000000400}
    msg = CL.pack_clog(2, req, struct.pack("<QQ", 5, 9), pit_server=1)
    assert CL.CLOG_HEADER_SIZE == 184 and len(msg) == 184 + 16
    assert struct.unpack_from("<QQII", msg) == (5, 5, 2, 1)
    luid, uuid = struct.unpack_from("<Q129s", msg, 24)
    assert luid == 0 and uuid.rstrip(b"\0") == b"LVM-abc"       # luid is 0 on the wire
    assert struct.unpack_from("<IiIII", msg, 24 + 8 + 132) == (3, 0, 77, DM_ULOG_MARK_REGION, 16)
    originator, pit, r, data = CL.unpack_clog(msg)
    assert (originator, pit, r["seq"], r["request_type"], data) == \
        (2, 1, 77, DM_ULOG_MARK_REGION, struct.pack("<QQ", 5, 9))
    resp = CL.pack_clog(2, r, b"\1" * 8, request_type=DM_ULOG_MARK_REGION | DM_ULOG_RESPONSE,
                        error=-5)
    assert CL.unpack_clog(resp)[2]["error"] == -5


@pytest.mark.parametrize("bad", [b"", b"\5" * 100,
                                 struct.pack("<QQII", 4, 4, 1, 0) + bytes(160),
                                 struct.pack("<QQII", 5, 5 << 56, 1, 0) + bytes(160),
                                 struct.pack("<QQII", 5, 5, 1, 0) + bytes(156) + b"\xff" * 4])
def test_garbage_is_refused(bad):
    with pytest.raises(ValueError):
        CL.unpack_clog(bad)


def test_checkpoint_round_trip_and_cmirrord_layout():
    lc = ClusteredLog("LVM-abc", 1, False, None, None, 1024, 40, 0, False, node=1)
    for i in (0, 3, 33, 39):
        F.set_bit(lc.sync_bits, i)
    for i in (3, 39):
        F.set_bit(lc.clean_bits, i)
    lc.recovering_region, lc.recoverer = 7, 2
    lc.mark_list = [(1, 5), (3, 5)]
    cp = CL.pack_checkpoint(lc)
    n = (40 // 32 + 1) * 4                      # cmirrord's bitmap size, u32 words
    assert cp[2 * n:2 * n + 64].rstrip(b"\0") == b"7 2"
    assert cp[2 * n + 64:2 * n + 72] == CL.MARKS_MAGIC
    got = CL._Checkpoint(cp, 40)
    assert [i for i in range(40) if F.test_bit(got.sync_bits, i)] == [0, 3, 33, 39]
    assert [i for i in range(40) if F.test_bit(got.clean_bits, i)] == [3, 39]
    assert (got.recovering_region, got.recoverer, got.mark_list) == (7, 2, [(1, 5), (3, 5)])
    # idle recovery as cmirrord prints it (-1 unsigned), no mark trailer (a cmirrord node)
    lc.recovering_region = -1
    plain = CL.pack_checkpoint(lc)[:2 * n + 64]
    assert plain[2 * n:].rstrip(b"\0") == b"18446744073709551615 4294967295"
    got = CL._Checkpoint(plain, 40)
    assert (got.recovering_region, got.mark_list) == (-1, [])
    with pytest.raises(ValueError):
        CL._Checkpoint(plain[:n], 40)


def test_group_name_counts_the_nul():
    n = cpg.group_name("LVM-abc")
    assert n.length == 8 and n.value == b"LVM-abc"


def test_no_corosync_is_a_clear_error(monkeypatch):
    e = cpg.CpgError("cpg_initialize", cpg.CS_ERR_LIBRARY)
    assert "corosync is not running" in str(e) and e.code == 2
