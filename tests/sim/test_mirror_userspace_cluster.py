"""The userspace dirty log's identity and clustering: a log is its uuid plus the luid
of one table instance (live and inactive tables of one mirror are two logs), and one
log daemon (``dmctl logd``, one socket: ``DMCTL_LOGD_SOCKET``) serves several simulated hosts as cmirrord's cluster
does: a region several nodes marked is clean only when all have cleared it; a node
that leaves cleanly has cleared its marks, one that crashes leaves the cluster with
its marks kept (its regions stay dirty until it rejoins and writes them, or the next
activation resyncs them); one region at a time is recovered, by one node."""

import os
import struct

import pytest
from click.testing import CliRunner

from dmctl.backend.base import TargetLine as L
from dmctl.backend.sim import SimMapper
from dmctl.cli.ext_logd import logd as logd_cli
from dmctl.formats import mirror_log as F
from dmctl.sim import io as sio
from dmctl.sim.targets.dirty_log import userspace as U
from logd_helpers import logd_logs, logd_start, logd_state, logd_stop
from test_mirror_helpers import make_loops, mk, status_line, target

CORE = "userspace 3 %s clustered-core 1024 2 %s 0 %s 0"
DISK = "userspace 4 %s clustered-disk 7:6 1024 2 %s 0 %s 0"


@pytest.fixture
def loops(mapper, tmp_path):
    return make_loops(mapper, tmp_path)


@pytest.fixture
def sent(monkeypatch):
    """Every request the kernel side sends: (request_type, luid from the request bytes,
    node-independent payload)."""
    out = []
    orig = U.connector_send

    def spy(env, msg):
        luid = struct.unpack_from("=Q", msg, U.CN_MSG.size)[0]     # dm_ulog_request.luid
        cn, req, data = U.unpack_request(msg)
        assert req["luid"] == luid
        out.append((req["request_type"], luid, data))
        return orig(env, msg)
    monkeypatch.setattr(U, "connector_send", spy)
    return out


def logs(mapper):
    return sorted((l["uuid"], l["luid"], l["state"]) for l in logd_logs(mapper))


def kernel_luid(mapper, name, inactive=False):
    def fn(env):
        md = env.device_by_name(name)
        t = (md.get_inactive() if inactive else md.get_live()).targets[0]
        return t.log.luid
    return mapper.run(fn)


# -- 1. uuid + luid across load, resume and clear ---------------------------------------

def test_inactive_table_is_a_second_log_until_resume_or_clear(mapper, loops, sent, sim_dir,
                                                               dmctl):
    a, b, c = loops[4], loops[5], loops[7]
    logd_start(mapper)
    mk(mapper, "mu", "0 16384 mirror " + CORE % ("LVM-PV", a, b))
    l1 = kernel_luid(mapper, "mu")
    assert logs(mapper) == [("LVM-PV", l1, "RESUMED")]
    assert {luid for _, luid, _ in sent} == {l1}

    # pvmove: the new table (other legs, same log uuid) goes to the inactive slot
    del sent[:]
    mapper.load("mu", [L(0, 16384, "mirror", CORE % ("LVM-PV", a, c))])
    l2 = kernel_luid(mapper, "mu", inactive=True)
    assert l2 != l1
    # CTR, GET_REGION_SIZE (and kmirrord's first GET_SYNC_COUNT): all the new luid
    assert [t for t, _, _ in sent][:2] == [U.DM_ULOG_CTR, U.DM_ULOG_GET_REGION_SIZE]
    assert {luid for _, luid, _ in sent} == {l2}
    assert sent[0][2] == b"16384 clustered-core 1024"
    assert logs(mapper) == sorted([("LVM-PV", l1, "RESUMED"), ("LVM-PV", l2, "SUSPENDED")])
    # the live log still answers for the live table
    assert status_line(mapper, "mu") == "0 16384 mirror 2 7:4 7:5 16/16 1 AA 1 clustered-core"

    # the luids are part of the simulated kernel's state: another dmctl process (a new
    # connection to the same sim dir) sees the same ones
    other = SimMapper(str(sim_dir))
    try:
        assert kernel_luid(other, "mu") == l1
        assert kernel_luid(other, "mu", inactive=True) == l2
        assert logs(other) == logs(mapper)
    finally:
        other.close()
    p = dmctl("logd", "status")
    assert p.rc == 0 and sorted(p.out.splitlines()[2:]) == sorted([
        "LVM-PV/%d clustered-core 16/16 RESUMED" % l1,
        "LVM-PV/%d clustered-core 0/16 SUSPENDED" % l2])

    # resume: the old table is suspended, the new one resumes, then the old one's DTR
    del sent[:]
    mapper.resume("mu")
    assert [(t, luid) for t, luid, _ in sent
            if t in (U.DM_ULOG_PRESUSPEND, U.DM_ULOG_POSTSUSPEND, U.DM_ULOG_RESUME,
                     U.DM_ULOG_DTR)] == [
        (U.DM_ULOG_PRESUSPEND, l1), (U.DM_ULOG_POSTSUSPEND, l1),
        (U.DM_ULOG_RESUME, l2), (U.DM_ULOG_DTR, l1)]
    assert all(luid == l2 for t, luid, _ in sent[sent.index((U.DM_ULOG_DTR, l1, b"")) + 1:])
    assert logs(mapper) == [("LVM-PV", l2, "RESUMED")]
    assert kernel_luid(mapper, "mu") == l2
    assert status_line(mapper, "mu") == "0 16384 mirror 2 7:4 7:7 16/16 1 AA 1 clustered-core"

    # a load then clear: the inactive log is created, then destroyed (its DTR)
    del sent[:]
    mapper.load("mu", [L(0, 16384, "mirror", CORE % ("LVM-PV", a, b))])
    l3 = kernel_luid(mapper, "mu", inactive=True)
    assert l3 not in (l1, l2)
    assert logs(mapper) == sorted([("LVM-PV", l2, "RESUMED"), ("LVM-PV", l3, "SUSPENDED")])
    # a second load replaces the inactive table: its log goes, a fourth comes
    mapper.load("mu", [L(0, 16384, "mirror", CORE % ("LVM-PV", a, b))])
    l4 = kernel_luid(mapper, "mu", inactive=True)
    assert l4 not in (l1, l2, l3)
    assert (U.DM_ULOG_DTR, l3, b"") in sent
    assert logs(mapper) == sorted([("LVM-PV", l2, "RESUMED"), ("LVM-PV", l4, "SUSPENDED")])
    del sent[:]
    mapper.clear("mu")
    assert [(t, luid) for t, luid, _ in sent] == [(U.DM_ULOG_DTR, l4)]
    assert logs(mapper) == [("LVM-PV", l2, "RESUMED")]
    mapper.remove("mu")
    assert logd_state(mapper) == []
    logd_stop(mapper)


# -- 2. several hosts, one server ---------------------------------------------------------

@pytest.fixture
def cluster(mapper, loops, tmp_path, monkeypatch):
    """Host A (the test's sim dir) and host B (another sim dir) on the same backing
    files (registered in the same order, so loopN is 7:N on both) and one server."""
    monkeypatch.setenv("DMCTL_LOGD_SOCKET", str(tmp_path / "logd" / "logd.sock"))
    host_b = SimMapper(str(tmp_path / "hostB"))
    host_b.run(lambda env: [env.backing_file(p) for p in loops])
    assert logd_start(mapper)
    assert not logd_start(host_b)                   # the same server
    yield mapper, host_b
    for m in (mapper, host_b):
        try:
            m.remove("mu")
        except Exception:
            pass
    logd_stop(mapper, force=True)
    host_b.close()


def _mark(m, region, clear=False):
    """The mirror's own log on that host: queue a mark (or clear), then flush, as the
    region hash does when a write starts (or its region is clean again)."""
    def fn(env):
        log = target(env, "mu").log
        (log.clear_region if clear else log.mark_region)(region)
        assert log.flush() == 0
    m.run(fn)


def _is_clean(m, region):
    return m.run(lambda env: target(env, "mu").log.is_clean(region))


def _server_copy(m):
    [srv] = [l for l in logd_logs(m) if l["server"]]
    return srv


@pytest.mark.parametrize("table", [CORE, DISK])
def test_region_is_clean_only_when_every_node_cleared_it(cluster, loops, table, tmp_path):
    a_host, b_host = cluster
    a, b, lg = loops[4], loops[5], loops[6]
    mk(a_host, "mu", "0 16384 mirror " + table % ("LVM-CL", a, b))
    mk(b_host, "mu", "0 16384 mirror " + table % ("LVM-CL", a, b))
    st = logd_logs(a_host)
    assert sorted((l["node"], l["state"], l["this_node"]) for l in st) == [
        (1, "RESUMED", True), (2, "RESUMED", False)]
    assert sorted((l["node"], l["this_node"]) for l in logd_logs(b_host)) == [
        (1, False), (2, True)]
    assert {l["uuid"] for l in st} == {"LVM-CL"}
    assert _server_copy(a_host)["node"] == 1
    # B joined A's CPG: its copy came from A's (all in sync, all clean)
    assert all(l["clean"] == set(range(16)) and l["sync_count"] == 16 for l in st)
    kind = "3 clustered-disk 7:6 A" if table is DISK else "1 clustered-core"
    for m in (a_host, b_host):
        assert status_line(m, "mu") == "0 16384 mirror 2 7:4 7:5 16/16 1 AA " + kind

    def disk_clean():
        with open(lg, "rb") as f:
            return F.clean_regions(f.read(8192), 16)

    _mark(a_host, 1)                                     # A writes region 1
    _mark(b_host, 1)                                     # B writes region 1
    for l in logd_logs(a_host):                        # every copy agrees
        assert l["marks"] == [(1, 1), (2, 1)] and 1 not in l["clean"]
    if table is DISK:
        assert disk_clean() == set(range(16)) - {1}
    _mark(a_host, 1, clear=True)                         # A's write completes
    for l in logd_logs(a_host):
        assert l["marks"] == [(2, 1)] and 1 not in l["clean"]
    assert _is_clean(a_host, 1) == 0 and _is_clean(b_host, 1) == 0
    if table is DISK:
        assert disk_clean() == set(range(16)) - {1}
    _mark(b_host, 1, clear=True)                         # B's completes: clean
    for l in logd_logs(b_host):
        assert l["marks"] == [] and l["clean"] == set(range(16))
    assert _is_clean(a_host, 1) == 1 and _is_clean(b_host, 1) == 1
    if table is DISK:
        assert disk_clean() == set(range(16))

    # real writes from both hosts through the shared legs
    d1, d2 = os.urandom(8 * 512), os.urandom(8 * 512)
    sio.write(a_host, "mu", 1024 + 8, d1)
    sio.write(b_host, "mu", 1024 + 16, d2)
    assert sio.read(a_host, "mu", 1024 + 16, 8) == d2
    assert sio.read(b_host, "mu", 1024 + 8, 8) == d1
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()
    assert _server_copy(a_host)["clean"] == set(range(16))

    # a host that leaves: its log goes, the other node's stays (and becomes server)
    b_host.remove("mu")
    assert [(l["node"], l["server"]) for l in logd_logs(a_host)] == [(1, True)]
    a_host.remove("mu")
    assert logd_logs(b_host) == []


def test_a_node_that_suspends_leaves_the_cluster(cluster, loops):
    a_host, b_host = cluster
    for m in (a_host, b_host):
        mk(m, "mu", "0 16384 mirror " + CORE % ("LVM-CL", loops[4], loops[5]))
    _mark(b_host, 3)
    a_host.suspend("mu")
    by_node = {l["node"]: l for l in logd_logs(a_host)}
    assert by_node[1]["state"] == "SUSPENDED" and by_node[2]["server"]
    _mark(b_host, 4)                  # no longer applied to A's copy
    assert by_node[1]["marks"] == [(2, 3)]
    assert {l["node"]: l["marks"] for l in logd_logs(a_host)} == {
        1: [(2, 3)], 2: [(2, 3), (2, 4)]}
    a_host.resume("mu")               # rejoins: B's checkpoint
    assert {l["node"]: (l["marks"], l["clean"]) for l in logd_logs(a_host)}[1] == \
        ([(2, 3), (2, 4)], set(range(16)) - {3, 4})
    _mark(b_host, 3, clear=True)
    _mark(b_host, 4, clear=True)
    assert all(l["clean"] == set(range(16)) for l in logd_logs(a_host))


def test_logd_commands_with_a_shared_socket(cluster, loops, monkeypatch, tmp_path, sim_dir,
                                            dmctl):
    a_host, b_host = cluster
    for m in (a_host, b_host):
        mk(m, "mu", "0 16384 mirror " + CORE % ("LVM-CL", loops[4], loops[5]))
    la, lb = kernel_luid(a_host, "mu"), kernel_luid(b_host, "mu")
    sock = tmp_path / "logd" / "logd.sock"
    assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o600
    assert not os.path.exists(sim_dir / "logd.sock")          # not in the sim dir
    r = CliRunner().invoke(logd_cli, ["start"])
    assert r.exit_code == 1 and "already running" in r.output
    r = CliRunner().invoke(logd_cli, ["status"])
    assert r.output.splitlines()[1] == (
        "# cluster: no corosync, one-node cluster; nodes 1=%s 2=%s; this node 1"
        % (os.path.realpath(sim_dir), os.path.realpath(tmp_path / "hostB")))
    assert sorted(r.output.splitlines()[2:]) == sorted([
        "LVM-CL/%d clustered-core 16/16 RESUMED" % la,
        "LVM-CL/%d clustered-core 16/16 RESUMED" % lb])
    _mark(b_host, 2)
    # host B's view through a real dmctl process
    env = {"DMCTL_SIM_DIR": str(tmp_path / "hostB"), "DMCTL_LOGD_SOCKET": str(sock)}
    p = dmctl("logd", "status", "-v", env=env)
    assert p.rc == 0, p
    assert p.out.splitlines()[1].endswith("; this node 2")
    assert sorted(p.out.splitlines()[2:]) == sorted([
        "LVM-CL/%d clustered-core 16/16 RESUMED node 1 (server) marks 2:2 dirty 2" % la,
        "LVM-CL/%d clustered-core 16/16 RESUMED node 2 marks 2:2 dirty 2" % lb])
    p = dmctl("logd", "stop", env=env)
    assert p.rc == 1 and "2 log(s) still in use" in p.err
    _mark(b_host, 2, clear=True)
    a_host.remove("mu")
    b_host.remove("mu")
    assert dmctl("logd", "stop", env=env).rc == 0
    assert CliRunner().invoke(logd_cli, ["status"]).output == "logd is not running\n"
    assert not sock.exists()
    # without DMCTL_LOGD_SOCKET host A has its own daemon (none running)
    monkeypatch.delenv("DMCTL_LOGD_SOCKET")
    assert logd_state(a_host) is None
    assert CliRunner().invoke(logd_cli, ["start"]).exit_code == 0
    assert os.path.exists(sim_dir / "logd.sock")
    assert logd_state(b_host) is None
    logd_stop(a_host)


def test_hosts_writing_at_once_through_one_server(cluster, loops, tmp_path):
    """dmctl processes of both hosts at the same time: the server's database is locked
    per request, every mark is cleared in the end, the legs agree."""
    import subprocess
    import sys
    from test_mirror_helpers import ROOT
    a_host, b_host = cluster
    for m in (a_host, b_host):
        mk(m, "mu", "0 16384 mirror " + CORE % ("LVM-CL", loops[4], loops[5]))
    a_host.close()                      # let the processes have the sim dirs
    b_host.close()
    dirs = [os.environ["DMCTL_SIM_DIR"], str(tmp_path / "hostB")]
    procs = []
    for i in range(12):
        e = dict(os.environ, DMCTL_SIM_DIR=dirs[i % 2],
                 PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dmctl", "io", "write", "mu", str(i * 1024 + 512),
             "--pattern", str(0x41 + i), "--sectors", "1024"],
            env=e, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    a_host.__init__(dirs[0])
    b_host.__init__(dirs[1])
    st = logd_logs(a_host)
    assert len(st) == 2
    for l in st:
        assert l["marks"] == [] and l["clean"] == set(range(16)) and l["sync_count"] == 16
    for i in range(12):
        want = bytes([0x41 + i]) * 512 * 1024
        for m in (a_host, b_host):
            assert sio.read(m, "mu", i * 1024 + 512, 1024) == want
    with open(loops[4], "rb") as fa, open(loops[5], "rb") as fb:
        assert fa.read() == fb.read()


# -- 3. three hosts, one server: marks, leaving, crashing, recovery ----------------------------

@pytest.fixture
def cluster3(mapper, loops, tmp_path, monkeypatch):
    """Hosts A (the test's sim dir), B and C on the same backing files and one server."""
    monkeypatch.setenv("DMCTL_LOGD_SOCKET", str(tmp_path / "logd" / "logd.sock"))
    hosts = [mapper]
    for name in ("hostB", "hostC"):
        h = SimMapper(str(tmp_path / name))
        h.run(lambda env: [env.backing_file(p) for p in loops])
        hosts.append(h)
    assert logd_start(mapper)
    yield hosts
    for m in hosts:
        try:
            m.remove("mu")
        except Exception:
            pass
    logd_stop(mapper, force=True)
    for h in hosts[1:]:
        h.close()


def _join_all(hosts, table, loops):
    for m in hosts:
        mk(m, "mu", "0 16384 mirror " + table % ("LVM-C3", loops[4], loops[5]))


def _copies(m):
    return {l["node"]: l for l in logd_logs(m)}


def _disk_clean(path, n=16):
    with open(path, "rb") as f:
        return F.clean_regions(f.read(8192), n)


@pytest.mark.parametrize("table", [CORE, DISK])
def test_three_hosts_region_is_clean_only_when_all_are_done(cluster3, loops, table):
    a_host, b_host, c_host = cluster3
    _join_all(cluster3, table, loops)
    assert sorted((l["node"], l["server"]) for l in logd_logs(c_host)) == [
        (1, True), (2, False), (3, False)]
    for m in cluster3:
        _mark(m, 5)
    for l in logd_logs(a_host):
        assert l["marks"] == [(1, 5), (2, 5), (3, 5)] and 5 not in l["clean"]
    # any two finishing is not enough, whatever the order
    _mark(c_host, 5, clear=True)
    _mark(a_host, 5, clear=True)
    for m in cluster3:
        assert _is_clean(m, 5) == 0
    for l in logd_logs(a_host):
        assert l["marks"] == [(2, 5)]
    if table is DISK:
        assert 5 not in _disk_clean(loops[6])
    _mark(b_host, 5, clear=True)
    for m in cluster3:
        assert _is_clean(m, 5) == 1
    assert all(l["marks"] == [] and l["clean"] == set(range(16)) for l in logd_logs(b_host))
    if table is DISK:
        assert _disk_clean(loops[6]) == set(range(16))

    # real writes of all three into one region, each reads the others' data
    data = [os.urandom(8 * 512) for _ in cluster3]
    for i, m in enumerate(cluster3):
        sio.write(m, "mu", 7 * 1024 + 64 * i, data[i])
    for i, m in enumerate(cluster3):
        j = (i + 1) % 3
        assert sio.read(m, "mu", 7 * 1024 + 64 * j, 8) == data[j]
    with open(loops[4], "rb") as fa, open(loops[5], "rb") as fb:
        assert fa.read() == fb.read()
    assert all(l["marks"] == [] and l["clean"] == set(range(16)) for l in logd_logs(a_host))


def test_a_host_that_removes_its_mirror_leaves_no_marks(cluster3, loops):
    """A clean leave: the kernel completes the host's writes (clearing its marks)
    before it suspends, so what the others still have marked decides alone."""
    a_host, b_host, c_host = cluster3
    _join_all(cluster3, CORE, loops)
    _mark(a_host, 2)
    sio.write(c_host, "mu", 2 * 1024, os.urandom(4096))      # marked and cleared
    c_host.remove("mu")
    assert sorted(_copies(a_host)) == [1, 2]
    assert all(l["marks"] == [(1, 2)] for l in logd_logs(a_host))
    _mark(a_host, 2, clear=True)
    assert _is_clean(b_host, 2) == 1


@pytest.mark.parametrize("who", [2, 0])       # host C (node 3), host A (node 1, the server)
def test_a_host_that_crashes_leaves_the_cluster_its_regions_stay_dirty(cluster3, loops, who):
    """``sim crash`` on one host: its logs leave the server (corosync sees the node
    go), a new server takes over if it was the server; its marks stay, as in
    cmirrord, so the regions it was writing stay dirty on disk for the others --
    until it rejoins and writes them again."""
    hosts = list(cluster3)
    _join_all(hosts, DISK, loops)
    gone = hosts[who]
    node = who + 1
    left = [m for m in hosts if m is not gone]
    _mark(gone, 9)                         # a write in flight at the power cut
    _mark(left[0], 9)
    _mark(left[1], 10)
    sio.crash(gone)
    copies = _copies(left[0])
    assert sorted(copies) == sorted(i + 1 for i, m in enumerate(hosts) if m is not gone)
    server = min(copies)
    assert [n for n, l in copies.items() if l["server"]] == [server]
    assert all(sorted(l["marks"]) == sorted([(node, 9), (hosts.index(left[0]) + 1, 9),
                                             (hosts.index(left[1]) + 1, 10)])
               for l in copies.values())
    _mark(left[0], 9, clear=True)
    _mark(left[1], 10, clear=True)
    for m in left:
        assert _is_clean(m, 9) == 0 and _is_clean(m, 10) == 1
    # the new server writes the disk log: 10 clean again, 9 (the crashed node's) dirty
    assert _disk_clean(loops[6]) == set(range(16)) - {9}
    for m in left:
        assert status_line(m, "mu").startswith("0 16384 mirror 2 7:4 7:5 16/16 1 AA")

    # the host comes back (same node id) and writes region 9 again: clean everywhere
    mk(gone, "mu", "0 16384 mirror " + DISK % ("LVM-C3", loops[4], loops[5]))
    assert sorted(_copies(gone)) == [1, 2, 3]
    sio.write(gone, "mu", 9 * 1024, os.urandom(4096))
    for m in hosts:
        assert _is_clean(m, 9) == 1
    assert _disk_clean(loops[6]) == set(range(16))


def test_regions_of_a_crashed_host_are_resynced_at_the_next_activation(cluster3, loops):
    """If the crashed host never writes them again, the cluster's next activation
    reads the disk log and recovers them (the crashed write may be on one leg)."""
    a_host, b_host, c_host = cluster3
    _join_all(cluster3, DISK, loops)
    _mark(c_host, 12)
    with open(loops[5], "r+b") as f:         # the write reached one leg only
        f.seek(12 * 1024 * 512)
        f.write(b"\xee" * 4096)
    sio.crash(c_host)
    a_host.remove("mu")
    b_host.remove("mu")
    assert logd_logs(a_host) == []
    assert 12 not in _disk_clean(loops[6])
    mk(a_host, "mu", "0 16384 mirror " + DISK % ("LVM-C3", loops[4], loops[5]))
    sio.settle(a_host)
    assert status_line(a_host, "mu").startswith("0 16384 mirror 2 7:4 7:5 16/16 1 AA")
    assert _disk_clean(loops[6]) == set(range(16))
    with open(loops[4], "rb") as fa, open(loops[5], "rb") as fb:
        assert fa.read() == fb.read()


class _PowerCut(Exception):
    pass


def test_only_one_host_recovers_a_region_at_a_time(cluster3, loops):
    """cmirrord hands out one region to recover for the whole cluster: while host A
    holds one, B's and C's kmirrord get no work; a host that loses power while it
    holds one does not block the others' recovery."""
    a_host, b_host, c_host = cluster3
    # 2048 regions to resync: each activation recovers only some (bounded work)
    table = "0 16384 mirror userspace 3 LVM-RC clustered-core 8 2 %s 0 %s 0" % (
        loops[4], loops[5])
    for m in cluster3:
        mk(m, "mu", table)

    def grab(m):
        return m.run(lambda env: target(env, "mu").log.get_resync_work())

    def synced(m):
        return _server_copy(m)["sync_count"]

    def a_step(env):
        i, region = target(env, "mu").log.get_resync_work()
        assert i == 1
        before = synced(b_host)
        assert 0 < before < 2048
        for m in (b_host, c_host):              # their own commands' work included
            assert grab(m) == (0, None)
            assert sio.settle(m) == 0
        assert synced(c_host) == before
        return region, before
    region, before = a_host.run(a_step)
    # A's kmirrord asks again, gets the same region back and recovers it (and more)
    assert synced(a_host) > before
    assert region in _server_copy(a_host)["clean"]

    # C takes a region and loses power before it is copied
    def c_step(env):
        i, region = target(env, "mu").log.get_resync_work()
        assert i == 1
        raise _PowerCut(region)
    with pytest.raises(_PowerCut):
        c_host.run(c_step)
    assert grab(a_host) == (0, None)
    sio.crash(c_host)
    assert sorted(_copies(a_host)) == [1, 2]
    i, _ = grab(b_host)
    assert i == 1
