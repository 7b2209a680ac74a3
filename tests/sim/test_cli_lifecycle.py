"""Device-lifecycle commands on the simulator: remove, remove_all, suspend, resume,
clear, wipe_table, rename, message, wait, mknodes, mangle, setgeometry — dmsetup
1.02.185's output, error text and exit codes (golden captures where the simulator
can build the same state), and no change of state on errors."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, golden
from tests.sim.test_cli_create import check_golden, fails_without_change, names, split_err, state


@pytest.fixture
def disk(backing):
    return backing("loop7.img", 16 << 20)


def hold_open(mapper, name, delta=1):
    """Something outside device-mapper opens the device (a mounted fs, a process)."""
    def fn(env):
        md = env.device_by_name(name)
        md.open_count += delta
        env.mark(md)
    mapper.run(fn)


def ok(r, out=""):
    assert (r.rc, r.out, r.err) == (0, out, ""), r


# ------------------------------------------------------------------ the golden sequence

def test_golden_generic_lifecycle(dmctl, mapper, disk):
    """INDEX-generic.tsv's lifecycle commands in order (loop7 -> a backing file)."""
    ok(dmctl("create", "multi", input="0 1024 linear %s 0\n1024 1024 zero\n"
                                      "2048 1024 error\n" % disk))
    ok(dmctl("create", "lin1", "-u", "LIN-UUID-0001", "--table",
             "0 32768 linear %s 0" % disk))
    ok(dmctl("create", "empty1", "--notable"))
    ok(dmctl("load", "empty1", "--table", "0 1024 zero"))
    check_golden(dmctl("resume", "empty1"), "generic-resume-empty1")
    info = mapper.info("empty1")
    assert (info.live_table, info.inactive_table) == (True, False)

    check_golden(dmctl("load", "lin1", "--table", "0 16384 linear %s 0" % disk),
                 "generic-load")
    check_golden(dmctl("clear", "lin1"), "generic-clear")
    assert not mapper.info("lin1").inactive_table
    check_golden(dmctl("load", "lin1", "--table", "0 16384 linear %s 0" % disk),
                 "generic-load-again")
    check_golden(dmctl("resume", "lin1"), "generic-resume-swaps")
    assert mapper.table("lin1")[1][0].length == 16384

    check_golden(dmctl("suspend", "lin1"), "generic-suspend")
    assert mapper.info("lin1").suspended
    check_golden(dmctl("suspend", "lin1"), "generic-suspend-again")
    check_golden(dmctl("resume", "lin1"), "generic-resume")
    assert not mapper.info("lin1").suspended
    check_golden(dmctl("suspend", "--noflush", "--nolockfs", "lin1"),
                 "generic-suspend-noflush")
    check_golden(dmctl("resume", "lin1"), "generic-resume-2")

    check_golden(dmctl("rename", "lin1", "lin1-renamed"), "generic-rename")
    assert "lin1-renamed" in names(mapper)
    r = fails_without_change(dmctl, mapper, "rename", "lin1-renamed", "empty1")
    check_golden(r, "generic-rename-to-existing")
    r = fails_without_change(dmctl, mapper, "rename", "nosuchdev", "foo")
    check_golden(r, "generic-rename-nonexistent")
    check_golden(dmctl("rename", "lin1-renamed", "lin1"), "generic-rename-back")
    r = fails_without_change(dmctl, mapper, "rename", "lin1", "--setuuid", "NEW-UUID")
    check_golden(r, "generic-rename-setuuid-already")
    check_golden(dmctl("rename", "empty1", "--setuuid", "EMPTY-UUID-1"),
                 "generic-rename-setuuid-on-no-uuid")
    assert mapper.info("empty1").uuid == "EMPTY-UUID-1"

    ok(dmctl("create", "ro1", "-r", "--table", "0 1024 zero"))
    ok(dmctl("create", "stack1", "--table", "0 16384 linear /dev/mapper/lin1 0"))
    assert mapper.info("lin1").open_count == 1
    r = fails_without_change(dmctl, mapper, "remove", "lin1")
    check_golden(r, "generic-remove-busy")

    r = fails_without_change(dmctl, mapper, "remove", "nosuchdev")
    check_golden(r, "generic-remove-nonexistent")
    r = fails_without_change(dmctl, mapper, "message", "nosuchdev", "0", "hello")
    check_golden(r, "generic-message-nonexistent")
    r = fails_without_change(dmctl, mapper, "message", "lin1", "0", "hello")
    check_golden(r, "generic-message-linear")

    # lin1 has had events (the renames): wait returns at once
    r = dmctl("wait", "lin1", "0")
    assert (r.rc, r.out, r.err) == (0, "", "")
    assert golden("generic-wait-nowait.txt") == "rc=0\n"

    check_golden(dmctl("mangle"), "generic-mangle")
    check_golden(dmctl("remove", "stack1"), "generic-remove-stack")
    check_golden(dmctl("remove_all"), "generic-remove-all")
    assert names(mapper) == []
    check_golden(dmctl("remove_all"), "generic-remove-all-empty")


# ------------------------------------------------------------------ suspend / resume / clear

def test_verbose_info_after_suspend_resume_clear(dmctl, mapper):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    r = dmctl("suspend", "-v", "d")
    assert r.rc == 0 and "State:             SUSPENDED\n" in r.out
    r = dmctl("resume", "-v", "d")
    assert r.rc == 0 and "State:             ACTIVE\n" in r.out
    ok(dmctl("load", "d", "--table", "0 8 error"))
    r = dmctl("clear", "-v", "d")
    assert r.rc == 0 and "Tables present:    LIVE\n" in r.out


def test_resume_readahead(dmctl, mapper):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    ok(dmctl("suspend", "d"))
    ok(dmctl("resume", "--readahead", "1024", "d"))
    assert mapper.read_ahead(mapper.info("d")) == 1024
    ok(dmctl("resume", "--readahead", "+64", "d"))
    assert mapper.read_ahead(mapper.info("d")) == 1024
    ok(dmctl("resume", "--readahead", "none", "d"))
    assert mapper.read_ahead(mapper.info("d")) == 0
    ok(dmctl("resume", "--readahead", "auto", "d"))
    assert mapper.read_ahead(mapper.info("d")) == 0


def test_negative_readahead(dmctl, mapper):
    r = dmctl("resume", "--readahead", "-2", "d")
    assert r.rc == 1
    assert r.err == ("Negative read ahead value (-2) is not understood.\n"
                     "Couldn't process command line.\n")


@pytest.mark.parametrize("cmd", ["suspend", "resume", "clear", "remove", "wipe_table"])
def test_no_device_specified(dmctl, mapper, cmd):
    r = fails_without_change(dmctl, mapper, cmd)
    assert r.err == "No device specified.\nCommand failed.\n"


@pytest.mark.parametrize("cmd", ["suspend", "resume", "clear"])
def test_nonexistent_device(dmctl, mapper, cmd):
    r = fails_without_change(dmctl, mapper, cmd, "nosuch")
    assert r.err == ("device-mapper: %s ioctl on nosuch  failed: No such device or "
                     "address\nCommand failed.\n" % cmd)


def test_repeated_devices_stop_at_the_first_failure(dmctl, mapper):
    ok(dmctl("create", "a", "--table", "0 8 zero"))
    ok(dmctl("create", "c", "--table", "0 8 zero"))
    r = dmctl("suspend", "a", "nosuch", "c")
    assert r.rc == 1
    assert r.err.endswith("Command failed.\n")
    assert mapper.info("a").suspended and not mapper.info("c").suspended
    ok(dmctl("resume", "a", "c"))


def test_device_by_uuid_and_devno(dmctl, mapper):
    ok(dmctl("create", "d", "-u", "D-1", "--table", "0 8 zero"))
    ok(dmctl("suspend", "-u", "D-1"))
    assert mapper.info("d").suspended
    ok(dmctl("resume", "-j", "254", "-m", "0"))
    assert not mapper.info("d").suspended
    r = fails_without_change(dmctl, mapper, "suspend", "-u", "NOPE")
    assert r.err == ("device-mapper: suspend ioctl on  NOPE failed: No such device or "
                     "address\nCommand failed.\n")
    r = fails_without_change(dmctl, mapper, "suspend", "-j", "254", "-m", "9")
    assert r.err == ("device-mapper: suspend ioctl on  (254:9) failed: No such device or "
                     "address\nCommand failed.\n")


def test_resume_without_any_table_fails(dmctl, mapper):
    ok(dmctl("create", "e", "--notable"))
    ok(dmctl("suspend", "e"))
    r = dmctl("resume", "e")
    assert r.rc == 1
    assert split_err(r.err)[0] == ("device-mapper: resume ioctl on e  failed: Invalid "
                                   "argument\nCommand failed.\n")


def test_dev_mapper_path_names_the_device(dmctl, mapper):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    ok(dmctl("suspend", "/dev/mapper/d"))
    assert mapper.info("d").suspended


# ------------------------------------------------------------------ remove

def test_remove(dmctl, mapper):
    ok(dmctl("create", "a", "--table", "0 8 zero"))
    ok(dmctl("create", "b", "--notable"))
    ok(dmctl("remove", "a", "b"))
    assert names(mapper) == []


def test_remove_force_wipes_then_removes(dmctl, mapper, disk):
    ok(dmctl("create", "low", "--table", "0 64 linear %s 0" % disk))
    ok(dmctl("create", "top", "--table", "0 64 linear /dev/mapper/low 0"))
    r = dmctl("remove", "-f", "low")
    assert r.rc == 1
    assert r.err == ("device-mapper: remove ioctl on low  failed: Device or resource "
                     "busy\nCommand failed.\n")
    # the table was replaced by an error target of the same size
    lines = mapper.table("low")[1]
    assert [(t.start, t.length, t.target_type) for t in lines] == [(0, 64, "error")]
    ok(dmctl("remove", "-f", "top"))
    ok(dmctl("remove", "low"))
    assert names(mapper) == []


def test_remove_force_nonexistent(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "remove", "-f", "nosuch")
    assert r.err == (
        "device-mapper: table ioctl on nosuch  failed: No such device or address\n"
        "device-mapper: reload ioctl on nosuch  failed: No such device or address\n"
        "device-mapper: remove ioctl on nosuch  failed: No such device or address\n"
        "Command failed.\n")


def test_remove_retry_on_busy(dmctl, mapper):
    ok(dmctl("create", "busy", "--table", "0 8 zero"))
    hold_open(mapper, "busy")
    t0 = time.monotonic()
    r = fails_without_change(dmctl, mapper, "remove", "--retry", "busy")
    elapsed = time.monotonic() - t0
    line = "device-mapper: remove ioctl on busy  failed: Device or resource busy\n"
    assert r.err == line * 25 + "Command failed.\n"
    assert elapsed >= 24 * 0.2


def test_remove_retry_succeeds_when_the_device_is_released(dmctl, mapper, sim_dir):
    ok(dmctl("create", "busy", "--table", "0 8 zero"))
    hold_open(mapper, "busy")
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-m", "dmctl", "remove", "--retry", "busy"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline()        # the first attempt failed
    assert first == "device-mapper: remove ioctl on busy  failed: Device or resource busy\n"
    hold_open(mapper, "busy", -1)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0
    assert out == ""
    assert set(err.splitlines(True)) <= {first}
    assert names(mapper) == []


def test_remove_deferred_and_cancel(dmctl, mapper):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    hold_open(mapper, "d")
    ok(dmctl("remove", "--deferred", "d"))
    assert mapper.info("d").deferred_remove
    ok(dmctl("message", "d", "0", "@cancel_deferred_remove"))
    assert not mapper.info("d").deferred_remove
    hold_open(mapper, "d", -1)


def test_deferred_remove_happens_on_last_close(dmctl, mapper):
    ok(dmctl("create", "low", "--table", "0 8 zero"))
    ok(dmctl("create", "top", "--table", "0 8 linear /dev/mapper/low 0"))
    ok(dmctl("remove", "--deferred", "low"))
    assert names(mapper) == ["low", "top"]
    ok(dmctl("remove", "top"))
    assert names(mapper) == []


def test_remove_by_uuid(dmctl, mapper):
    ok(dmctl("create", "d", "-u", "D-1", "--notable"))
    ok(dmctl("remove", "-u", "D-1"))
    assert names(mapper) == []


# ------------------------------------------------------------------ remove_all

def test_remove_all_reports_success_while_devices_remain(dmctl, mapper):
    ok(dmctl("create", "a", "--table", "0 8 zero"))
    ok(dmctl("create", "b", "--table", "0 8 zero"))
    hold_open(mapper, "a")
    ok(dmctl("remove_all"))
    assert names(mapper) == ["a"]


def test_remove_all_removes_stacks(dmctl, mapper):
    ok(dmctl("create", "low", "--table", "0 8 zero"))
    ok(dmctl("create", "top", "--table", "0 8 linear /dev/mapper/low 0"))
    ok(dmctl("remove_all"))
    assert names(mapper) == []


def test_remove_all_force(dmctl, mapper):
    ok(dmctl("create", "a", "--table", "0 8 zero"))
    ok(dmctl("create", "b", "--table", "0 8 zero"))
    hold_open(mapper, "a")
    r = dmctl("remove_all", "-f")
    assert (r.rc, r.out, r.err) == (0, "", "Unable to remove 1 device(s).\n")
    assert names(mapper) == ["a"]
    assert mapper.table("a")[1][0].target_type == "error"
    hold_open(mapper, "a", -1)
    ok(dmctl("remove_all", "-f"))
    assert names(mapper) == []


def test_remove_all_deferred(dmctl, mapper):
    ok(dmctl("create", "a", "--table", "0 8 zero"))
    hold_open(mapper, "a")
    ok(dmctl("remove_all", "--deferred"))
    assert mapper.info("a").deferred_remove


def test_remove_all_takes_no_arguments(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "remove_all", "x")
    assert r.err.startswith("Incorrect number of arguments.\n")


# ------------------------------------------------------------------ wipe_table

def test_wipe_table(dmctl, mapper, disk):
    ok(dmctl("create", "w", "--table", "0 100 linear %s 0\n100 28 zero" % disk))
    ok(dmctl("wipe_table", "w"))
    lines = mapper.table("w")[1]
    assert [(t.start, t.length, t.target_type) for t in lines] == [(0, 128, "error")]
    info = mapper.info("w")
    assert (info.live_table, info.inactive_table, info.suspended) == (True, False, False)


def test_wipe_table_nonexistent(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "wipe_table", "nosuch")
    assert r.err == (
        "device-mapper: table ioctl on nosuch  failed: No such device or address\n"
        "device-mapper: reload ioctl on nosuch  failed: No such device or address\n"
        "Command failed.\n")


def test_wipe_table_without_table(dmctl, mapper):
    ok(dmctl("create", "e", "--notable"))
    r = fails_without_change(dmctl, mapper, "wipe_table", "e")
    plain, klog = split_err(r.err)
    assert plain == "device-mapper: reload ioctl on e  failed: Invalid argument\nCommand failed.\n"
    assert "zero-length target" in klog


# ------------------------------------------------------------------ rename

def test_rename_name_checks(dmctl, mapper):
    ok(dmctl("create", "d", "--notable"))
    r = fails_without_change(dmctl, mapper, "rename", "d", "a/b")
    assert r.err == 'Name "a/b" invalid. It contains "/".\nCommand failed.\n'
    r = fails_without_change(dmctl, mapper, "rename", "d", "n" * 128)
    assert r.err == 'Name "%s" too long\nCommand failed.\n' % ("n" * 128)
    r = fails_without_change(dmctl, mapper, "rename", "d", "")
    assert r.err == "Non empty new name is required.\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "rename", "d", "--setuuid", "U" * 129)
    assert r.err == 'Uuid "%s" too long\nCommand failed.\n' % ("U" * 129)
    r = fails_without_change(dmctl, mapper, "rename", "d", "control")
    assert split_err(r.err)[0] == ("device-mapper: rename ioctl on d  failed: Invalid "
                                   "argument\nCommand failed.\n")
    ok(dmctl("rename", "d", "n" * 127))
    ok(dmctl("rename", "n" * 127, "x y"))
    assert names(mapper) == ["x\\x20y"]


def test_rename_needs_two_arguments_or_a_uuid(dmctl, mapper):
    ok(dmctl("create", "d", "-u", "D-1", "--notable"))
    r = fails_without_change(dmctl, mapper, "rename", "new")
    assert r.err == "No device specified.\nCommand failed.\n"
    # the kernel renames by name only
    r = fails_without_change(dmctl, mapper, "rename", "-u", "D-1", "new")
    assert split_err(r.err)[0] == ("device-mapper: rename ioctl on  D-1 failed: No such "
                                   "device or address\nCommand failed.\n")
    r = fails_without_change(dmctl, mapper, "rename")
    assert r.err.startswith("Incorrect number of arguments.\n")


def test_rename_setuuid_duplicate(dmctl, mapper):
    ok(dmctl("create", "a", "-u", "U-1", "--notable"))
    ok(dmctl("create", "b", "--notable"))
    r = fails_without_change(dmctl, mapper, "rename", "b", "--setuuid", "U-1")
    assert split_err(r.err)[0] == ("device-mapper: rename ioctl on b  failed: Device or "
                                   "resource busy\nCommand failed.\n")


# ------------------------------------------------------------------ message

def test_message_sector_and_words(dmctl, mapper):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    r = fails_without_change(dmctl, mapper, "message", "d", "x", "hello")
    assert r.err == "Invalid sector.\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "message", "d", "18446744073709551616", "hi")
    assert r.err == "Invalid sector.\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "message", "d", "0")
    plain, klog = split_err(r.err)
    assert plain == ("No message supplied.\n"
                     "device-mapper: message ioctl on d  failed: Invalid argument\n"
                     "Command failed.\n")
    assert "Empty message received." in klog
    r = fails_without_change(dmctl, mapper, "message", "d", "8", "hello")
    assert "Target message sector outside device." in r.err
    r = fails_without_change(dmctl, mapper, "message", "-u", "NOPE", "0", "hello")
    assert r.err == ("device-mapper: message ioctl on  NOPE failed: No such device or "
                     "address\nCommand failed.\n")


def test_message_to_core(dmctl, mapper):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    r = fails_without_change(dmctl, mapper, "message", "d", "0", "@cancel_deferred_remove")
    assert split_err(r.err)[0] == ("device-mapper: message ioctl on d  failed: No such "
                                   "device or address\nCommand failed.\n")
    r = fails_without_change(dmctl, mapper, "message", "d", "0", "@nosuch")
    assert "Unsupported message sent to DM core: @nosuch" in r.err


# ------------------------------------------------------------------ wait

# `python -m dmctl ARGS...` with one addition: once the simulator's wait_event has polled
# the device and found its event counter unchanged (the wait is blocking), MARKER is
# created, so that a test can act then instead of sleeping for a while and hoping.
WAITING = r'''
import os, runpy, sys
from dmctl.backend.sim import SimMapper
marker = sys.argv.pop(1)
wait_event, status = SimMapper.wait_event, SimMapper.status
def waiting_wait_event(self, *a, **kw):
    self._test_waiting = True
    return wait_event(self, *a, **kw)
def waiting_status(self, *a, **kw):
    r = status(self, *a, **kw)
    if getattr(self, "_test_waiting", False) and not os.path.exists(marker):
        open(marker, "w").close()
    return r
SimMapper.wait_event, SimMapper.status = waiting_wait_event, waiting_status
runpy.run_module("dmctl", run_name="__main__", alter_sys=True)
'''


def start_waiting(tmp_path, *args):
    """Popen of ``dmctl ARGS`` (a wait) and, once it blocks, return it."""
    marker = tmp_path / "waiting"
    p = subprocess.Popen([sys.executable, "-c", WAITING, str(marker)] + list(args), cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            out, err = p.communicate()
            pytest.fail("dmctl %s never started waiting: rc %s, %r %r"
                        % (" ".join(args), p.returncode, out, err))
        time.sleep(0.01)
    return p


def test_wait_returns_when_the_event_counter_differs(dmctl, mapper, tmp_path):
    ok(dmctl("create", "d", "-u", "D-1", "--table", "0 8 zero"))
    p = start_waiting(tmp_path, "wait", "-v", "-u", "D-1")
    assert p.poll() is None          # blocks while nothing happens
    ok(dmctl("rename", "d", "d2"))   # a rename is a table event
    out, err = p.communicate(timeout=20)
    assert (p.returncode, err) == (0, "")
    assert "Event number:      1\n" in out and "Name:              d2\n" in out
    r = dmctl("wait", "d2", "0")
    assert (r.rc, r.err) == (0, "")


def test_wait_is_interruptible(dmctl, mapper, tmp_path):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    p = start_waiting(tmp_path, "wait", "d", "0")
    assert p.poll() is None
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert (p.returncode, out, err) == (130, "", "")   # as a shell reports a SIGINT death


def test_wait_errors(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "wait")
    assert r.err == "No device specified.\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "wait", "nosuch")
    assert r.err == ("device-mapper: waitevent ioctl on nosuch  failed: No such device or "
                     "address\nCommand failed.\n")


# ------------------------------------------------------------------ setgeometry / mknodes

def test_setgeometry(dmctl, mapper):
    ok(dmctl("create", "g", "--table", "0 8 zero"))
    ok(dmctl("setgeometry", "g", "100", "64", "32", "0"))
    r = fails_without_change(dmctl, mapper, "setgeometry", "g", "70000", "64", "32", "0")
    plain, klog = split_err(r.err)
    assert plain == ("device-mapper: setgeometry ioctl on g  failed: Invalid argument\n"
                     "Command failed.\n")
    assert "Geometry exceeds range limits." in klog
    r = fails_without_change(dmctl, mapper, "setgeometry", "g", "x", "64", "32", "0")
    assert "Unable to interpret geometry settings." in r.err
    r = fails_without_change(dmctl, mapper, "setgeometry", "nosuch", "1", "1", "1", "0")
    assert r.err == ("device-mapper: setgeometry ioctl on nosuch  failed: No such device "
                     "or address\nCommand failed.\n")
    r = fails_without_change(dmctl, mapper, "setgeometry", "g", "1")
    assert r.err.startswith("Incorrect number of arguments.\n")


def test_mknodes(dmctl, mapper):
    ok(dmctl("create", "d", "--table", "0 8 zero"))
    ok(dmctl("mknodes"))
    ok(dmctl("mknodes", "d"))
    ok(dmctl("mknodes", "nosuch"))        # a missing device is not an error
    r = fails_without_change(dmctl, mapper, "mknodes", "n" * 128)
    assert r.err == 'Name "%s" too long.\nCommand failed.\n' % ("n" * 128)


# ------------------------------------------------------------------ mangle

def test_mangle_renames_to_the_requested_form(dmctl, mapper):
    ok(dmctl("create", "a b", "--notable"))
    assert names(mapper) == ["a\\x20b"]
    ok(dmctl("mangle"), "a\\x20b: [no UUID]: name already in correct form\n")
    ok(dmctl("mangle", "--manglename", "none"), "a\\x20b: renaming to a b\n")
    assert names(mapper) == ["a b"]
    ok(dmctl("mangle", "a b"), "a b: renaming to a\\x20b\n")
    assert names(mapper) == ["a\\x20b"]


def test_mangle_uuid_cannot_change(dmctl, mapper):
    ok(dmctl("create", "d", "-u", "u v", "--manglename", "none", "--notable"))
    r = fails_without_change(dmctl, mapper, "mangle", "d")
    assert r.err == ("d: u v: UUID in incorrect form. \n"
                     "Unable to change device UUID. The device must be deactivated first.\n"
                     "Command failed.\n")


def test_mangle_nonexistent(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "mangle", "nosuch")
    assert r.err == "Command failed.\n"


def test_mangle_no_devices(dmctl, mapper):
    ok(dmctl("mangle"), "No devices found\n")
