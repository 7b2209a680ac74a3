"""The userspace dirty log: the kernel side's requests (struct dm_ulog_request on the
connector) and the simulated cmirrord (``dmctl logd``) serving clustered-core and
clustered-disk logs."""

import errno
import os
import struct

import pytest

from dmctl.errors import DmError
from dmctl.formats import mirror_log as F
from dmctl.sim import io as sio
from dmctl.sim.targets.dirty_log import userspace as U
from logd_helpers import logd_start, logd_state, logd_stop
from test_mirror_helpers import golden, make_loops, mk, status_line


@pytest.fixture
def loops(mapper, tmp_path):
    return make_loops(mapper, tmp_path)


@pytest.fixture
def logd(mapper):
    assert logd_start(mapper)
    yield
    logd_stop(mapper, force=True)


def test_struct_layout_is_the_kernels():
    msg = U.pack_request(0x1122334455667788, "LVM-abc", 7, U.DM_ULOG_MARK_REGION,
                         struct.pack("=QQ", 3, 4))
    assert len(msg) == 20 + 160 + 16
    idx, val, seq, ack, ln, flags = struct.unpack_from("=IIIIHH", msg)
    assert (idx, val, seq, ack, ln, flags) == (7, 1, 7, 0, 176, 0)
    req = msg[20:]
    assert struct.unpack_from("=Q", req, 0)[0] == 0x1122334455667788
    assert req[8:8 + 8] == b"LVM-abc\0"
    assert struct.unpack_from("=IiIII", req, 140) == (3, 0, 7, 10, 16)
    cn, r, data = U.unpack_request(msg)
    assert r["uuid"] == "LVM-abc" and r["request_type"] == 10 and data == struct.pack("=QQ", 3, 4)


def test_without_a_server_the_ctr_fails_as_the_kernels(mapper, loops):
    with pytest.raises(DmError) as ei:
        mk(mapper, "mu", "0 16384 mirror userspace 3 MIRROR-UUID-USERLOG clustered-core 1024 2 %s 0 %s 0"
           % (loops[4], loops[5]))
    assert ei.value.detail.splitlines() == golden("mirror-userspace-core-create.dmesg.txt").splitlines()
    assert ei.value.errno == errno.EINVAL


def test_clustered_disk_log(mapper, loops, logd):
    a, b, lg = loops[4], loops[5], loops[6]
    mk(mapper, "mu", "0 16384 mirror userspace 4 MIRROR-UUID-USERLOG clustered-disk 7:6 1024 "
       "2 %s 0 %s 0 1 handle_errors" % (a, b))
    # cmirrord's INFO; the kernel's TABLE (args as given, after the length)
    assert status_line(mapper, "mu") == "0 16384 mirror 2 7:4 7:5 16/16 1 AA 3 clustered-disk 7:6 A"
    assert mapper.table("mu")[1][0].params == \
        "userspace 4 MIRROR-UUID-USERLOG clustered-disk 7:6 1024 2 7:4 0 7:5 0 1 handle_errors"
    # the CTR reply names the log device: the kernel takes a reference (deps last)
    assert mapper.deps("mu")[1] == [(7, 5), (7, 4), (7, 6)]
    assert mapper.info("mu").event_nr == 1
    data = os.urandom(3 * 4096)
    sio.write(mapper, "mu", 100, data)
    assert sio.read(mapper, "mu", 100, 24) == data
    with open(lg, "rb") as f:
        buf = f.read(8192)
    # the server wrote the kernel's format: header, clean bits at 1024
    assert F.unpack_header(buf) == (F.MIRROR_MAGIC, 2, 16)
    assert F.clean_regions(buf, 16) == set(range(16))
    assert buf[1026:] == bytes(8192 - 1026)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
    assert logd_stop(mapper) == 1                  # still in use: refused
    mapper.remove("mu")
    assert logd_state(mapper) == []


def test_request_sequence_of_a_write(mapper, loops, logd, monkeypatch):
    mk(mapper, "mu", "0 16384 mirror userspace 3 MIRROR-UUID-CORE clustered-core 1024 2 %s 0 %s 0"
       % (loops[4], loops[5]))
    sent = []
    orig = U.connector_send

    def spy(env, msg):
        cn, req, data = U.unpack_request(msg)
        sent.append((req["request_type"], [x for (x,) in struct.iter_unpack("=Q", data)]
                     if req["request_type"] in (10, 11) else None))
        return orig(env, msg)
    monkeypatch.setattr(U, "connector_send", spy)
    sio.write(mapper, "mu", 2 * 1024, bytes(2048 * 512))      # regions 2 and 3
    types = [t for t, _ in sent]
    # marks queued by dm_rh_inc_pending, sent by flush: MARK (LIFO) then FLUSH; the
    # clears at the next update_states, then a FLUSH again
    i = types.index(U.DM_ULOG_MARK_REGION)
    assert sent[i] == (U.DM_ULOG_MARK_REGION, [3, 2])
    assert types[i + 1] == U.DM_ULOG_FLUSH
    j = types.index(U.DM_ULOG_CLEAR_REGION)
    # the clean list (3 then 2, list_add) is cleared in that order, queued LIFO again
    assert j > i and sent[j][1] == [2, 3] and types[j + 1] == U.DM_ULOG_FLUSH


def test_integrated_flush_carries_the_marks(mapper, loops, logd, monkeypatch):
    mk(mapper, "mu", "0 16384 mirror userspace 4 MIRROR-UUID-CORE integrated_flush clustered-core 1024 "
       "2 %s 0 %s 0" % (loops[4], loops[5]))
    assert mapper.table("mu")[1][0].params == \
        "userspace 4 MIRROR-UUID-CORE integrated_flush clustered-core 1024 2 7:4 0 7:5 0"
    sent = []
    orig = U.connector_send

    def spy(env, msg):
        cn, req, data = U.unpack_request(msg)
        sent.append((req["request_type"], len(data)))
        return orig(env, msg)
    monkeypatch.setattr(U, "connector_send", spy)
    sio.write(mapper, "mu", 0, bytes(512))
    assert (U.DM_ULOG_MARK_REGION, 8) not in sent
    assert (U.DM_ULOG_FLUSH, 8) in sent


def test_server_errors_and_loss(mapper, loops, logd):
    with pytest.raises(DmError) as ei:
        mk(mapper, "bad", "0 16384 mirror userspace 3 U1 clustered-frob 1024 2 %s 0 %s 0"
           % (loops[4], loops[5]))
    assert ei.value.detail.splitlines() == [
        "device-mapper: dm-log-userspace: Userspace log server failed to create log",
        "device-mapper: table: 254:0: mirror: Error creating mirror dirty log (-EINVAL)",
        "device-mapper: ioctl: error adding target to table"]
    mk(mapper, "mu", "0 16384 mirror userspace 3 U2 clustered-core 1024 2 %s 0 %s 0"
       % (loops[4], loops[5]))
    logd_stop(mapper, force=True)
    assert status_line(mapper, "mu") == "0 16384 mirror 2 7:4 7:5 0/16 1 AA userspace 1 COM_FAILURE"


def test_write_to_a_region_the_cluster_must_recover_first(mapper, loops, logd):
    """is_remote_recovering: cmirrord answers 1 for an out-of-sync region and moves it
    to the front of the recovery queue; the kernel requeues the write until then."""
    a, b = loops[4], loops[5]
    with open(a, "r+b") as f:
        f.write(os.urandom(8 << 20))
    mk(mapper, "mu", "0 16384 mirror userspace 3 U3 clustered-core 16 2 %s 0 %s 0" % (a, b))
    done = int(mapper.status("mu")[1][0].params.split()[3].split("/")[0])
    assert done < 1000
    data = os.urandom(8 * 512)
    sio.write(mapper, "mu", 1000 * 16 + 4, data)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        fa.seek(1000 * 16 * 512)
        fb.seek(1000 * 16 * 512)
        assert fa.read(16 * 512) == fb.read(16 * 512)        # recovered, then written to both
    sio.settle(mapper)
    assert mapper.status("mu")[1][0].params == "2 7:4 7:5 1024/1024 1 AA 1 clustered-core"
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()


def test_failed_ctr_destroys_the_server_log(mapper, loops, logd):
    with pytest.raises(DmError) as ei:
        mk(mapper, "mu", "0 16384 mirror userspace 3 U4 clustered-core 1024 1 %s 0" % loops[4])
    assert "Invalid number of mirrors" in ei.value.detail
    assert logd_state(mapper) == []


def test_logd_command(mapper, loops):
    from click.testing import CliRunner
    from dmctl.cli.ext_logd import logd
    r = CliRunner().invoke(logd, ["status"])
    assert r.output == "logd is not running\n" and r.exit_code == 3
    r = CliRunner().invoke(logd, ["start"])
    assert r.exit_code == 0 and r.output.startswith("dmctl logd started (pid ")
    r = CliRunner().invoke(logd, ["start"])          # a second one: said so, exit 1
    assert r.exit_code == 1 and "already running" in r.output
    mk(mapper, "mu", "0 16384 mirror userspace 3 U5 clustered-core 1024 2 %s 0 %s 0" % (loops[4], loops[5]))
    r = CliRunner().invoke(logd, ["status"])
    head, line = r.output.splitlines()[:2], r.output.splitlines()[2:]
    assert head[0] == "# logd: unix %s" % os.path.join(os.path.abspath(mapper.store.dir),
                                                       "logd.sock")
    assert head[1].startswith("# cluster: no corosync, one-node cluster; nodes 1=")
    assert len(line) == 1 and line[0].startswith("U5/") and \
        line[0].endswith(" clustered-core 16/16 RESUMED")
    r = CliRunner().invoke(logd, ["stop"])
    assert r.exit_code == 1 and "1 log(s) still in use" in r.output
    mapper.remove("mu")
    assert CliRunner().invoke(logd, ["stop"]).exit_code == 0
    assert logd_state(mapper) is None
