"""The simulator's state survives concurrent dmctl processes and killed ones."""

import os
import signal
import subprocess
import sys
import time

from testlib import ROOT


def _env(sim_dir):
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e["DMCTL_SIM_DIR"] = str(sim_dir)
    e["DMCTL_BACKEND"] = "sim"
    return e


def test_twenty_processes_at_once_get_twenty_devices_with_distinct_minors(sim_dir):
    env = _env(sim_dir)
    procs = [subprocess.Popen([sys.executable, "-m", "dmctl", "create", "c%02d" % i,
                               "--table", "0 8 zero"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(20)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    out = subprocess.run([sys.executable, "-m", "dmctl", "ls"], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 20
    names = [l.split("\t")[0] for l in lines]
    assert names == sorted("c%02d" % i for i in range(20))
    minors = {l.split("\t")[1] for l in lines}
    assert minors == {"(254:%d)" % i for i in range(20)}


def test_a_killed_dmctl_leaves_the_previous_state_readable(sim_dir, backing):
    """Kill a process in the middle of a long transaction (an I/O script holding the
    state lock): the devices created before are intact and the half-done command left
    nothing behind."""
    env = _env(sim_dir)
    f = backing("d.img", 64 << 20)
    subprocess.run([sys.executable, "-m", "dmctl", "create", "lin", "--table",
                    "0 131072 linear %s 0" % f], env=env, cwd=ROOT, check=True)
    script = "\n".join("write %d 8 pattern=%d" % (i * 8, i % 250 + 1) for i in range(2000))
    p = subprocess.Popen([sys.executable, "-c",
                          "import sys, time\n"
                          "from dmctl.backend.sim import SimMapper\n"
                          "from dmctl.sim import io\n"
                          "m = SimMapper()\n"
                          "m.create('half')\n"
                          "with m.batch():\n"
                          "    m.create('inside')\n"
                          "    io.run_script(m, 'lin', sys.stdin.read().splitlines())\n"
                          "    sys.stdout.write('started\\n'); sys.stdout.flush()\n"
                          "    time.sleep(120)\n"],
                         env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(script.encode())
    p.stdin.close()
    assert p.stdout.readline() == b"started\n"
    p.send_signal(signal.SIGKILL)
    p.wait()
    out = subprocess.run([sys.executable, "-m", "dmctl", "ls"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names = [l.split("\t")[0] for l in out.stdout.splitlines()]
    # 'half' was committed by its own command; 'inside' was part of the killed one
    assert names == ["half", "lin"]
    info = subprocess.run([sys.executable, "-m", "dmctl", "table", "lin"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert info.stdout == "0 131072 linear 7:0 0\n"
