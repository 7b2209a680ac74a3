"""The log-writes target in the simulator: the kernel's ordering rules, status, messages,
and the log's bytes against a log written by the real kernel."""

import errno

import pytest

from testlib import golden
from dmctl.backend.base import TargetLine as L
from dmctl.errors import DmError
from dmctl.formats import log_writes as LW
from dmctl.formats.log_writes import LogReader
from dmctl.sim import io as sio


def parse_hexdump(text):
    """hexdump -C output back to bytes ('*' repeats the previous line)."""
    out = bytearray()
    prev = None
    pending_star = False
    for line in text.splitlines():
        if line == "*":
            pending_star = True
            continue
        off = int(line.split()[0], 16)
        if pending_star:
            while len(out) < off:
                out += prev
            pending_star = False
        if len(line.split()) == 1:
            break
        hexpart = line[10:58].split()
        prev = bytes(int(h, 16) for h in hexpart)
        out += prev
    return bytes(out)


@pytest.fixture
def lw(mapper, backing):
    data = backing("data", 16 << 20)
    log = backing("log", 32 << 20)

    def create(name="lw", extra=""):
        mapper.create(name)
        mapper.load(name, [L(0, 32768, "log-writes", "%s %s%s" % (data, log, extra))])
        mapper.resume(name)
    create.data = data
    create.log = log
    return create


def status(m, name="lw"):
    return m.status(name)[1][0].params


def entries(log):
    with LogReader(log) as r:
        return [(e.sector, e.nr_sectors, e.flags, e.mark) for e in r.entries()]


def script(m, text, name="lw"):
    assert sio.run_script(m, name, [l for l in text.strip().splitlines()]) == []


def test_golden_session_status_lines_and_log_bytes(mapper, lw):
    lw()
    assert status(mapper) == "0 0"
    assert mapper.table("lw")[1][0].params == "7:0 7:1"
    assert mapper.deps("lw")[1] == [(7, 1), (7, 0)]
    data = b"HELLO-LOG-WRITES-0001".ljust(4096, b"\0")
    sio.write(mapper, "lw", 0, data)
    sio.flush(mapper, "lw")
    assert status(mapper) == "2 10"
    mapper.message("lw", 0, "mark mymark")
    assert status(mapper) == "3 11"
    sio.write(mapper, "lw", 64, bytes(4096))
    sio.write(mapper, "lw", 72, bytes(4096))
    sio.flush(mapper, "lw")
    assert status(mapper) == "6 30"
    mapper.message("lw", 0, "mark second")
    assert status(mapper) == "7 31"
    mapper.message("lw", 0, "mark " + "a" * 398)
    mapper.suspend("lw")
    mapper.resume("lw")
    assert status(mapper) == "8 32"
    mapper.remove("lw")
    want = parse_hexdump(golden("lw-log-hexdump-first-64k.txt"))
    with open(lw.log, "rb") as f:
        got = f.read(len(want))
    assert got == want


def test_kernel_doc_example_out_of_order_completion(mapper, lw):
    lw()
    script(mapper, """
        submit W1 write 8 8 pattern=1
        submit W2 write 16 8 pattern=2
        submit W3 write 24 8 pattern=3
        complete W3
        complete W2
        submit F flush
        complete W1
        complete F
    """)
    sio.settle(mapper)
    mapper.remove("lw")
    got = entries(lw.log)
    assert [(s, n, f) for s, n, f, _ in got] == [
        (24, 8, 0), (16, 8, 0), (0, 0, 1), (8, 8, 0), (0, 0, 8)]
    assert got[-1][3] == b"dm-log-writes-end"


def test_kernel_doc_example_write_discard_flush(mapper, lw):
    lw()
    script(mapper, "write 1 1 pattern=7\ndiscard 1 1\nflush")
    sio.settle(mapper)
    mapper.remove("lw")
    assert [(s, n, f) for s, n, f, _ in entries(lw.log)][:3] == [(1, 1, 0), (1, 1, 4), (0, 0, 1)]


def test_fua_logged_at_completion_and_mark_before_unflushed_writes(mapper, lw):
    lw()
    script(mapper, """
        write 0 1 pattern=1
        write 8 1 pattern=2 fua
    """)
    mapper.message("lw", 0, "mark m1")
    script(mapper, "flush")
    mapper.remove("lw")
    got = entries(lw.log)
    assert [(s, f, m) for s, n, f, m in got] == [
        (8, 2, None), (0, 8, b"m1"), (0, 0, None), (0, 1, None), (0, 8, b"dm-log-writes-end")]


def test_super_is_rewritten_only_after_fua_or_mark(mapper, lw):
    from dmctl.formats.log_writes import unpack_super
    lw()
    script(mapper, "write 0 8 pattern=1\nflush")
    sio.settle(mapper)
    assert status(mapper) == "2 10"
    with open(lw.log, "rb") as f:
        assert f.read(512) == bytes(512)          # no super yet: flush entries don't write it
    script(mapper, "write 8 8 pattern=2 fua")
    sio.settle(mapper)
    with open(lw.log, "rb") as f:
        assert unpack_super(f.read(512)).nr_entries == 3


def test_remove_logs_unflushed_writes_and_end_mark(mapper, lw):
    lw()
    script(mapper, "write 0 8 pattern=1")
    mapper.remove("lw")
    got = entries(lw.log)
    assert [(s, n, f, m) for s, n, f, m in got] == [(0, 8, 0, None), (0, 0, 8, b"dm-log-writes-end")]
    from dmctl.formats.log_writes import unpack_super
    with open(lw.log, "rb") as f:
        assert unpack_super(f.read(512)).nr_entries == 2


@pytest.mark.parametrize("msg,n", [("mark", 1), ("mark a b", 3), ("frobnicate", 1)])
def test_message_argument_errors(mapper, lw, msg, n):
    lw()
    with pytest.raises(DmError) as ei:
        mapper.message("lw", 0, msg)
    assert ei.value.errno == errno.EINVAL
    assert ei.value.detail == ("device-mapper: log-writes: Invalid log-writes message arguments, "
                               "expect 2 arguments, got %d" % n)


def test_unknown_two_word_message_and_case_insensitive_mark(mapper, lw):
    lw()
    with pytest.raises(DmError) as ei:
        mapper.message("lw", 0, "frob x")
    assert ei.value.detail == ("device-mapper: log-writes: Unrecognised log writes target "
                               "message received: frob")
    mapper.message("lw", 0, "MARK ok")
    sio.settle(mapper)
    assert status(mapper) == "1 1"


def test_long_marks_are_truncated_to_sectorsize_minus_33(mapper, lw):
    lw()
    mapper.message("lw", 0, "mark " + "b" * 600)
    mapper.remove("lw")
    assert entries(lw.log)[0][3] == b"b" * 479


def test_extra_table_arguments_are_accepted_and_bad_ones_rejected(mapper, lw, backing):
    lw(extra=" extra")
    assert mapper.table("lw")[1][0].params == "7:0 7:1"
    mapper.create("bad")
    with pytest.raises(DmError) as ei:
        mapper.load("bad", [L(0, 32768, "log-writes", lw.data)])
    assert ei.value.detail.splitlines()[0] == \
        "device-mapper: table: 254:1: log-writes: Invalid argument count (-EINVAL)"
    with pytest.raises(DmError) as ei:
        mapper.load("bad", [L(0, 32768, "log-writes", "/nonexistent %s" % lw.log)])
    assert ei.value.errno == errno.ENODEV
    assert ei.value.detail.splitlines()[0] == \
        "device-mapper: table: 254:1: log-writes: Device lookup failed (-ENODEV)"
    with pytest.raises(DmError) as ei:
        mapper.load("bad", [L(0, 65536, "log-writes", "%s %s" % (lw.data, lw.log))])
    assert ei.value.detail.splitlines()[0] == (
        "device-mapper: table: 254:1: loop0 too small for target: start=0, len=65536, dev_size=32768")


def test_full_log_device_disables_logging(mapper, backing):
    data = backing("data", 1 << 20)
    log = backing("log", 64 * 512)        # room for only a few entries
    mapper.create("small")
    mapper.load("small", [L(0, 2048, "log-writes", "%s %s" % (data, log))])
    mapper.resume("small")
    for i in range(8):
        sio.write(mapper, "small", i * 8, bytes([i + 1]) * 4096, fua=True)
    sio.settle(mapper)
    st = status(mapper, "small")
    assert st.endswith(" logging_disabled")
    # writes still reach the data device
    assert sio.read(mapper, "small", 56, 8) == bytes([8]) * 4096


def test_log_device_error_disables_logging(mapper, lw):
    lw()
    sio.fail(mapper, lw.log, ["write"])
    sio.write(mapper, "lw", 0, bytes(4096), fua=True)
    sio.settle(mapper)
    assert status(mapper).endswith("logging_disabled")


def test_discard_the_data_device_cannot_take_is_logged_and_completed(mapper, backing):
    # Linux 6.1 (the VM's fidelity test): over a data device without discard support
    # (a zero target) log-writes logs the discard and ends it itself, successfully.
    log = backing("log", 2 << 20)
    mapper.create("z")
    mapper.load("z", [L(0, 4096, "zero", "")])
    mapper.resume("z")
    mapper.create("lw")
    mapper.load("lw", [L(0, 4096, "log-writes", "/dev/mapper/z %s" % log)])
    mapper.resume("lw")
    sio.discard(mapper, "lw", 64, 64)
    sio.flush(mapper, "lw")
    assert status(mapper).split()[0] == "2"          # two entries logged
    mapper.remove("lw")
    assert entries(log)[:2] == [(64, 64, LW.DISCARD, None), (0, 0, LW.FLUSH, None)]


def test_a_mark_sent_while_suspended_is_logged_at_once(mapper, lw):
    # Linux 6.1 (the VM's fidelity test): the logging kthread runs while the device
    # is suspended.
    lw()
    sio.write(mapper, "lw", 0, bytes(4096))
    sio.flush(mapper, "lw")
    mapper.suspend("lw")
    before = status(mapper)
    mapper.message("lw", 0, "mark susp")
    assert status(mapper) == "%d %d" % tuple(int(x) + 1 for x in before.split())
    mapper.resume("lw")
    mapper.remove("lw")
    assert (0, 0, LW.MARK, b"susp") in entries(lw.log)
