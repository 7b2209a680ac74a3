"""Fidelity: the same scenario on the real kernel and on the simulator must give the same
status and table lines, replies, errors, event numbers, data, and on-disk results (era
metadata through era_dump, the log-writes log, the mirror disk log), in the same run.

The scenarios are data (fidelity.py runs them); each test runs one scenario twice, once
per driver, and compares.  Device numbers (and the kernel's "loopN" names) in status,
table and deps lines and in kernel log lines are replaced by role names, and those of
the scenario's own dm devices by their names: the kernel's loop devices and the
simulator's backing files are numbered differently, and dm minors depend on what else
exists.  That is the only normalisation of what is observed; backing files and
log-writes logs are compared byte for byte.

Not observed, because the kernel itself races (see the comments at those steps): the
event number of a freshly created nosync mirror, a mirror disk log between a write and
the next suspend, and a log-writes status before its logging kthread is idle.
"""

import difflib
import shutil
import tempfile

import pytest

import fidelity as F
from dmctl.formats import log_writes as LW
from dmctl.formats import mirror_log as ML

N = lambda base: base + F.SUFFIX                       # noqa: E731
MiB = 1 << 20

LIN, ZERO, ERR, STRIPE = N("fl-lin"), N("fl-zero"), N("fl-err"), N("fl-stripe")
MULTI, UP, BAD, LIN2 = N("fl-multi"), N("fl-up"), N("fl-bad"), N("fl-lin2")
ERA2, MIRM = N("fl-era2"), N("fl-mirrorm")
LW1, LW2, LW3, OVER = N("fl-lw1"), N("fl-lw2"), N("fl-lw3"), N("fl-over")

# Targets over log-writes devices: the logs record every bio the target under test sent
# to its devices (splits, flush fan-out, FUA, discards, the disk log's own I/O), and the
# logs must match byte for byte.
LW_UNDER = [("create", LW1, "0 8192 log-writes {d1} {l1}"),
            ("create", LW2, "0 8192 log-writes {d2} {l2}")]
LW_UNDER_ROLES = {"d1": 4 * MiB, "d2": 4 * MiB, "l1": 4 * MiB, "l2": 4 * MiB}
IO_OVER = [("write", OVER, 0, 8, 121), ("write", OVER, 8, 64, 122),
           ("write_fua", OVER, 100, 8, 123), ("flush", OVER),
           ("discard", OVER, 256, 128), ("write", OVER, 4000, 16, 124),
           ("read", OVER, 0, 128), ("suspend", OVER), ("resume", OVER)]
LW_REMOVE = [("remove", OVER), ("remove", LW1), ("remove", LW2)]
# A log-writes status is read after a "settle": the kernel's logging kthread writes
# the log asynchronously, so its counters are only comparable once it is idle.
LW_STATUS = [("settle", LW1), ("status", LW1), ("settle", LW2), ("status", LW2)]
MIR3, ERRLEG, MIRE = N("fl-mirror3"), N("fl-errleg"), N("fl-mirrore")
STRIPE2 = N("fl-stripe2")
ERA, LWD, MIR, MIRD = N("fl-era"), N("fl-lw"), N("fl-mirror"), N("fl-mirrord")
LWZ, ZDATA = N("fl-lwz"), N("fl-zdata")

SCENARIOS = {
    "linear": {
        "roles": {"lin": 8 * MiB},
        "steps": [
            ("create", LIN, "0 8192 linear {lin} 2048"),
            ("status", LIN), ("table", LIN), ("info", LIN),
            ("write", LIN, 0, 8, 1),
            ("write", LIN, 100, 28, 2),
            ("write_fua", LIN, 64, 8, 3),
            ("flush", LIN),
            ("discard", LIN, 4096, 64),
            ("discard", LIN, 3003, 13),               # not 4 KiB aligned
            ("write", LIN, 6144, 2048, 5),            # 1 MiB in one bio
            ("read", LIN, 0, 256),
            ("read", LIN, 2944, 128),
            ("read", LIN, 6000, 2192),
            ("read", LIN, 4096, 64),
            ("suspend", LIN), ("info", LIN), ("table", LIN), ("status", LIN),
            ("resume", LIN), ("info", LIN),
            ("write", LIN, 8184, 8, 4),
            ("read", LIN, 8184, 8),
            ("message", LIN, "hello"),
            ("rename", LIN, LIN2), ("info", LIN2),    # dm_hash_rename raises an event
            ("remove", LIN2),
        ],
        "compare_files": ["lin"],
    },
    "zero-error": {
        "roles": {},
        "steps": [
            ("create", ZERO, "0 2048 zero"),
            ("create", ERR, "0 2048 error"),
            ("status", ZERO), ("table", ZERO), ("status", ERR), ("table", ERR),
            ("write", ZERO, 8, 8, 5), ("read", ZERO, 0, 64), ("flush", ZERO),
            ("discard", ZERO, 0, 64),
            ("write", ERR, 8, 8, 5), ("read", ERR, 0, 8), ("flush", ERR),
            ("write_fua", ERR, 0, 8, 6), ("discard", ERR, 0, 64),
            ("message", ZERO, "x"), ("message", ERR, "x"),
            ("info", ZERO), ("info", ERR),
            ("remove", ZERO), ("remove", ERR),
        ],
        "compare_files": [],
    },
    "multi-target-stack": {
        "roles": {"lin": 4 * MiB},
        "steps": [
            ("create", MULTI, "0 1024 linear {lin} 0\n1024 1024 zero\n"
                              "2048 1024 linear {lin} 4096\n3072 1024 error"),
            ("status", MULTI), ("table", MULTI), ("deps", MULTI),
            ("write", MULTI, 1000, 48, 61),           # linear -> zero
            ("write", MULTI, 2040, 16, 62),           # zero -> linear
            ("read", MULTI, 992, 64), ("read", MULTI, 2032, 32),
            ("read", MULTI, 3064, 16),                # linear -> error
            ("write", MULTI, 3068, 8, 63),
            ("flush", MULTI),
            ("discard", MULTI, 0, 64),                # the error target takes none
            ("create", UP, "0 3072 linear {dm:%s} 0" % MULTI),
            ("table", UP), ("deps", UP), ("info", MULTI),
            ("write", UP, 1016, 16, 64), ("read", UP, 1008, 32),
            ("write_fua", UP, 2048, 8, 65), ("read", MULTI, 2048, 8),
            ("discard", UP, 0, 8),
            ("suspend", UP), ("info", UP), ("resume", UP),
            ("load", UP, "0 1024 linear {dm:%s} 2048" % MULTI),
            ("table", UP), ("resume", UP), ("table", UP), ("info", UP),
            ("read", UP, 0, 64),
            ("remove", UP), ("info", MULTI), ("remove", MULTI),
        ],
        "compare_files": ["lin"],
    },
    "bad-tables": {
        # failed loads: errno and the kernel's log lines must match
        "roles": {"a": 1 * MiB, "b": 1 * MiB, "tiny": 1024},
        "steps": [
            ("try_create", BAD, "0 1001 striped 2 8 {a} 0 {b} 0"),
            ("try_create", BAD, "0 1024 striped 2 3 {a} 0 {b} 0"),
            ("try_create", BAD, "0 1024 striped 3 8 {a} 0 {b} 0"),
            ("try_create", BAD, "0 4096 linear {a} 0"),
            ("try_create", BAD, "0 1024 linear {a}"),
            ("try_create", BAD, "0 1024 nosuchtarget"),
            ("try_create", BAD, "0 1024 linear {a} 0\n1000 24 zero"),
            ("try_create", BAD, "0 1024 zero 1"),
            ("try_create", BAD, "0 1024 era {a} {b} 7"),
            ("try_create", BAD, "0 1024 era {a} {b}"),
            ("try_create", BAD, "0 1024 era {tiny} {b} 8"),
            ("try_create", BAD, "0 1024 log-writes {a}"),
            ("try_create", BAD, "0 1024 mirror core 1 1000 2 {a} 0 {b} 0"),
            ("try_create", BAD, "0 1024 mirror core 1 128 1 {a} 0"),
            ("try_create", BAD, "0 2048 mirror core 1 128 2 {a} 0 {b} 0 1 bogus"),
            ("try_create", BAD, "0 2048 mirror core 1 128 2 {a} 0 {b} 0 1 keep_log"),
            ("try_create", BAD, "0 2048 mirror disk 2 {tiny} 128 2 {a} 0 {b} 0"),
            # device areas beyond the end of a device
            ("try_create", BAD, "0 8192 striped 2 8 {a} 0 {b} 0"),
            ("try_create", BAD, "0 4096 era {a} {b} 8"),
            ("try_create", BAD, "0 4096 mirror core 1 128 2 {a} 0 {b} 0"),
            ("try_create", BAD, "0 2048 mirror core 1 128 2 {a} 0 {b} 8"),
            ("try_create", BAD, "0 4096 log-writes {a} {b}"),
            ("try_create", BAD, "0 2048 linear {a} 1"),
        ],
        "compare_files": ["a", "b"],
    },
    "striped": {
        "roles": {"s0": 4 * MiB, "s1": 4 * MiB, "s2": 4 * MiB},
        "steps": [
            ("create", STRIPE, "0 12288 striped 3 16 {s0} 0 {s1} 0 {s2} 0"),
            ("status", STRIPE), ("table", STRIPE),
            ("write", STRIPE, 0, 8, 7),
            ("write", STRIPE, 8, 64, 8),              # crosses chunk boundaries
            ("write_fua", STRIPE, 40, 16, 9),
            ("flush", STRIPE),
            ("discard", STRIPE, 96, 96),
            ("read", STRIPE, 0, 256),
            ("suspend", STRIPE), ("resume", STRIPE),
            ("write", STRIPE, 12280, 8, 10),
            ("info", STRIPE), ("status", STRIPE),
            ("remove", STRIPE),
            ("create", STRIPE2, "0 4608 striped 2 24 {s0} 2048 {s2} 4096"),
            ("status", STRIPE2), ("table", STRIPE2),
            ("write", STRIPE2, 20, 40, 11),
            ("discard", STRIPE2, 30, 100),
            ("write_fua", STRIPE2, 4600, 8, 12),
            ("read", STRIPE2, 0, 512),
            ("remove", STRIPE2),
        ],
        "compare_files": ["s0", "s1", "s2"],
    },
    "era": {
        "roles": {"meta": 4 * MiB, "origin": 16 * MiB},
        "steps": [
            ("create", ERA, "0 16384 era {meta} {origin} 128"),
            ("status", ERA), ("table", ERA), ("info", ERA),
            ("write", ERA, 0, 8, 11),
            ("write", ERA, 5 * 128, 16, 12),
            ("write", ERA, 5 * 128 + 64, 8, 13),      # the same block again
            ("write", ERA, 3 * 128 + 120, 16, 18),    # two blocks: split at max_io_len
            ("read", ERA, 0, 128),
            ("settle", ERA), ("status", ERA),
            ("message", ERA, "checkpoint"),
            ("settle", ERA), ("status", ERA),
            ("load", ERA, "0 32768 era {meta} {origin} 128"),    # grow: resize in preresume
            ("resume", ERA),
            ("settle", ERA), ("status", ERA), ("table", ERA),
            ("write", ERA, 5 * 128, 8, 14),
            ("write_fua", ERA, 7 * 128, 8, 15),
            ("flush", ERA),
            ("discard", ERA, 9 * 128, 128),
            ("discard", ERA, 11 * 128 + 64, 256),     # blocks 11-13 in one discard bio
            ("message", ERA, "take_metadata_snap"),
            ("status", ERA),
            ("tool", "meta", "era_invalidate", "--metadata-snapshot", "--written-since", "2"),
            ("tool", "meta", "era_invalidate", "--metadata-snapshot", "--written-since", "1"),
            ("message", ERA, "take_metadata_snap"),
            ("write", ERA, 200 * 128, 8, 16),
            ("message", ERA, "drop_metadata_snap"),
            ("message", ERA, "drop_metadata_snap"),
            ("message", ERA, "bogus"),
            ("message", ERA, "checkpoint now"),
            ("settle", ERA), ("status", ERA),
            ("suspend", ERA), ("info", ERA), ("resume", ERA),
            ("write", ERA, 255 * 128, 8, 17),
            ("load", ERA, "0 24576 era {meta} {origin} 128"),    # shrink
            ("resume", ERA),
            ("write", ERA, 150 * 128, 8, 19),
            ("message", ERA, "checkpoint"),
            ("write", ERA, 151 * 128, 8, 20), ("write", ERA, 0, 8, 21),
            ("message", ERA, "checkpoint"),
            ("write", ERA, 152 * 128, 8, 22),
            ("message", ERA, "checkpoint"),
            ("settle", ERA), ("status", ERA), ("info", ERA),
            ("remove", ERA),
        ],
        "compare_files": ["origin"],
        "era_meta": "meta",
    },
    "era-odd-block": {
        # 24-sector blocks (not a power of two), the last block partial
        "roles": {"meta": 2 * MiB, "origin": 4 * MiB},
        "steps": [
            ("create", ERA2, "0 8192 era {meta} {origin} 24"),
            ("status", ERA2), ("table", ERA2),
            ("write", ERA2, 20, 8, 101),              # blocks 0 and 1
            ("write", ERA2, 8184, 8, 102),            # the partial last block
            ("discard", ERA2, 48, 72),                # blocks 2-4, one bio
            ("message", ERA2, "checkpoint"),
            ("write", ERA2, 4000, 64, 103),
            ("settle", ERA2), ("status", ERA2),
            ("remove", ERA2),
        ],
        "compare_files": ["origin"],
        "era_meta": "meta",
    },
    "log-writes": {
        "roles": {"data": 4 * MiB, "log": 8 * MiB},
        "steps": [
            ("create", LWD, "0 8192 log-writes {data} {log}"),
            ("status", LWD), ("table", LWD),
            ("write", LWD, 0, 8, 21),
            ("write", LWD, 64, 32, 22),
            ("flush", LWD),
            ("settle", LWD), ("status", LWD),
            ("message", LWD, "mark one"),
            ("write_fua", LWD, 8, 8, 23),
            ("settle", LWD), ("status", LWD),
            ("discard", LWD, 1024, 64),
            ("write", LWD, 2048, 8, 24),
            ("message", LWD, "mark " + "m" * 40),
            ("message", LWD, "bogus"),
            ("message", LWD, "mark"),
            ("message", LWD, "mark a b"),
            ("message", LWD, "mark " + "n" * 600),
            ("discard", LWD, 3001, 7),
            ("write", LWD, 6144, 2048, 26),           # 1 MiB in one bio
            ("write_fua", LWD, 5000, 64, 27),
            ("flush", LWD),
            ("suspend", LWD), ("settle", LWD), ("status", LWD),
            ("message", LWD, "mark suspended"), ("settle", LWD), ("status", LWD),
            ("resume", LWD),
            ("settle", LWD), ("status", LWD), ("info", LWD),
            ("write", LWD, 4096, 8, 25),
            ("remove", LWD),
        ],
        "compare_files": ["data", "log"],
        "lw_log": "log",
        "dsync_probe": (8, 8),
    },
    "log-writes-nodiscard": {
        # the data device takes no discards: log-writes still logs them and completes
        # them itself (device_supports_discard is false)
        "roles": {"log": 2 * MiB},
        "steps": [
            ("create", ZDATA, "0 4096 zero"),
            ("create", LWZ, "0 4096 log-writes {dm:%s} {log}" % ZDATA),
            ("status", LWZ), ("table", LWZ), ("deps", LWZ),
            ("write", LWZ, 0, 8, 91),
            ("discard", LWZ, 64, 64),
            ("write_fua", LWZ, 128, 8, 92),
            ("discard", LWZ, 256, 8),
            ("flush", LWZ),
            ("message", LWZ, "mark z"),
            ("settle", LWZ), ("status", LWZ),
            ("remove", LWZ), ("remove", ZDATA),
        ],
        "compare_files": ["log"],
        "lw_log": "log",
        "dsync_probe": None,            # writes are unflushed before its write_fua
    },
    "striped-over-log-writes": {
        "roles": LW_UNDER_ROLES,
        "steps": LW_UNDER + [
            ("create", OVER, "0 16384 striped 2 16 {dm:%s} 0 {dm:%s} 0" % (LW1, LW2))]
            + IO_OVER + LW_STATUS + LW_REMOVE,
        "compare_files": ["d1", "d2", "l1", "l2"],
        "lw_logs": ["l1", "l2"],
    },
    "linear-over-log-writes": {
        "roles": LW_UNDER_ROLES,
        "steps": LW_UNDER + [
            ("create", OVER, "0 4096 linear {dm:%s} 2048\n4096 4096 linear {dm:%s} 0"
             % (LW1, LW2))]
            + IO_OVER + LW_STATUS + LW_REMOVE,
        "compare_files": ["d1", "d2", "l1", "l2"],
        "lw_logs": ["l1", "l2"],
    },
    "mirror-over-log-writes": {
        # nosync: no resync copies (kcopyd's order is not deterministic); the disk log
        # is a log-writes device too, so its header and bitset writes are recorded
        "roles": dict(LW_UNDER_ROLES, d3=1 * MiB, l3=2 * MiB),
        "steps": LW_UNDER + [
            ("create", LW3, "0 2048 log-writes {d3} {l3}"),
            ("create", OVER, "0 8192 mirror disk 3 {dm:%s} 1024 nosync 2 {dm:%s} 0 {dm:%s} 0"
             % (LW3, LW1, LW2))]
            + IO_OVER + [("status", OVER), ("settle", LW1), ("status", LW1),
                         ("settle", LW3), ("status", LW3)]
            + LW_REMOVE + [("remove", LW3)],
        "compare_files": ["d1", "d2", "d3", "l1", "l2", "l3"],
        "lw_logs": ["l1", "l2", "l3"],
    },
    "era-over-log-writes": {
        # the origin is a log-writes device: what era passes down (data, flushes, FUA)
        "roles": dict(LW_UNDER_ROLES, meta=2 * MiB),
        "steps": LW_UNDER[:1] + [
            ("create", OVER, "0 8192 era {meta} {dm:%s} 128" % LW1)]
            + IO_OVER + [("message", OVER, "checkpoint"), ("write", OVER, 8, 8, 125),
                         ("settle", OVER), ("status", OVER), ("settle", LW1), ("status", LW1),
                         ("remove", OVER), ("remove", LW1)],
        "compare_files": ["d1", "l1", "meta"],
        "lw_logs": ["l1"],
    },
    "mirror-resync-over-log-writes": {
        # the resync's kcopyd reads and writes, byte for byte
        "roles": dict(LW_UNDER_ROLES, d1=(4 * MiB, 131)),
        "steps": LW_UNDER + [
            ("create", OVER, "0 2048 mirror core 1 1024 2 {dm:%s} 0 {dm:%s} 0" % (LW1, LW2)),
            ("settle", OVER), ("status", OVER), ("remove", OVER),
            ("remove", LW1), ("remove", LW2)],
        "compare_files": ["d1", "d2", "l1", "l2"],
        "lw_logs": ["l1", "l2"],
    },
    "mirror-core": {
        "roles": {"leg1": 8 * MiB, "leg2": 8 * MiB},
        "steps": [
            ("create", MIR, "0 16384 mirror core 1 1024 2 {leg1} 0 {leg2} 0"),
            ("write", MIR, 8, 8, 30), ("write", MIR, 15360, 64, 34),   # during resync
            ("settle", MIR),
            ("status", MIR), ("table", MIR), ("info", MIR),
            ("write", MIR, 0, 8, 31),
            ("write_fua", MIR, 2048, 16, 32),
            ("flush", MIR),
            ("discard", MIR, 4096, 64),
            ("read", MIR, 0, 64),
            ("settle", MIR), ("status", MIR),
            ("suspend", MIR), ("status", MIR), ("info", MIR), ("resume", MIR),
            ("settle", MIR), ("status", MIR), ("info", MIR),
            ("write", MIR, 16376, 8, 33),
            ("remove", MIR),
        ],
        "compare_files": ["leg1", "leg2"],
    },
    "mirror-3legs": {
        "roles": {"leg1": (4 * MiB, 71), "leg2": 4 * MiB, "leg3": (4 * MiB, 72),
                  "mlog": 64 * 1024},
        "steps": [
            # 7000 sectors, regions of 512: 14 regions, the last one partial
            ("create", MIR3, "0 7000 mirror disk 2 {mlog} 512 3 {leg1} 0 {leg2} 0 "
                             "{leg3} 1024 1 handle_errors"),
            ("settle", MIR3),
            ("status", MIR3), ("table", MIR3), ("info", MIR3), ("deps", MIR3),
            ("write", MIR3, 6990, 10, 73),
            ("write_fua", MIR3, 500, 24, 74),
            ("read", MIR3, 0, 1024),
            ("flush", MIR3),
            ("suspend", MIR3), ("file", "mlog", 0, ML.buf_size(14)),
            ("resume", MIR3), ("settle", MIR3), ("status", MIR3),
            ("remove", MIR3),
            ("file", "mlog", 0, ML.buf_size(14)),
            ("file", "leg3", 1024 << 9, 7000 << 9),
        ],
        "compare_files": ["leg1", "leg2", "leg3", "mlog"],
    },
    "mirror-disk-small-regions": {
        # 2048 regions of 8 sectors: a 256-byte clean bitset in the disk log
        "roles": {"leg1": (8 * MiB, 111), "leg2": 8 * MiB, "mlog": 64 * 1024},
        "steps": [
            ("create", MIRM, "0 16384 mirror disk 2 {mlog} 8 2 {leg1} 0 {leg2} 0"),
            ("settle", MIRM), ("status", MIRM), ("info", MIRM),
            ("write", MIRM, 0, 8, 112), ("write", MIRM, 8000, 64, 113),
            ("write_fua", MIRM, 16376, 8, 114),
            ("suspend", MIRM), ("file", "mlog", 0, ML.buf_size(2048)),
            ("resume", MIRM), ("settle", MIRM), ("status", MIRM),
            ("remove", MIRM),
            ("create", MIRM, "0 16384 mirror disk 2 {mlog} 8 2 {leg1} 0 {leg2} 0"),
            ("status", MIRM), ("remove", MIRM),
        ],
        "compare_files": ["leg1", "leg2", "mlog"],
    },
    "mirror-nosync": {
        "roles": {"leg1": (8 * MiB, 51), "leg2": (8 * MiB, 52)},
        "steps": [
            # no "info" here: whether a nosync mirror ever raises its "in sync" event
            # is a race in the kernel (mirror_ctr wakes kmirrord; if do_recovery runs
            # before resume binds the table the event is lost, else it counts)
            ("create", MIR, "0 16384 mirror core 2 1024 nosync 2 {leg1} 0 {leg2} 0"),
            ("status", MIR), ("table", MIR),
            ("read", MIR, 0, 64),                     # the default leg: leg1
            ("write", MIR, 16, 8, 53),
            ("read", MIR, 0, 64),
            ("file", "leg2", 0, 64 << 9),
            ("status", MIR),
            ("remove", MIR),
            ("file", "leg1", 0, 1 << 20), ("file", "leg2", 0, 1 << 20),
            # without nosync the core log resyncs everything from leg1
            ("create", MIR, "0 16384 mirror core 1 1024 2 {leg1} 0 {leg2} 0"),
            ("settle", MIR), ("status", MIR), ("info", MIR),
            ("remove", MIR),
        ],
        "compare_files": ["leg1", "leg2"],
    },
    "mirror-errleg": {
        "roles": {"leg1": (2 * MiB, 81)},
        "steps": [
            ("create", ERRLEG, "0 4096 error"),
            ("create", MIRE, "0 4096 mirror core 1 1024 2 {leg1} 0 {dm:%s} 0" % ERRLEG),
            ("settle", MIRE),
            ("status", MIRE), ("table", MIRE), ("info", MIRE), ("deps", MIRE),
            ("read", MIRE, 0, 64),
            ("write", MIRE, 2048, 8, 82),
            ("read", MIRE, 2048, 8),
            ("settle", MIRE), ("status", MIRE), ("info", MIRE),
            ("suspend", MIRE), ("resume", MIRE),
            ("settle", MIRE), ("status", MIRE), ("info", MIRE),
            ("remove", MIRE), ("remove", ERRLEG),
        ],
        "compare_files": ["leg1"],
    },
    "mirror-disk": {
        "roles": {"leg1": 8 * MiB, "leg2": 8 * MiB, "mlog": 1 * MiB},
        "steps": [
            ("create", MIRD, "0 16384 mirror disk 2 {mlog} 1024 2 {leg1} 0 {leg2} 0"),
            ("settle", MIRD),
            ("status", MIRD), ("table", MIRD), ("info", MIRD),
            ("write", MIRD, 0, 8, 41),
            ("write_fua", MIRD, 3000, 16, 42),
            ("flush", MIRD),
            ("settle", MIRD), ("status", MIRD),
            ("suspend", MIRD),
            ("file", "mlog", 0, ML.buf_size(16)),
            ("resume", MIRD),
            ("settle", MIRD), ("status", MIRD), ("info", MIRD),
            ("write", MIRD, 9000, 8, 43),
            ("remove", MIRD),
            ("file", "mlog", 0, ML.buf_size(16)),
            # a second activation reads the log back: no resync, all in sync at once
            ("create", MIRD, "0 16384 mirror disk 2 {mlog} 1024 2 {leg1} 0 {leg2} 0"),
            ("status", MIRD),
            ("settle", MIRD), ("info", MIRD),         # the event comes from kmirrord
            ("remove", MIRD),
            ("create", MIRD, "0 16384 mirror disk 3 {mlog} 1024 nosync 2 {leg1} 0 {leg2} 0"),
            ("status", MIRD), ("table", MIRD),
            # (the log between a write and the next suspend is not observed: when
            # kmirrord clears the region and flushes the log again is a race)
            ("write", MIRD, 12000, 8, 44),
            ("remove", MIRD),
            ("file", "mlog", 0, ML.buf_size(16)),
            ("create", MIRD, "0 16384 mirror disk 2 {mlog} 1024 2 {leg1} 0 {leg2} 0 "
                             "2 handle_errors keep_log"),
            ("settle", MIRD), ("status", MIRD), ("table", MIRD), ("info", MIRD),
            ("remove", MIRD),
        ],
        "compare_files": ["leg1", "leg2", "mlog"],
    },
}


def _diff(a, b):
    return "\n".join(difflib.unified_diff([repr(x) for x in a], [repr(x) for x in b],
                                          "kernel", "sim", lineterm=""))


@pytest.fixture
def tmp_root():
    d = tempfile.mkdtemp(prefix="dmctl-fidelity-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def run_scenario(tmp_root):
    opened = []

    def run(name):
        k, kobs, s, sobs = F.run_both(SCENARIOS[name], tmp_root)
        opened.extend((k, s))
        return k, kobs, s, sobs
    yield run
    for d in opened:
        d.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fidelity(run_scenario, name):
    sc = SCENARIOS[name]
    k, kobs, s, sobs = run_scenario(name)
    assert kobs == sobs, "%s: observations differ\n%s" % (name, _diff(kobs, sobs))
    # the parsed comparisons first: their failures say more than a differing sha256
    if "era_meta" in sc:
        _compare_era(k, s, sc["era_meta"])
    if "lw_log" in sc:
        _check_log_writes(k, s, sc["lw_log"], sc.get("dsync_probe"))
    bad = []
    for role in sc.get("lw_logs", ()):
        try:
            _check_log_writes(k, s, role, None)
        except AssertionError as e:
            bad.append("%s: %s" % (role, e))
    assert not bad, "\n".join(bad)
    for role in sc["compare_files"]:
        kb, sb = k.file_bytes(role), s.file_bytes(role)
        assert F.sha(kb) == F.sha(sb), "%s: backing file %r differs: %s" % (
            name, role, _first_difference(kb, sb))


def _first_difference(a, b):
    if len(a) != len(b):
        return "sizes %d vs %d" % (len(a), len(b))
    for i in range(0, len(a), 512):
        if a[i:i + 512] != b[i:i + 512]:
            return "first at sector %d: kernel %s... sim %s..." % (
                i >> 9, a[i:i + 48].hex(), b[i:i + 48].hex())
    return "none"


def _compare_era(k, s, role):
    for opts in ((), ("--logical",)):
        kd = F.run_tool(["era_dump", *opts], k.paths[role])      # its loop device
        sd = F.run_tool(["era_dump", *opts], s.files[role])
        assert kd[0] == 0 and kd[1], kd
        assert kd == sd, "era_dump %s differs\n%s" % (" ".join(opts), "\n".join(
            difflib.unified_diff(kd[1].splitlines(), sd[1].splitlines(), "kernel", "sim",
                                 lineterm="")))


def _entries(path):
    with LW.LogReader(path) as r:
        return [(e.index, e.sector, e.nr_sectors, LW.flags_to_str(e.flags), e.mark)
                for e in r.entries()]


def _check_log_writes(k, s, role, probe):
    ke, se = _entries(k.files[role]), _entries(s.files[role])
    if probe:
        # The claim the sim driver relies on (KERNEL_DSYNC_BIOS): the kernel's own log
        # shows what an O_DSYNC pwrite submitted -- the write_fua step's entry (probe:
        # its sector and length) and what follows it.  The scenario must have nothing
        # unflushed before that step (the flush entry would come after those writes).
        i = next(n for n, e in enumerate(ke) if e[1:3] == probe)
        got = []
        for e in ke[i:i + len(F.KERNEL_DSYNC_BIOS)]:
            got.append("write+fua" if e[2] and "FUA" in e[3] else "write" if e[2]
                       else "flush" if "FLUSH" in e[3] else e[3])
        assert tuple(got) == F.KERNEL_DSYNC_BIOS, ke
    assert ke == se, "log-writes entries differ\n%s" % _diff(ke, se)
