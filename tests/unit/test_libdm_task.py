"""dmctl.libdm.task without the CLI: libdm's task rules as a library runs them, its
messages handed to the policy's log callback (or Python's logging), never printed."""

import errno
import logging

from dmctl.backend.base import DM_ACTIVE_PRESENT_FLAG, DeviceInfo, DevId, Mapper
from dmctl.errors import DmError
from dmctl.libdm import task as libtask
from dmctl.libdm.log import LOG_DEBUG, LOG_ERR
from dmctl.libdm.task import Task, ioctl_error_lines, task_error_lines
from dmctl.libdm.udev import UdevPolicy
from dmctl.records import TargetLine


class Fake(Mapper):
    kind = "fake"
    dm_major = 253
    emits_uevents = False
    has_device_nodes = False

    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail or {}

    def _maybe_fail(self, op):
        e = self.fail.get(op)
        if isinstance(e, list):
            e = e.pop(0) if e else None
        if e:
            raise DmError(e, op=op, detail="kernel says no" if op == "reload" else None)

    def _info(self, name="d", minor=3):
        return DeviceInfo(name, "", self.dm_major, minor, DM_ACTIVE_PRESENT_FLAG, 0, 0, 1)

    def create(self, name, uuid=None, minor=None, readonly=False):
        self.calls.append(("create", name, uuid, minor, readonly))
        self._maybe_fail("create")
        return self._info(name)

    def load(self, dev, lines, readonly=False):
        self.calls.append(("load", dev, [t.format() for t in lines], readonly))
        self._maybe_fail("reload")
        return self._info()

    def resume(self, dev, noflush=False, nolockfs=False, cookie=0, readonly=False):
        self.calls.append(("resume", dev, cookie))
        self._maybe_fail("resume")
        return self._info()

    def remove(self, dev, deferred=False, cookie=0):
        self.calls.append(("remove", dev, cookie))
        self._maybe_fail("remove")
        return self._info()

    def info(self, dev, inactive=False):
        self.calls.append(("info", dev))
        self._maybe_fail("info")
        return self._info()

    def list_devices(self, uuid=False):
        self._maybe_fail("names")
        return []


def policy():
    records = []
    p = UdevPolicy(log=lambda level, msg: records.append((level, msg)))
    return p, records


def test_create_and_load_then_revert_logs_and_prints_nothing(capsys):
    f = Fake({"reload": errno.EINVAL})
    p, records = policy()
    t = Task("create", name="d", uuid="U-1")
    t.table = [TargetLine(0, 8, "zero", "")]
    assert t.run(f, p) is False
    # DM_DEV_CREATE, DM_TABLE_LOAD by major:minor, then the revert by name
    assert [c[0] for c in f.calls] == ["create", "load", "remove"]
    assert f.calls[1][1] == DevId(major=253, minor=3)
    assert f.calls[2][1] == DevId(name="d")
    assert records == [
        (LOG_ERR, "device-mapper: reload ioctl on d (253:3) failed: Invalid argument"),
        (LOG_ERR, "kernel says no")]
    assert t.error.errno == errno.EINVAL
    assert capsys.readouterr() == ("", "")


def test_create_and_load_resumes_by_name_without_uuid():
    f = Fake()
    p, records = policy()
    t = Task("create", name="d", uuid="U-1")
    t.table = [TargetLine(0, 8, "zero", "")]
    assert t.run(f, p) and records == []
    assert f.calls[2] == ("resume", DevId(name="d"), 0)
    assert t.info.name == "d" and t.info.minor == 3


def test_failed_revert_is_reported():
    f = Fake({"resume": errno.EIO, "remove": errno.EBUSY})
    p, records = policy()
    t = Task("create", name="d")
    t.table = [TargetLine(0, 8, "zero", "")]
    assert not t.run(f, p)
    assert [m for _, m in records] == [
        "device-mapper: resume ioctl on d  failed: Input/output error",
        "device-mapper: remove ioctl on d  failed: Device or resource busy",
        "Failed to revert device creation."]


def test_remove_retries_ebusy_and_logs_each_try(monkeypatch):
    monkeypatch.setattr(libtask, "DM_RETRY_DELAY", 0)
    f = Fake({"remove": [errno.EBUSY, errno.EBUSY]})
    p, records = policy()
    t = Task("remove", name="d")
    t.retry = True
    assert t.run(f, p)
    assert [c[0] for c in f.calls] == ["remove"] * 3
    assert records == [(LOG_ERR, "device-mapper: remove ioctl on d  failed: "
                                 "Device or resource busy")] * 2
    # without --retry: one try
    f = Fake({"remove": [errno.EBUSY, errno.EBUSY]})
    assert not Task("remove", name="d").run(f, p) and len(f.calls) == 1


def test_info_of_a_missing_device_is_no_error():
    f = Fake({"info": errno.ENXIO})
    p, records = policy()
    t = Task("info", name="gone")
    assert t.run(f, p) and t.info is None and records == []


def test_persistent_minor_without_major_fails_in_flatten():
    f = Fake()
    f.dm_major = 0
    p, records = policy()
    t = Task("remove", minor=4)
    assert not t.run(f, p) and f.calls == []
    assert [m for _, m in records] == ["Missing major number for persistent device.",
                                       "Couldn't create ioctl argument."]


def test_mknodes_failure_is_libdms_names_line():
    f = Fake({"names": errno.EACCES})
    p, records = policy()
    assert not Task("mknodes").run(f, p)
    assert records == [(LOG_ERR, "device-mapper: names ioctl on   failed: "
                                 "Permission denied")]


def test_without_a_policy_messages_go_to_python_logging(caplog, capsys):
    f = Fake({"info": errno.EPERM})
    with caplog.at_level(logging.DEBUG, logger="dmctl"):
        assert not Task("info", name="x").run(f)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("dmctl", logging.ERROR,
         "device-mapper: info ioctl on x  failed: Operation not permitted")]
    out, err = capsys.readouterr()
    assert out == ""


def test_error_line_formats():
    e = DmError(errno.ENXIO, detail="line 1\nline 2")
    assert task_error_lines(e, "resume", "a", "U", 254, 0) == [
        "device-mapper: resume ioctl on a U(254:0) failed: No such device or address",
        "line 1", "line 2"]
    assert task_error_lines(e, "remove", "", "", 254, -1)[0] == (
        "device-mapper: remove ioctl on  (254:) failed: No such device or address")
    assert task_error_lines(DmError(errno.EINTR), "waitevent", "a") == []
    e = DmError(errno.EINVAL, op="create", name="n", major=254, minor=7)
    assert ioctl_error_lines(e, op="ignored") == [
        "device-mapper: create ioctl on n (254:7) failed: Invalid argument"]


def test_policy_debug_goes_to_the_callback():
    p, records = policy()
    p.debug("x")
    p.err("y")
    assert records == [(LOG_DEBUG, "x"), (LOG_ERR, "y")]
