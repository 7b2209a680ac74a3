#!/usr/bin/env python3
"""The simulator's I/O path: sequential 1 MiB writes and reads through a linear target
next to the same I/O on the backing file directly, and 4 KiB random writes per second
(targets: >= 0.8x direct for 1 MiB sequential; >= 10,000 random 4 KiB writes/s)."""

import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.common import report  # noqa: E402

MB = 1 << 20


def direct_write(path, size, chunk):
    buf = os.urandom(chunk)
    fd = os.open(path, os.O_RDWR)
    t = time.perf_counter()
    for off in range(0, size, chunk):
        os.pwrite(fd, buf, off)
    dt = time.perf_counter() - t
    os.close(fd)
    return dt


def direct_read(path, size, chunk):
    fd = os.open(path, os.O_RDONLY)
    buf = bytearray(chunk)
    t = time.perf_counter()
    for off in range(0, size, chunk):
        os.preadv(fd, [buf], off)
    dt = time.perf_counter() - t
    os.close(fd)
    return dt


def main():
    size = int(os.environ.get("BENCH_MB", "256")) * MB
    nrand = int(os.environ.get("BENCH_RANDOM", "20000"))
    with tempfile.TemporaryDirectory() as d:
        os.environ["DMCTL_SIM_DIR"] = os.path.join(d, "sim")
        from dmctl.backend.base import TargetLine
        from dmctl.backend.sim import SimMapper
        from dmctl.sim import bio as B
        from dmctl.sim.io import Session, resolve
        base_f = os.path.join(d, "direct.img")
        sim_f = os.path.join(d, "sim.img")
        for p in (base_f, sim_f):
            with open(p, "wb") as f:
                f.truncate(size)
        m = SimMapper()
        m.create("lin")
        m.load("lin", [TargetLine(0, size >> 9, "linear", "%s 0" % sim_f)])
        m.resume("lin")

        buf = os.urandom(MB)

        def seq_write(env):
            s = Session(env, resolve(env, "lin"))
            t = time.perf_counter()
            for off in range(0, size, MB):
                s.submit(B.WRITE, off >> 9, MB >> 9, buf)
            return time.perf_counter() - t
        t_dw = direct_write(base_f, size, MB)
        t_sw = m.run(seq_write)

        def seq_read(env):
            s = Session(env, resolve(env, "lin"))
            rbuf = bytearray(MB)
            t = time.perf_counter()
            for off in range(0, size, MB):
                s.submit(B.READ, off >> 9, MB >> 9, rbuf)
            return time.perf_counter() - t
        # best of 3 for both (page-cache reads are fast enough for noise to matter)
        t_dr = min(direct_read(base_f, size, MB) for _ in range(3))
        t_sr = min(m.run(seq_read) for _ in range(3))

        rng = random.Random(1)
        offsets = [rng.randrange(size // 4096) * 4096 for _ in range(nrand)]
        small = os.urandom(4096)

        def rand_write(env):
            s = Session(env, resolve(env, "lin"))
            t = time.perf_counter()
            for off in offsets:
                s.submit(B.WRITE, off >> 9, 8, small)
            return time.perf_counter() - t
        fd = os.open(base_f, os.O_RDWR)
        t = time.perf_counter()
        for off in offsets:
            os.pwrite(fd, small, off)
        t_drand = time.perf_counter() - t
        os.close(fd)
        t_srand = m.run(rand_write)
        m.close()
    mbs = size / MB
    report([
        ("1 MiB sequential write through linear (MiB/s)", mbs / t_sw, mbs / t_dw, "MiB/s", "(target >= 0.8x)"),
        ("1 MiB sequential read through linear (MiB/s)", mbs / t_sr, mbs / t_dr, "MiB/s", "(target >= 0.8x)"),
        ("4 KiB random writes through linear (writes/s)", nrand / t_srand, nrand / t_drand, "op/s",
         "(target >= 10000/s; per-bio overhead %.1f us)" % ((t_srand - t_drand) / nrand * 1e6)),
    ], "I/O path vs the backing file directly (%d MiB)" % mbs)


if __name__ == "__main__":
    main()
