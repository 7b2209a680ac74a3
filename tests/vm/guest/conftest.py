"""Fixtures for the tests that run inside the VM tier's guest (see dmvm.py for the
conventions: ``*-dmctl-vm`` device names, loop devices per session, ``both``)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dmvm import (CMD_TIMEOUT, LOOP_DIR, LOOP_SIZES, Differ, Loops,  # noqa: E402
                  remove_tier_devices, run, tier_devices)


@pytest.fixture(scope="session")
def loops():
    if not os.path.exists("/dev/mapper/control"):
        pytest.fail("/dev/mapper/control is missing: dm-mod is not loaded in this guest")
    os.makedirs(LOOP_DIR, exist_ok=True)
    lp = Loops()
    try:
        for role, mib in LOOP_SIZES.items():
            path = os.path.join(LOOP_DIR, role + ".img")
            with open(path, "wb") as f:
                f.truncate(mib << 20)          # sparse
            r = run(["losetup", "-f", "--show", path], check=True)
            lp[role] = r.stdout.strip()
            lp.files[role] = path
        yield lp
    finally:
        remove_tier_devices()
        for role, devpath in lp.items():
            run(["losetup", "-d", devpath])
        for path in lp.files.values():
            try:
                os.unlink(path)
            except OSError:
                pass


@pytest.fixture(autouse=True)
def _clean_devices():
    """Each test starts and ends without ``*-dmctl-vm`` devices."""
    if remove_tier_devices():
        pytest.fail("left-over test devices could not be removed: %r" % tier_devices())
    yield
    left = remove_tier_devices()
    if left:
        pytest.fail("test devices could not be removed after the test: %r" % left)


@pytest.fixture
def differ(loops):
    d = Differ(loops)
    yield d
    d.holder.close()


@pytest.fixture
def both(differ):
    """``both(args, setup=(), stdin=None)`` -> ((stdout, stderr, rc) of dmsetup,
    (stdout, stderr, rc) of dmctl)."""
    def _both(args, setup=(), stdin=None, timeout=CMD_TIMEOUT):
        a, b = differ.both(args, setup=setup, stdin=stdin, timeout=timeout)
        return a.triple(), b.triple()
    return _both
