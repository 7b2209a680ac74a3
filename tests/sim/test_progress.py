"""Progress bars on long work (`dmctl io copy`, `dmctl sim settle`, `dmctl replay-log
--replay`): drawn on stderr when it is a terminal (a pseudo-terminal here), nothing
when it is not or under --quiet, and the command's result the same either way."""

import os
import subprocess
import sys

from dmctl.formats import log_writes as lw
from testlib import ROOT

S = 512


def run(args, sim_dir, tty=True, env=None):
    """``python -m dmctl ARGS`` with stderr on a pty slave (tty) or a pipe:
    (exit status, stdout bytes, stderr bytes)."""
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             DMCTL_SIM_DIR=str(sim_dir), DMCTL_BACKEND="sim")
    e.pop("TQDM_DISABLE", None)
    e.update(env or {})
    cmd = [sys.executable, "-m", "dmctl"] + [str(a) for a in args]
    if not tty:
        p = subprocess.run(cmd, capture_output=True, env=e, cwd=ROOT)
        return p.returncode, p.stdout, p.stderr
    master, slave = os.openpty()
    try:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=slave, env=e, cwd=ROOT)
    finally:
        os.close(slave)
    err = b""
    try:
        while True:                 # drain the pty while the command runs
            try:
                chunk = os.read(master, 65536)
            except OSError:         # EIO: every slave fd is closed
                break
            if not chunk:
                break
            err += chunk
    finally:
        os.close(master)
    out = p.stdout.read()
    p.stdout.close()
    return p.wait(), out, err


def dm(sim_dir, *args):
    rc, out, err = run(args, sim_dir, tty=False)
    assert rc == 0, err
    return out.decode()


def test_io_copy_progress_on_a_terminal_only(tmp_path):
    sim = tmp_path / "sim"
    disk = tmp_path / "disk"
    disk.write_bytes(b"")
    os.truncate(disk, 8 << 20)
    dm(sim, "create", "lin", "--table", "0 16384 linear %s 0" % disk)
    img = tmp_path / "img"
    data = os.urandom(4 << 20)
    img.write_bytes(data)
    rc, out, err = run(["io", "copy", "lin", "--from", img, "--bs", "65536"], sim)
    assert rc == 0 and out == b"", err
    assert b"copying" in err and b"%" in err and b"4.00M" in err, err
    assert disk.read_bytes()[:4 << 20] == data
    os.truncate(disk, 0)
    os.truncate(disk, 8 << 20)
    # not a terminal: nothing on stderr, the same copy
    assert run(["io", "copy", "lin", "--from", img, "--bs", "65536"], sim, tty=False) == (
        0, b"", b"")
    assert disk.read_bytes()[:4 << 20] == data
    # --quiet / -q on a terminal: nothing either
    for q in ("--quiet", "-q"):
        assert run(["io", "copy", "lin", "--from", img, q], sim) == (0, b"", b"")
    # an error is printed on a line of its own, the bar erased before it
    rc, out, err = run(["io", "copy", "lin", "--from", img, "--seek", "15000"], sim)
    last = err.replace(b"\r\n", b"\n").split(b"\r")[-1]      # what is left on the screen
    assert rc == 1 and last.startswith(b"dmctl io: write at sector") and last.endswith(b"\n"), err


def _resyncing_mirror(tmp_path, name):
    sim = tmp_path / name
    legs = []
    for leg in ("a", "b"):
        p = tmp_path / ("%s-%s" % (name, leg))
        p.write_bytes(b"")
        os.truncate(p, 8 << 20)
        legs.append(p)
    # 1024 regions of 16 sectors: a command recovers only a few of them
    dm(sim, "create", "m", "--table", "0 16384 mirror core 1 16 2 %s 0 %s 0" % tuple(legs))
    assert dm(sim, "status", "m").split()[6] != "1024/1024"
    return sim


def test_sim_settle_progress_in_regions_and_the_same_work(tmp_path):
    tty_sim = _resyncing_mirror(tmp_path, "tty")
    pipe_sim = _resyncing_mirror(tmp_path, "pipe")
    rc, out, err = run(["sim", "settle"], tty_sim)
    assert rc == 0 and b"settling" in err and b"%" in err and b"region" in err, err
    assert (rc, out) == run(["sim", "settle"], pipe_sim, tty=False)[:2]
    assert b"step(s) of background work done" in out
    assert dm(tty_sim, "status", "m") == dm(pipe_sim, "status", "m")
    assert dm(tty_sim, "status", "m").split()[6] == "1024/1024"
    # not a terminal, or --quiet: nothing on stderr
    quiet_sim = _resyncing_mirror(tmp_path, "quiet")
    rc, out2, err = run(["sim", "settle", "-q"], quiet_sim)
    assert (rc, out2, err) == (0, out, b"")
    again = _resyncing_mirror(tmp_path, "again")
    assert run(["sim", "settle"], again, tty=False) == (0, out, b"")


def test_sim_settle_progress_hook_counts_regions(mapper, tmp_path):
    from dmctl.sim import io as sio
    from test_mirror_helpers import make_loops, mk
    a, b = make_loops(mapper, tmp_path)[4:6]
    mk(mapper, "m", "0 16384 mirror core 1 16 2 %s 0 %s 0" % (a, b))
    calls = []
    steps = sio.settle(mapper, progress=lambda n, r: calls.append((n, r)), chunk=100)
    # one region recovered per step, from what was left to none
    assert calls[0] == (0, steps) and calls[-1] == (steps, 0) and steps > 500
    assert mapper.status("m")[1][0].params.split()[3] == "1024/1024"
    assert [n for n, _ in calls] == sorted(n for n, _ in calls)
    assert [r for _, r in calls] == sorted((r for _, r in calls), reverse=True)
    assert all(n - p <= 100 for (n, _), (p, _) in zip(calls[1:], calls))
    assert len(calls) >= steps // 100 + 1


def _log(tmp_path, n):
    p = tmp_path / "log"
    p.write_bytes(lw.pack_log([(i % 64, 1, 0, bytes([i % 251]) * S) for i in range(n)]))
    return p


def test_replay_log_progress_on_a_terminal_only(tmp_path):
    log = _log(tmp_path, 5000)
    imgs = []
    for name in ("tty", "pipe", "off"):
        p = tmp_path / name
        p.write_bytes(bytes(64 * S))
        imgs.append(p)
    rc, out, err = run(["replay-log", "--log", log, "--replay", imgs[0]], tmp_path / "s")
    assert rc == 0 and out == b"", err
    assert b"replay-log" in err and b"%" in err and b"entry" in err and b"/5000" in err, err
    # byte-exact outputs when stderr is not a terminal, and the same replay
    assert run(["replay-log", "--log", log, "--replay", imgs[1]], tmp_path / "s",
               tty=False) == (0, b"", b"")
    assert imgs[0].read_bytes() == imgs[1].read_bytes() != bytes(64 * S)
    assert run(["replay-log", "--log", log, "--replay", imgs[2], "--no-progress"],
               tmp_path / "s") == (0, b"", b"")
    # what is not a replay draws nothing, even on a terminal
    assert run(["replay-log", "--log", log, "--num-entries"], tmp_path / "s") == (
        0, b"5000\n", b"")


def test_no_progress_library_unless_a_bar_is_drawn(tmp_path):
    """Without a terminal, copy/settle/replay-log never import tqdm."""
    log = _log(tmp_path, 10)
    img = tmp_path / "img"
    img.write_bytes(bytes(64 * S))
    disk = tmp_path / "disk"
    disk.write_bytes(bytes(1 << 20))
    code = ("import sys; from dmctl.cli.main import main; rc = main(sys.argv[1:]);"
            "sys.stdout.flush(); print('RC', rc, 'tqdm' in sys.modules)")
    e = dict(os.environ, PYTHONPATH=ROOT, DMCTL_SIM_DIR=str(tmp_path / "sim"),
             DMCTL_BACKEND="sim")
    for argv in (["create", "lin", "--table", "0 2048 linear %s 0" % disk],
                 ["io", "copy", "lin", "--from", str(img)], ["sim", "settle"],
                 ["replay-log", "--log", str(log), "--replay", str(img)]):
        p = subprocess.run([sys.executable, "-c", code] + argv, capture_output=True,
                           text=True, env=e, cwd=ROOT)
        assert p.stdout.splitlines()[-1] == "RC 0 False", (argv, p.stdout, p.stderr)
