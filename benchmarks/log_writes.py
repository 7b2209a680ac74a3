#!/usr/bin/env python3
"""log-writes: 1 MiB writes through log-writes next to the same writes through linear
(every byte is written twice, to the data device and to the log; target >= 0.45x,
issue 13), and `dmctl replay-log --replay` of the log next to `dd` copying the same
number of bytes (target >= 0.5x; the replay is a CLI process, its start-up included).

Every case runs in every round (BENCH_ROUNDS, default 21), in a rotated order, from
fresh sparse files (no cached pages, nothing dirty, ``os.sync()`` before it): the
writes through linear and through log-writes go to the same data file, the log-writes
device is created for each run and removed after it, and its run ends with a flush and
the logging thread run to completion.  The log replayed is written once, before the
rounds.  Printed: the medians, the ratio of the medians with the range of the
per-round ratios, for wall and CPU time (the replay's and dd's CPU time are those of
the child processes), and the load average.  Files are BENCH_LW_MB (default 64) MiB;
BENCH_DIR places them (default: a temporary directory).  Exit status 0 whatever the
ratios: a benchmark reports, it does not fail."""

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.common import (ENTRY, env, fresh_file, interleaved, load,  # noqa: E402
                               on_device, ratio_rows, report_ratios, run_timed, sim_writes)

MB = 1 << 20
LOG_EXTRA = 64 * MB     # room for the log's entries and sector headers


def main():
    size = int(os.environ.get("BENCH_LW_MB", "64")) * MB
    rounds = int(os.environ.get("BENCH_ROUNDS", "21"))
    load_before = load()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        os.environ["DMCTL_SIM_DIR"] = os.path.join(d, "sim")
        from dmctl.backend.sim import SimMapper

        data, log, out = (os.path.join(d, n) for n in ("data", "log", "out"))
        replay_log = os.path.join(d, "replay.log")
        m = SimMapper()
        buf = os.urandom(MB)

        def through(name, target, logfile):
            files = [(data, size)]
            if target == "log-writes":
                files.append((logfile, size + LOG_EXTRA))
                params = "%s %s" % (data, logfile)
            else:
                params = "%s 0" % data
            # the flush and the logging thread, to completion, are part of the run
            return lambda: on_device(m, name, target, params, size >> 9,
                                     sim_writes(name, size, buf), files)

        through("lw", "log-writes", replay_log)()          # the log to replay
        e = env()

        def replay():
            fresh_file(out, size)
            return run_timed([sys.executable, "-c", ENTRY, "replay-log", "--log", replay_log,
                              "--replay", out], e, cwd=d)

        def dd():
            fresh_file(out, size)
            return run_timed(["dd", "if=" + replay_log, "of=" + out, "bs=1M",
                              "count=%d" % (size // MB), "conv=notrunc", "status=none"])

        replay()                    # warm-up: the byte-compilation of dmctl's modules

        times = interleaved({
            "linear": through("lin", "linear", None),
            "log-writes": through("lw", "log-writes", log),
            "replay": replay,
            "dd": dd,
        }, rounds)
        m.close()
    mbs = size / MB
    report_ratios(ratio_rows(times, [
        ("1 MiB writes, log-writes vs linear", "log-writes", "linear", 0.45),
        ("replay-log --replay vs dd of the same bytes", "replay", "dd", 0.5),
    ], mbs, "MiB/s"), "log-writes, %d MiB" % mbs, rounds, load_before)


if __name__ == "__main__":
    main()
