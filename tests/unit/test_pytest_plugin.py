"""dmctl's pytest plugin (dmctl.testing.plugin, the `pytest11` entry point): the `dm`
fixture, run in a child pytest (pytester) as a user's test suite would use it."""

import sys

pytest_plugins = ["pytester"]

SUITE = '''
import os
import pytest
from dmctl.testing.plugin import DmRunError

def test_a(dm):
    disk = dm.file("a.img", 1 << 20)
    assert os.path.getsize(disk) == 1 << 20 and disk.startswith(dm.dir)
    dm.run("create", "same", "--table", "0 2048 linear %s 0" % disk)
    dm.run("io", "write", "same", "0", "--pattern", "0x41", "--sectors", "8", "--fua")
    assert dm.run("ls").split()[0] == "same"
    assert [d.name for d in dm.mapper.list_devices()] == ["same"]
    open(os.path.join(os.path.dirname(dm.dir), "a-ran"), "w").close()

def test_b_does_not_see_a(dm):
    # the same name again: each test has a simulator of its own
    assert dm.run("ls").strip() == "No devices found"
    disk = dm.file("b.img", 1 << 20)
    dm.run("create", "same", "--table", "0 2048 linear %s 0" % disk)
    dm.run("io", "write", "same", "0", "--pattern", "0x42", "--sectors", "8")
    assert "256 block" not in dm.crash()
    assert dm.run("ls").strip() == "No devices found"
    with open(disk, "rb") as f:
        assert f.read(4096) == bytes(4096)        # unflushed: lost in the power cut

def test_run_raises_with_stderr(dm):
    with pytest.raises(DmRunError) as ei:
        dm.run("remove", "nosuch")
    assert ei.value.returncode == 1 and "nosuch" in str(ei.value)

def test_replay_log_to_a_mark(dm):
    data, log = dm.file("data", 1 << 20), dm.file("log", 1 << 20)
    dm.run("create", "lw", "--table", "0 2048 log-writes %s %s" % (data, log))
    dm.run("io", "write", "lw", "0", "--pattern", "0x61", "--sectors", "8", "--fua")
    dm.run("message", "lw", "0", "mark", "one")
    dm.run("io", "write", "lw", "0", "--pattern", "0x62", "--sectors", "8", "--fua")
    dm.run("message", "lw", "0", "mark", "two")
    one = dm.replay_log(log, dm.path("one"), end_mark="one", size=1 << 20)
    two = dm.replay_log(log, dm.path("two"), end_mark="two", size=1 << 20)
    assert open(one, "rb").read(4096) == b"a" * 4096
    assert open(two, "rb").read(4096) == b"b" * 4096
'''


def _suite(pytester):
    pytester.makepyfile(test_user=SUITE)
    # the child runs with this interpreter; its plugin comes from the entry point
    return ["-p", "no:cacheprovider", "-q"]


def test_fixture_in_a_user_suite(pytester):
    args = _suite(pytester)
    r = pytester.runpytest_subprocess(*args)
    r.assert_outcomes(passed=4)


def test_fixture_under_xdist(pytester):
    args = _suite(pytester)
    r = pytester.runpytest_subprocess(*args + ["-n", "2"])
    r.assert_outcomes(passed=4)


def test_option_and_entry_point_registered(pytester):
    r = pytester.runpytest_subprocess("--help")
    r.stdout.fnmatch_lines(["*--dm-backend=*"])
    from importlib.metadata import entry_points
    eps = entry_points()
    group = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
    assert "dmctl.testing.plugin" in [e.value for e in group], sys.executable
