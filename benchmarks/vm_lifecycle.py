#!/usr/bin/env python3
"""Creating and removing linear devices on a real kernel: dmctl's library API and CLI
next to dmsetup, per call (targets: API <= 1.0x dmsetup, CLI <= 1.5x per call).

Runs where /dev/mapper/control works, as root -- inside the VM tier:
    tests/vm/run --cmd 'python3 benchmarks/vm_lifecycle.py'
    tests/vm/run --cmd 'BENCH_VM_UDEV=1 python3 benchmarks/vm_lifecycle.py'

BENCH_VM_N (default 200) devices for dmsetup and the API; the CLI, whose cost is
interpreter start-up, is timed on BENCH_VM_CLI_N (default 40) devices.  The CLI runs as
the installed ``dmctl`` command does (``from dmctl.cli.main import entry``) with
bytecode caching on, under each interpreter in BENCH_VM_PYTHONS (default: this one and
Debian's /usr/bin/python3), and is printed next to that interpreter's own start-up
(``python3 -c pass``) so that the share of dmctl itself is visible.

Same udev settings for all: by default no udevd runs and DM_DISABLE_UDEV=1 (dmsetup and
dmctl make the nodes themselves); with BENCH_VM_UDEV=1 systemd-udevd is started (if it
is not running) and both wait for udev through cookies, as on a normal system."""

import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ENTRY, ROOT, env as bench_env  # noqa: E402

sys.path.insert(0, ROOT)

N = int(os.environ.get("BENCH_VM_N", "200"))
CLI_N = int(os.environ.get("BENCH_VM_CLI_N", "40"))
UDEV = os.environ.get("BENCH_VM_UDEV") == "1"
UDEVD = "/usr/lib/systemd/systemd-udevd"


def _run(argv, env, cwd=None):
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, cwd=cwd)


def start_udevd():
    """Start systemd-udevd unless one runs; returns the Popen to stop, or None."""
    if os.path.exists("/run/udev/control"):
        return None
    if not os.path.exists(UDEVD):
        sys.exit("BENCH_VM_UDEV=1 but %s is missing (install Debian's udev)" % UDEVD)
    os.makedirs("/run/udev", exist_ok=True)
    p = subprocess.Popen([UDEVD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        if os.path.exists("/run/udev/control"):
            break
        time.sleep(0.1)
    subprocess.run(["udevadm", "settle", "-t", "30"])
    return p


def interpreters():
    names = os.environ.get("BENCH_VM_PYTHONS")
    cands = names.split(":") if names else [sys.executable, "/usr/bin/python3"]
    out = []
    for c in cands:
        if c and os.path.exists(c) and os.path.realpath(c) not in [os.path.realpath(p) for p in out]:
            out.append(c)
    return out


def per_call(fn, calls):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) / calls


def main():
    from dmctl.backend.kernel import KernelMapper
    from dmctl.backend.base import TargetLine
    udevd = start_udevd() if UDEV else None
    base = dict(os.environ, LC_ALL="C")
    if UDEV:
        base.pop("DM_DISABLE_UDEV", None)
    else:
        base["DM_DISABLE_UDEV"] = "1"
    d = tempfile.mkdtemp()
    img = os.path.join(d, "disk")
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    loop = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True,
                          check=True).stdout.strip()
    table = "0 8 linear %s 0" % loop
    rows = []
    try:
        def dmsetup_run():
            for i in range(N):
                _run(["dmsetup", "create", "bm%03d" % i, "--table", table], base)
            for i in range(N):
                _run(["dmsetup", "remove", "bm%03d" % i], base)
        t_dmsetup = per_call(dmsetup_run, 2 * N)

        os.environ.update(base)
        if not UDEV:
            os.environ["DM_DISABLE_UDEV"] = "1"
        m = KernelMapper()

        from dmctl.libdm import cookie as ck
        flags = (ck.DM_UDEV_PRIMARY_SOURCE_FLAG | ck.DM_UDEV_DISABLE_LIBRARY_FALLBACK) << 16

        def synced(op, n, add):
            # what dmsetup does around an ioctl that makes or drops a node: with udev,
            # a cookie that 95-dm-notify releases; without, mknod/unlink itself
            if UDEV:
                c, _ = ck.create()
                op(n, cookie=flags | c)
                ck.wait(c)
            else:
                info = op(n)
                path = "/dev/mapper/" + n
                if add:
                    os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(info.major, info.minor))
                else:
                    os.unlink(path)

        def api_run():
            for i in range(N):
                n = "ba%03d" % i
                m.create(n)
                m.load(n, [TargetLine(0, 8, "linear", "%s 0" % loop)])
                synced(m.resume, n, True)
            for i in range(N):
                synced(m.remove, "ba%03d" % i, False)
        t_api = per_call(api_run, 2 * N)

        # the CLI as installed: the package on a local file system (the guest's tmpfs,
        # not the 9p share of the checkout), byte-compiled, the working directory elsewhere
        inst = os.path.join(d, "site")
        shutil.copytree(os.path.join(ROOT, "dmctl"), os.path.join(inst, "dmctl"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        for py in interpreters():
            e = bench_env(base)
            e["PYTHONPATH"] = inst
            e.pop("PYTHONPYCACHEPREFIX", None)
            subprocess.run([py, "-m", "compileall", "-q", inst], env=e,
                           stdout=subprocess.DEVNULL)
            cli = [py, "-c", ENTRY, "--backend", "kernel"]
            if subprocess.run(cli + ["version"], env=e, capture_output=True, cwd=d).returncode:
                rows.append((py, None, None))
                continue
            for _ in range(3):      # warm the bytecode cache and the page cache
                subprocess.run([py, "-c", "pass"], env=e, cwd=d)
                _run(cli + ["create", "bw", "--table", table], e, d)
                _run(cli + ["remove", "bw"], e, d)
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                subprocess.run([py, "-c", "pass"], env=e, cwd=d)
                ts.append(time.perf_counter() - t)
            floor = statistics.median(ts)

            def cli_run():
                for i in range(CLI_N):
                    _run(cli + ["create", "bc%03d" % i, "--table", table], e, d)
                for i in range(CLI_N):
                    _run(cli + ["remove", "bc%03d" % i], e, d)
            rows.append((py, per_call(cli_run, 2 * CLI_N), floor))
    finally:
        subprocess.run(["losetup", "-d", loop])
        shutil.rmtree(d, ignore_errors=True)
        if udevd is not None:
            udevd.terminate()
            udevd.wait()
    print("== create/remove of linear devices on a real kernel, per call (%s)"
          % ("udevd running, cookies waited for" if UDEV else "no udevd, DM_DISABLE_UDEV=1"))
    print("dmsetup            %8.1f ms  (%d devices)" % (t_dmsetup * 1e3, N))
    print("dmctl library API  %8.1f ms  ratio %.2fx (target <= 1.0x)"
          % (t_api * 1e3, t_api / t_dmsetup))
    for py, t_cli, floor in rows:
        if t_cli is None:
            print("dmctl CLI under %s: cannot import dmctl, skipped" % py)
            continue
        print("dmctl CLI          %8.1f ms  ratio %.2fx (target <= 1.5x; %d devices; %s)"
              % (t_cli * 1e3, t_cli / t_dmsetup, CLI_N, py))
        print("  of which `%s -c pass` %8.1f ms (%.2fx dmsetup); dmctl's own share %.1f ms"
              " (%.2fx dmsetup)" % (os.path.basename(py), floor * 1e3, floor / t_dmsetup,
                                    (t_cli - floor) * 1e3, (t_cli - floor) / t_dmsetup))


if __name__ == "__main__":
    main()
