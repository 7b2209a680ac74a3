"""``dmctl logd`` nodes keeping one clustered-disk log coherent through corosync's CPG
(issue 12 item 4; cluster-log.md §2-§4, §6).

Three network namespaces on a bridge (in a fourth namespace, nothing in the initial
one), one corosync 3 per namespace (token 1000 ms, its own /run and state dir), one
``dmctl logd`` per namespace serving one simulated host (its own sim dir, its own
socket); the three hosts share the leg and log files.  As root only; corosync comes
with ``scripts/test``.  In CI (``CI=true``) a missing piece fails the test instead of
skipping it.
"""

import os
import subprocess
import sys
import time

import pytest

from dmctl.backend.sim import SimMapper
from dmctl.logd import client
from dmctl.sim import io as sio
from corosync_net import Net, missing
from test_mirror_helpers import make_loops, mk, status_line, target
from test_mirror_userspace_cluster import _disk_clean, _mark

DISK = "userspace 4 %s clustered-disk 7:6 1024 2 %s 0 %s 0"
UUID = "LVM-CPG3"
N = 3


def _missing(why):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("needed in CI: " + why)
    pytest.skip(why)


def _need():
    why = missing()
    if why:
        _missing(why)


def _status(m):
    return client.status(os.path.join(m.store.dir, "logd.sock"))


def _wait(cond, timeout=30.0, what=""):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out: " + what)


@pytest.fixture
def cpg_cluster(mapper, tmp_path, monkeypatch):
    _need()
    monkeypatch.delenv("DMCTL_LOGD_SOCKET", raising=False)
    net = Net(str(tmp_path / "cl"))
    hosts = [mapper]
    try:
        net.setup()
        t0 = time.monotonic()
        for i in range(1, N + 1):
            net.start_corosync(i)
        net.wait_members(1, N)
        print("corosync: 3 nodes formed in %.2f s" % (time.monotonic() - t0))
        loops = make_loops(mapper, tmp_path)
        for name in ("hostB", "hostC"):
            h = SimMapper(str(tmp_path / name))
            h.run(lambda env: [env.backing_file(p) for p in loops])
            hosts.append(h)
        for i, h in enumerate(hosts, 1):
            st = net.start_logd(i, h.store.dir)
            assert st["cluster"]["engine"] == "corosync" and st["cluster"]["this_node"] == i
        yield net, hosts, loops
    finally:
        for h in hosts:
            try:
                h.remove("mu")
            except Exception:
                pass
        net.teardown()
        for h in hosts[1:]:
            h.close()


@pytest.mark.parametrize("victim", [3, 1], ids=["member-crash", "server-crash"])
def test_three_corosync_nodes_share_one_clustered_disk_log(cpg_cluster, capsys, victim):
    net, hosts, loops = cpg_cluster
    a_host, b_host, c_host = hosts
    table = "0 16384 mirror " + DISK % (UUID, loops[4], loops[5])
    for h in hosts:
        mk(h, "mu", table)
    # every daemon has one copy (its node's), the group has all three, node 1 serves
    for i, h in enumerate(hosts, 1):
        st = _status(h)
        [l] = st["logs"]
        assert (l["node"], l["members"], l["server"]) == (i, [1, 2, 3], i == 1)
        assert l["sync_count"] == 16 and l["clean"] == list(range(16))
        assert status_line(h, "mu") == "0 16384 mirror 2 7:4 7:5 16/16 1 AA 3 clustered-disk 7:6 A"
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "dmctl"), "logd",
                          "status", "--socket", os.path.join(b_host.store.dir, "logd.sock")],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    assert "# cluster: corosync CPG; this node 2; groups %s=1,2,3" % UUID in out
    with capsys.disabled():
        print("\n" + out)
    # the joiners got their state by checkpoint
    for i in (2, 3):
        assert "checkpoint from node" in net.log(i, "logd.stderr")

    # a region marked on all three stays dirty on disk until the last host clears it
    for h in hosts:
        _mark(h, 5)
    for h in hosts:
        [l] = _status(h)["logs"]
        assert l["marks"] == [[1, 5], [2, 5], [3, 5]] and 5 not in l["clean"]
    assert 5 not in _disk_clean(loops[6])
    _mark(c_host, 5, clear=True)
    _mark(a_host, 5, clear=True)
    assert 5 not in _disk_clean(loops[6])
    for h in hosts:
        assert h.run(lambda env: target(env, "mu").log.is_clean(5)) == 0
    _mark(b_host, 5, clear=True)
    _mark(b_host, 6)                 # a flush of B's writes the disk log again
    _mark(b_host, 6, clear=True)
    _mark(b_host, 7)
    assert _disk_clean(loops[6]) == set(range(16)) - {7}
    _mark(b_host, 7, clear=True)
    for h in hosts:
        assert h.run(lambda env: target(env, "mu").log.is_clean(5)) == 1

    # real writes from all three through the shared legs
    data = [os.urandom(8 * 512) for _ in hosts]
    for i, h in enumerate(hosts):
        sio.write(h, "mu", 3 * 1024 + 64 * i, data[i])
    # each host reads what the previous one wrote
    assert [sio.read(hosts[(i + 1) % N], "mu", 3 * 1024 + 64 * i, 8) for i in range(N)] == data

    # kill -9 of the victim's corosync: the other two get the confchg and keep writing
    # (victim 1 is the server: a new one takes over, and it serves again on its return)
    v, vh = victim, hosts[victim - 1]
    rest = [h for h in hosts if h is not vh]
    ids = [i for i in range(1, N + 1) if i != v]
    ckpts = net.log(v, "logd.stderr").count("checkpoint from node")
    t_kill = time.monotonic()
    net.kill9_corosync(v)
    pauses, t_last = [], time.monotonic()
    blob = os.urandom(8 * 512)
    deadline = t_kill + 30
    while time.monotonic() < deadline:
        sio.write(rest[len(pauses) % 2], "mu", 4 * 1024, blob)
        now = time.monotonic()
        pauses.append(now - t_last)
        t_last = now
        if all(_status(h)["logs"][0]["members"] == ids for h in rest) and now - t_kill > 1.0:
            break
    t_confchg = t_last - t_kill
    for i in range(6):
        sio.write(rest[i % 2], "mu", 4 * 1024 + 8, blob)
    assert all(_status(h)["logs"][0]["members"] == ids for h in rest)
    assert [_status(h)["logs"][0]["server"] for h in rest] == [True, False]
    stv = _status(vh)
    assert stv["cluster"]["corosync"] is False
    # the victim without its corosync does not answer what needs the cluster: a write
    # there waits (the kernel would retry) and completes once its corosync is back
    dmctl = os.path.join(os.path.dirname(sys.executable), "dmctl")
    waiting = subprocess.Popen([dmctl, "io", "write", "mu", str(6 * 1024), "--pattern", "0x5a",
                                "--sectors", "8"],
                               env=dict(os.environ, DMCTL_SIM_DIR=vh.store.dir),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    net.extra.append(waiting)
    _wait(lambda: _status(vh)["requests"] > stv["requests"] + 1, what="the victim asked")
    assert waiting.poll() is None
    with capsys.disabled():
        print("\nCPG: node %d's corosync killed: nodes %s saw the confchg after %.2f s; "
              "longest write pause %.2f s over %d writes"
              % (v, ids, t_confchg, max(pauses), len(pauses) + 6))

    # the victim's corosync again: its daemon rejoins and takes a checkpoint
    t0 = time.monotonic()
    net.start_corosync(v)
    net.wait_members(ids[0], 3)
    _wait(lambda: _status(vh)["cluster"]["corosync"] and
          _status(vh)["logs"][0]["members"] == [1, 2, 3] and
          net.log(v, "logd.stderr").count("checkpoint from node") > ckpts,
          what="node %d rejoins with a checkpoint" % v)
    with capsys.disabled():
        print("CPG: node %d back in the group with a checkpoint %.2f s after its corosync "
              "started" % (v, time.monotonic() - t0))
    out, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, out
    assert sio.read(rest[0], "mu", 6 * 1024, 8) == b"\x5a" * 4096
    d3 = os.urandom(8 * 512)
    sio.write(vh, "mu", 5 * 1024, d3)
    assert sio.read(rest[1], "mu", 5 * 1024, 8) == d3
    copies = [_status(h)["logs"][0] for h in hosts]
    assert [c["server"] for c in copies] == [True, False, False]
    assert all(c["marks"] == [] and c["clean"] == list(range(16)) for c in copies)
    assert _disk_clean(loops[6]) == set(range(16))
    with open(loops[4], "rb") as fa, open(loops[5], "rb") as fb:
        assert fa.read() == fb.read()
    # leaving: a removed mirror leaves the group, the others keep it
    hosts[2].remove("mu")
    assert _status(a_host)["logs"][0]["members"] == [1, 2]
