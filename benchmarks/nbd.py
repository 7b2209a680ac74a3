#!/usr/bin/env python3
"""A simulated device over NBD (issue 15): 1 MiB sequential writes by ``nbdcopy``
through ``dmctl sim export`` next to the same writes by ``dmctl io copy`` (target
>= 0.5x).

Both sides copy the same file of random data (BENCH_NBD_MB, default 64 MiB) onto a
linear device over a fresh sparse file and flush once at the end: ``nbdcopy --flush
--request-size=1048576 --connections=1 FILE URI`` (one 1 MiB NBD write per request, in
order) and ``dmctl io copy DEV --from FILE`` with a flush after the last write.  The
device is created for each run and removed after it; the export is started before the
timed copy and stopped after it (its start-up is printed on its own line, not in the
ratio).  The CPU time of the NBD side is nbdcopy's plus that of nbdkit (the export's
server, where dmctl's plugin runs), read from /proc.

Every case runs in every round (BENCH_ROUNDS, default 11) in a rotated order, after an
``os.sync()``.  Printed: the medians, the ratio of the medians with the range of the
per-round ratios, for wall and CPU time, the load average and the target.  BENCH_DIR
places the files (default: a temporary directory).  Without nbdkit or nbdcopy the NBD
side is reported as not measured.  Exit status 0 whatever the ratio: a benchmark
reports, it does not fail."""

import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import (ENTRY, Skip, env, fresh_file, interleaved,  # noqa: E402
                               load, ratio_rows, report_ratios, report_times, run_timed)

MB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """User + system CPU seconds a (not waited-for) process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK      # utime, stime


def main():
    size = int(os.environ.get("BENCH_NBD_MB", "64")) * MB
    rounds = int(os.environ.get("BENCH_ROUNDS", "11"))
    load_before = load()
    from dmctl.export import nbd
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        e = env({"DMCTL_SIM_DIR": os.path.join(d, "sim"), "DMCTL_BACKEND": "sim"})
        dmctl = [sys.executable, "-c", ENTRY]
        src, disk = os.path.join(d, "src"), os.path.join(d, "disk.img")
        sock, pidf = os.path.join(d, "nbd.sock"), os.path.join(d, "nbd.pid")
        with open(src, "wb") as f:
            for _ in range(size // MB):
                f.write(os.urandom(MB))
        blocks = size // MB

        def on_device(fn):
            fresh_file(disk, size)
            run_timed(dmctl + ["create", "lin", "--table",
                               "0 %d linear %s 0" % (size >> 9, disk)], e)
            try:
                return fn()
            finally:
                run_timed(dmctl + ["remove", "lin"], e)

        def through_export():
            missing = [p for p in ("nbdkit", "nbdcopy") if not shutil.which(p)]
            if missing:
                raise Skip("needs %s" % ", ".join(missing))
            start = run_timed(dmctl + ["sim", "export", "lin", "--socket", sock,
                                       "--pidfile", pidf], e)
            with open(pidf) as f:
                pid = int(f.read())
            try:
                before = proc_cpu(pid)
                wall, cpu = run_timed(["nbdcopy", "--flush", "--request-size=%d" % MB,
                                       "--connections=1", src,
                                       "nbd+unix:///?socket=" + sock])
                cpu += proc_cpu(pid) - before
            finally:
                nbd.stop(pid)           # flushes: nothing left for the next run
                for p in (sock, pidf):
                    if os.path.exists(p):
                        os.unlink(p)
            return {"nbd": (wall, cpu), "export start": start}

        def io_copy():
            return run_timed(dmctl + ["io", "copy", "lin", "--from", src,
                                      "--fsync-every", str(blocks)], e)

        times = interleaved({"nbd": lambda: on_device(through_export),
                             "io copy": lambda: on_device(io_copy)}, rounds)
    mbs = size / MB
    report_ratios(ratio_rows(times, [
        ("1 MiB sequential writes, nbdcopy through the export vs dmctl io copy",
         "nbd", "io copy", 0.5),
    ], mbs, "MiB/s"), "NBD export vs dmctl io copy, %d MiB" % mbs, rounds, load_before)
    report_times(times, [("nbdcopy through the export", "nbd"),
                         ("dmctl io copy", "io copy"),
                         ("dmctl sim export start-up (not in the ratio)", "export start")])


if __name__ == "__main__":
    main()
