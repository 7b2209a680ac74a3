"""dmctl.backend.kmsg: the kernel's reason for a failed ioctl, from /dev/kmsg."""

import os

import pytest

from dmctl.backend import kmsg

REC = (b"3,1234,5678901,-;device-mapper: table: 254:3: era: Invalid block size (-EINVAL)\n"
       b" SUBSYSTEM=block\n DEVICE=b254:3\n")


def test_parse_record():
    seq, text = kmsg.parse_record(REC)
    assert seq == 1234
    assert text == "device-mapper: table: 254:3: era: Invalid block size (-EINVAL)"
    # the kernel escapes unprintable bytes as \xNN
    seq, text = kmsg.parse_record(b"4,7,1,c;device-mapper: ioctl: name a\\x0ab\n")
    assert text == "device-mapper: ioctl: name a\nb"
    assert kmsg.parse_record(b"garbage without separator") is None


def test_dm_lines_keeps_only_device_mapper():
    texts = ["loop0: detected capacity change", "device-mapper: ioctl: x",
             "device-mapper: table: 254:0: linear: Device lookup failed (-ENXIO)"]
    assert kmsg.dm_lines(texts) == texts[1:]


def test_unreadable_kmsg_is_silent(tmp_path):
    r = kmsg.KmsgReader(path=str(tmp_path / "nope"))
    r.mark()
    assert r.since_mark() == []
    r.mark()                                  # does not retry opening every time
    assert r.broken


def test_reads_only_records_after_mark(tmp_path):
    fifo = str(tmp_path / "kmsg")
    os.mkfifo(fifo)
    r = kmsg.KmsgReader(path=fifo)
    r.mark()                                  # lseek on a FIFO fails: nothing marked
    assert r.since_mark() == []
    w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        r.marked = True                       # as if lseek(SEEK_END) had worked
        os.write(w, REC)
        assert r.since_mark() == [
            "device-mapper: table: 254:3: era: Invalid block size (-EINVAL)"]
        # since_mark consumed the mark: nothing more is read until the next mark
        os.write(w, REC)
        assert r.since_mark() == []
        r.marked = True
        assert r.since_mark() == [
            "device-mapper: table: 254:3: era: Invalid block size (-EINVAL)"]
        r.marked = True
        os.write(w, b"6,1,1,-;EXT4-fs (sda1): mounted\n")
        assert r.since_mark() == []          # not device-mapper's
    finally:
        os.close(w)
        r.close()


@pytest.mark.skipif(not os.access("/dev/kmsg", os.R_OK), reason="no readable /dev/kmsg")
def test_real_kmsg_mark_and_read_do_not_raise():
    r = kmsg.KmsgReader()
    r.mark()
    assert isinstance(r.since_mark(), list)
    r.close()
