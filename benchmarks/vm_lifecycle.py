#!/usr/bin/env python3
"""Creating and removing linear devices on a real kernel: dmctl's library API and CLI
next to dmsetup, per device (targets: API <= 1.0x dmsetup, CLI <= 1.5x per call).

Runs where /dev/mapper/control works, as root -- inside the VM tier:
    tests/vm/run --cmd 'python3 benchmarks/vm_lifecycle.py'
N (default 200) devices for dmsetup and the API; the CLI, whose cost is interpreter
start-up, is timed on BENCH_VM_CLI_N (default 40) devices and reported per call.
Same udev settings for all: no udevd runs in the guest, so none waits for udev."""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

N = int(os.environ.get("BENCH_VM_N", "200"))
CLI_N = int(os.environ.get("BENCH_VM_CLI_N", "40"))


def main():
    from dmctl.backend.kernel import KernelMapper
    from dmctl.backend.base import TargetLine
    d = tempfile.mkdtemp()
    img = os.path.join(d, "disk")
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    loop = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True,
                          check=True).stdout.strip()
    env = dict(os.environ, PYTHONPATH=ROOT)
    table = "0 8 linear %s 0" % loop
    try:
        t = time.perf_counter()
        for i in range(N):
            subprocess.run(["dmsetup", "create", "bm%03d" % i, "--table", table], check=True)
        for i in range(N):
            subprocess.run(["dmsetup", "remove", "bm%03d" % i], check=True)
        t_dmsetup = (time.perf_counter() - t) / (2 * N)

        m = KernelMapper()
        t = time.perf_counter()
        for i in range(N):
            n = "ba%03d" % i
            m.create(n)
            m.load(n, [TargetLine(0, 8, "linear", "%s 0" % loop)])
            m.resume(n)
        for i in range(N):
            m.remove("ba%03d" % i)
        t_api = (time.perf_counter() - t) / (2 * N)

        cli = [sys.executable, "-m", "dmctl", "--backend", "kernel"]
        t = time.perf_counter()
        for i in range(CLI_N):
            subprocess.run(cli + ["create", "bc%03d" % i, "--table", table], check=True, env=env)
        for i in range(CLI_N):
            subprocess.run(cli + ["remove", "bc%03d" % i], check=True, env=env)
        t_cli = (time.perf_counter() - t) / (2 * CLI_N)
    finally:
        subprocess.run(["losetup", "-d", loop])
    print("== create/remove of linear devices on a real kernel, per call")
    print("dmsetup           %8.2f ms  (%d devices)" % (t_dmsetup * 1e3, N))
    print("dmctl library API %8.2f ms  ratio %.2fx (target <= 1.0x)" % (t_api * 1e3, t_api / t_dmsetup))
    print("dmctl CLI         %8.2f ms  ratio %.2fx (target <= 1.5x; %d devices)"
          % (t_cli * 1e3, t_cli / t_dmsetup, CLI_N))


if __name__ == "__main__":
    main()
