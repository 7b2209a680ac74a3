"""Lifecycle/create paths the simulator cannot reach, against a recording fake Mapper:
the ioctl sequence and addressing of libdm's create-load-resume and its revert,
message replies, remove --retry counting."""

import errno
import io

import pytest

from dmctl.backend.base import DeviceInfo, DevId, Mapper, TargetLine, DM_ACTIVE_PRESENT_FLAG
from dmctl.errors import DmError


class Fake(Mapper):
    kind = "fake"
    dm_major = 253

    def __init__(self):
        self.calls = []
        self.fail = {}          # op -> errno (or list of errnos, consumed in order)
        self.reply = None

    def _maybe_fail(self, op):
        e = self.fail.get(op)
        if isinstance(e, list):
            e = e.pop(0) if e else None
        if e:
            raise DmError(e, op=op, detail="kernel says no" if op == "reload" else None)

    def _info(self, name="dev", minor=3):
        return DeviceInfo(name, "", self.dm_major, minor, DM_ACTIVE_PRESENT_FLAG, 0, 0, 1)

    def create(self, name, uuid=None, minor=None, readonly=False):
        self.calls.append(("create", name, uuid, minor, readonly))
        self._maybe_fail("create")
        return self._info(name, 3 if minor is None else minor)

    def load(self, dev, lines, readonly=False):
        self.calls.append(("load", dev, [t.format() for t in lines], readonly))
        self._maybe_fail("reload")
        return self._info()

    def resume(self, dev, noflush=False, nolockfs=False, cookie=0, readonly=False):
        self.calls.append(("resume", dev, noflush, nolockfs))
        self._maybe_fail("resume")
        return self._info()

    def remove(self, dev, deferred=False, cookie=0):
        self.calls.append(("remove", dev))
        self._maybe_fail("remove")
        return self._info()

    def message(self, dev, sector, message):
        self.calls.append(("message", dev, sector, message))
        self._maybe_fail("message")
        return self.reply

    def table(self, dev, inactive=False):
        self.calls.append(("table", dev))
        return self._info(), [TargetLine(0, 100, "linear", "8:1 0"),
                              TargetLine(100, 28, "zero", "")]

    def list_devices(self, uuid=False):
        return []


def run(fake, *argv):
    from dmctl.cli import main
    from dmctl.cli.ctx import Ctx
    ctx = Ctx("dmsetup")
    ctx._mapper = fake
    ctx._stdout = io.StringIO()
    ctx._stderr = io.StringIO()
    rc = main._main(ctx, list(argv))
    return rc, ctx._stdout.getvalue(), ctx._stderr.getvalue()


def ops(fake):
    return [c[0] for c in fake.calls]


def test_create_sequence_and_addressing():
    f = Fake()
    rc, out, err = run(f, "create", "x", "-u", "U-1", "-r", "--table", "0 8 linear a\\b 0")
    assert (rc, out, err) == (0, "", "")
    assert f.calls == [
        ("create", "x", "U-1", None, False),          # the create ioctl is never read-only
        ("load", DevId(major=253, minor=3), ["0 8 linear a\\\\b 0"], True),
        ("resume", DevId(name="x"), False, False),
    ]


def test_create_without_table_is_one_ioctl():
    f = Fake()
    assert run(f, "create", "x", "-r", "-n")[0] == 0
    assert f.calls == [("create", "x", None, None, True)]


@pytest.mark.parametrize("op,err,sequence", [
    ("reload", "device-mapper: reload ioctl on x (253:3) failed: Invalid argument\n"
               "kernel says no\n", ["create", "load", "remove"]),
    ("resume", "device-mapper: resume ioctl on x  failed: Invalid argument\n",
     ["create", "load", "resume", "remove"]),
])
def test_failed_load_or_resume_is_reverted(op, err, sequence):
    f = Fake()
    f.fail[op] = errno.EINVAL
    rc, out, stderr = run(f, "create", "x", "--table", "0 8 zero")
    assert (rc, out, stderr) == (1, "", err + "Command failed.\n")
    assert ops(f) == sequence
    assert f.calls[-1] == ("remove", DevId(name="x"))


def test_failed_revert_is_reported():
    f = Fake()
    f.fail["reload"] = errno.EINVAL
    f.fail["remove"] = errno.EBUSY
    rc, out, err = run(f, "create", "x", "--table", "0 8 zero")
    assert rc == 1
    assert err.endswith("device-mapper: remove ioctl on x  failed: Device or resource busy\n"
                        "Failed to revert device creation.\nCommand failed.\n")


def test_persistent_minor_addressing():
    # libdm's create task falls back to the dm major; resume and the revert use the
    # user's major:minor (and the revert also the name, as libdm sends both).
    f = Fake()
    f.fail["resume"] = errno.ENXIO
    rc, out, err = run(f, "create", "x", "-j", "7", "-m", "5", "--table", "0 8 zero")
    assert rc == 1
    assert f.calls[0] == ("create", "x", None, 5, False)
    assert f.calls[2] == ("resume", DevId(major=7, minor=5), False, False)
    assert f.calls[3] == ("remove", DevId(name="x", major=7, minor=5))
    assert err == ("device-mapper: resume ioctl on x (7:5) failed: No such device or "
                   "address\nCommand failed.\n")


def test_create_error_shows_the_fallback_major():
    f = Fake()
    f.fail["create"] = errno.EBUSY
    rc, out, err = run(f, "create", "x", "-j", "7", "-m", "5", "--table", "0 8 zero")
    assert err == ("device-mapper: create ioctl on x (253:5) failed: Device or resource "
                   "busy\nCommand failed.\n")
    f = Fake()
    f.fail["create"] = errno.EBUSY
    rc, out, err = run(f, "create", "x", "-j", "7", "-m", "0", "-n")
    assert err == ("device-mapper: create ioctl on x (7:0) failed: Device or resource "
                   "busy\nCommand failed.\n")


@pytest.mark.parametrize("reply,printed", [
    (None, ""), ("", ""), ("abc", "abc\n"), ("abc\n", "abc\n"), ("a\nb", "a\nb\n")])
def test_message_reply_printing(reply, printed):
    f = Fake()
    f.reply = reply
    rc, out, err = run(f, "message", "d", "5", "a", "b", "c")
    assert (rc, out, err) == (0, printed, "")
    assert f.calls == [("message", DevId(name="d"), 5, "a b c")]


def test_message_sector_wraps_like_strtoull():
    f = Fake()
    assert run(f, "message", "d", "--", "-1", "x")[0] == 0
    assert f.calls[0][2] == (1 << 64) - 1


def test_remove_retry_counts(monkeypatch):
    from dmctl.libdm import task
    monkeypatch.setattr(task, "DM_RETRY_DELAY", 0)
    f = Fake()
    f.fail["remove"] = [errno.EBUSY] * 3
    rc, out, err = run(f, "remove", "--retry", "d")
    assert rc == 0
    assert ops(f) == ["remove"] * 4
    assert err.count("Device or resource busy") == 3
    f = Fake()
    f.fail["remove"] = [errno.ENXIO] * 3
    rc, out, err = run(f, "remove", "--retry", "d")
    assert rc == 1 and ops(f) == ["remove"]          # only EBUSY is retried
    f = Fake()
    f.fail["remove"] = [errno.EBUSY] * 3
    assert run(f, "remove", "d")[0] == 1 and ops(f) == ["remove"]


def test_wipe_table_loads_an_error_target_of_the_table_size():
    f = Fake()
    rc, out, err = run(f, "wipe_table", "-f", "d")
    assert (rc, err) == (0, "")
    assert f.calls[1] == ("load", DevId(name="d"), ["0 128 error "], False)
    # --force makes the resume --noflush --nolockfs
    assert f.calls[2] == ("resume", DevId(name="d"), True, True)


def test_wipe_table_clears_after_a_failed_resume():
    f = Fake()
    f.fail["resume"] = errno.EIO
    f.clear = lambda dev: f.calls.append(("clear", dev))
    rc, out, err = run(f, "wipe_table", "d")
    assert rc == 1
    assert ops(f) == ["table", "load", "resume", "clear"]
