"""dmctl.libdm.cookie on this machine's real SysV semaphores, checked against libdm's protocol
and, where the installed dmsetup can take part without a kernel dm driver, against
/usr/sbin/dmsetup itself.

Tests that destroy *all* cookie semaphores (udevcomplete_all) run in a private IPC
namespace (``unshare --ipc``) so that they cannot disturb anything else on the host.
"""

import os
import random
import shutil
import subprocess
import sys
import time

import pytest

from dmctl.libdm import cookie as ck
from dmctl.libdm.cookies import parse_cookie
from dmctl.numbers import strtoull

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DMSETUP = "/usr/sbin/dmsetup"
HAVE_DMSETUP = os.access(DMSETUP, os.X_OK)
HAVE_UNSHARE = shutil.which("unshare") is not None

# No skips: a host without SysV semaphores, or dmctl wrongly believing so, fails here
# (and in every test below) instead of hiding the regression; the real dmsetup is
# installed by scripts/test (Debian's dmsetup), so its absence fails too.


def test_semaphores_supported_on_this_host():
    assert ck.semaphores_supported()


def dmsetup(*args, input=None, dev_dir=None):
    """The real dmsetup, pointed at a scratch DM_DEV_DIR so that its attempt to reach
    the (absent) kernel driver does not create /dev/mapper on the host."""
    assert HAVE_DMSETUP, "%s is missing: install Debian's dmsetup (scripts/test)" % DMSETUP
    env = dict(os.environ)
    env["DM_DEV_DIR"] = dev_dir or "/tmp/dmctl-test-devdir"
    env.pop("DM_UDEV_COOKIE", None)
    return subprocess.run([DMSETUP] + list(args), capture_output=True, text=True,
                          env=env, input=input, timeout=30)


@pytest.fixture
def cookie():
    c, semid = ck.create()
    assert c, "could not create a cookie"
    yield c, semid
    try:
        ck.rmid(semid)
    except OSError:
        pass


# ------------------------------------------------------------------ parsing

@pytest.mark.parametrize("s,v", [
    ("1", 1), ("0x0D4D1234", 0x0D4D1234), ("0X0d4d1234", 0x0D4D1234),
    ("017", 0o17), ("  42", 42), ("+7", 7), ("4294967295", 0xFFFFFFFF),
    ("0xFFFFFFFF", 0xFFFFFFFF), ("6296116", 6296116),
])
def test_parse_cookie_accepts(s, v):
    assert parse_cookie(s) == v


@pytest.mark.parametrize("s", [
    "", "0", "00", "0x0", "junk", "12x", "1 ", "0x", "08", "4294967296", "0x100000000",
    "-1", "-0", "99999999999999999999999", "1.5", "0xg",
])
def test_parse_cookie_rejects(s):
    assert parse_cookie(s) is None


def test_strtoul_negative_wraps_like_c():
    # strtoul(s, &end, 0) -> (value, end index, ERANGE)
    assert strtoull("-1", 0) == (0xFFFFFFFFFFFFFFFF, 2, False)
    assert strtoull("0x", 0) == (0, 1, False)
    assert strtoull("abc", 0) == (0, 0, False)


@pytest.mark.parametrize("s", ["1", "0x10", "010", "12x", "0", "-5", " 9", "0x1ffffffff",
                               "4294967295", "08", "+3", "0x"])
def test_parse_cookie_matches_dmsetup(s):
    r = dmsetup("udevflags", "--", s)
    assert (r.returncode == 0) == (parse_cookie(s) is not None), (s, r)
    if r.returncode:
        assert r.stderr == "Incorrect cookie value.\nCommand failed.\n"


# ------------------------------------------------------------------ udevflags

def test_udevflags_lines_examples():
    assert ck.udevflags_lines(0x00601234) == [
        "DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG='1'", "DM_UDEV_PRIMARY_SOURCE_FLAG='1'"]
    assert ck.udevflags_lines(0x00800000) == ["DM_UDEV_FLAG7='1'"]
    assert ck.udevflags_lines(0x01000000) == ["DM_SUBSYSTEM_UDEV_FLAG0='1'"]
    assert ck.udevflags_lines(0x80000000) == ["DM_SUBSYSTEM_UDEV_FLAG7='1'"]
    assert ck.udevflags_lines(0x0D4D1234)[0] == "DM_UDEV_DISABLE_DM_RULES_FLAG='1'"
    assert ck.udevflags_lines(0x1234) == []


def _flag_values():
    vals = [1 << b for b in range(16)]
    vals += [0x43, 0x60, 0x63, 0x7F, 0xFF, 0xFFFF, 0xFF00, 0x0D4D, 0x8001, 0x0180]
    rnd = random.Random(1234)
    vals += [rnd.randrange(1, 0x10000) for _ in range(40)]
    return vals


def test_udevflags_output_equals_dmsetup_for_many_flag_sets():
    """Every single bit, libdm's usual combinations and random ones, each with a random
    base, against the real dmsetup's udevflags output byte for byte."""
    from dmctl.cli.main import main
    rnd = random.Random(99)
    for f in _flag_values():
        value = f << 16 | rnd.randrange(0, 0x10000)
        for arg in ("%d" % value, "0x%x" % value, "0%o" % value):
            r = dmsetup("udevflags", arg)
            assert r.returncode == 0 and r.stderr == "", (arg, r)
            want = "".join(line + "\n" for line in ck.udevflags_lines(value))
            assert r.stdout == want, (hex(value), r.stdout, want)
    # and through dmctl's CLI (one process for the lot: the in-process entry point)
    import io
    import contextlib
    for f in (0x43, 0x60, 0xFFFF, 0x80):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["udevflags", "0x%x" % (f << 16)], prog="dmsetup") == 0
        assert buf.getvalue() == dmsetup("udevflags", "0x%x" % (f << 16)).stdout


# ------------------------------------------------------------------ protocol

def test_create_makes_libdm_semaphore(cookie):
    c, semid = cookie
    assert c >> 16 == ck.DM_COOKIE_MAGIC and c & 0xFFFF
    st = ck.ipc_stat(semid)
    assert st.key == c
    assert st.mode & 0o777 == 0o600
    assert st.nsems == 1
    assert ck.getval(semid) == 1
    assert abs(st.ctime - time.time()) < 60
    assert ck.semget(c, 1, 0) == semid


def test_inc_complete_wait(cookie):
    c, semid = cookie
    msgs = []
    assert ck.sem_inc(c, semid, debug=msgs.append)
    assert ck.sem_inc(c, semid, debug=msgs.append)
    assert ck.getval(semid) == 3
    assert ck.complete(c, debug=msgs.append)
    assert ck.complete(c | 0, debug=msgs.append)
    assert ck.getval(semid) == 1
    t = time.monotonic()
    r = ck.wait(c, timeout=5, debug=msgs.append)
    assert r.ok and not r.timed_out and time.monotonic() - t < 1
    with pytest.raises(OSError):
        ck.semget(c, 1, 0)
    assert msgs == [
        "Udev cookie 0x%x (semid %d) incremented to 2" % (c, semid),
        "Udev cookie 0x%x (semid %d) incremented to 3" % (c, semid),
        "Udev cookie 0x%x (semid %d) decremented to 2" % (c, semid),
        "Udev cookie 0x%x (semid %d) decremented to 1" % (c, semid),
        "Udev cookie 0x%x (semid %d) decremented to 0" % (c, semid),
        "Udev cookie 0x%x (semid %d) waiting for zero" % (c, semid),
        "Udev cookie 0x%x (semid %d) destroyed" % (c, semid),
    ]


def test_wait_returns_after_timeout_and_removes_semaphore(cookie):
    c, semid = cookie
    ck.sem_inc(c, semid)            # a uevent nobody will complete
    errs = []
    t = time.monotonic()
    r = ck.wait(c, timeout=0.5, err=errs.append)
    took = time.monotonic() - t
    assert r.ok and r.timed_out and r.pending == 1 and r.semid == semid
    assert 0.45 <= took < 3
    assert errs == []
    assert c not in [x.cookie for x in ck.list_cookies()]


# Run in another process: wait (polling, with a deadline) until somebody blocks waiting
# for the semaphore to reach zero (semctl GETZCNT), then do THEN.
WHEN_WAITING = r'''
import ctypes, time
from dmctl.libdm import cookie as ck
libc = ctypes.CDLL(None, use_errno=True)
GETZCNT = 15                # <linux/sem.h>: processes waiting for the value to become 0
deadline = time.monotonic() + 30
while libc.semctl(ctypes.c_int(%(semid)d), ctypes.c_int(0), ctypes.c_int(GETZCNT)) < 1:
    assert time.monotonic() < deadline, "nobody waited on semaphore %(semid)d"
    time.sleep(0.01)
%(then)s
'''


def test_wait_completed_by_another_process_while_waiting(cookie):
    """udev's udevcomplete arriving during the wait (from a separate process)."""
    c, semid = cookie
    ck.sem_inc(c, semid)
    code = WHEN_WAITING % {"semid": semid, "then": "assert ck.complete(%d)" % c}
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    t = time.monotonic()
    r = ck.wait(c, timeout=10)
    assert p.wait(10) == 0
    assert r.ok and not r.timed_out and time.monotonic() - t < 5


def test_wait_eidrm_counts_as_success(cookie):
    c, semid = cookie
    ck.sem_inc(c, semid)
    code = WHEN_WAITING % {"semid": semid, "then": "ck.rmid(%d)" % semid}
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    r = ck.wait(c, timeout=10)
    assert p.wait(10) == 0
    assert r.ok and r.removed and not r.timed_out


def test_complete_errors_are_libdms():
    errs = []
    c, semid = ck.create()
    ck.rmid(semid)
    missing = c
    assert not ck.complete(missing, err=errs.append)
    assert errs == ["Could not find notification semaphore identified by cookie value "
                    "%u (0x%x)" % (missing, missing)]
    errs.clear()
    assert ck.get_cookie_sem(0x00601234, err=errs.append) is None
    assert errs == ["Could not continue to access notification semaphore identified by "
                    "cookie value 6296116 (0x601234). Incorrect cookie prefix."]


def test_complete_on_zero_semaphore_is_incorrect_state(cookie):
    c, semid = cookie
    ck.setval(semid, 0)
    errs = []
    assert not ck.complete(c, err=errs.append)
    assert errs == [
        "semid %d: semop failed for cookie 0x%x: incorrect semaphore state" % (semid, c),
        "Could not signal waiting process using notification semaphore identified by "
        "cookie value %u (0x%x)" % (c, c)]


# ------------------------------------------------------------------ listing / interop

def test_dmsetup_udevcookies_lists_our_cookie(cookie):
    c, semid = cookie
    ck.sem_inc(c, semid)
    r = dmsetup("udevcookies")
    assert r.returncode == 0, r
    rows = [line for line in r.stdout.splitlines()[1:] if line.startswith("0x%x " % c)]
    assert len(rows) == 1, r.stdout
    parts = rows[0].split()
    assert parts[1] == str(semid) and parts[2] == "2"


def test_udevcookies_table_equals_dmsetups(cookie):
    """dmctl's table for the same semaphores, byte for byte (same second)."""
    from dmctl.cli.main import main
    import contextlib
    import io
    c, semid = cookie
    ck.sem_inc(c, semid)
    for _ in range(3):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["udevcookies"], prog="dmsetup") == 0
        r = dmsetup("udevcookies")
        if buf.getvalue() == r.stdout:
            break
    assert buf.getvalue() == r.stdout
    assert r.stdout.startswith("Cookie       Semid      Value      Last semop time"
                               "           Last change time\n")


ISOLATED = r'''
import os, subprocess, sys, time
sys.path.insert(0, %(root)r)
from dmctl.libdm import cookie as ck
env = dict(os.environ, DM_DEV_DIR="/tmp/dmctl-test-devdir", PYTHONPATH=%(root)r)
def dmsetup(*a, input=None):
    return subprocess.run([%(dmsetup)r] + list(a), capture_output=True, text=True,
                          env=env, input=input)
def dmctl(*a, input=None):
    return subprocess.run([sys.executable, "-m", "dmctl"] + list(a), capture_output=True,
                          text=True, env=env, input=input, cwd=%(root)r)
%(body)s
'''


def isolated(body):
    """Run ``body`` in a private IPC namespace; returns its stdout."""
    if os.geteuid() != 0:
        pytest.skip("unshare --ipc needs root")
    assert HAVE_UNSHARE and HAVE_DMSETUP, "unshare (util-linux) and %s are needed" % DMSETUP
    code = ISOLATED % {"root": ROOT, "dmsetup": DMSETUP, "body": body}
    p = subprocess.run(["unshare", "--ipc", sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_dmsetup_udevcomplete_all_destroys_dmctl_cookies():
    out = isolated(r'''
cs = [ck.create()[0] for _ in range(3)]
r = dmsetup("-y", "udevcomplete_all")
assert r.returncode == 0, r
assert r.stdout == "3 semaphores with keys prefixed by 3405 (0xd4d) destroyed. 0 skipped.\n", r
assert ck.list_cookies() == []
print("ok")
''')
    assert out == "ok\n"


def test_udevcomplete_all_matches_dmsetup_with_age_and_prompt():
    out = isolated(r'''
# unrelated semaphore (other key prefix) must survive
other = ck.semget(0x12340001, 1, 0o600 | ck.IPC_CREAT)
for tool in (dmsetup, dmctl):
    cs = [ck.create()[0] for _ in range(2)]
    r = tool("udevcomplete_all", "5", "-y")
    assert (r.returncode, r.stdout) == (0, "0 semaphores with keys prefixed by 3405 (0xd4d) destroyed. 2 skipped.\n"), (tool, r)
    r = tool("udevcomplete_all", input="n\n")
    assert r.returncode == 0, r
    assert r.stdout == "Do you really want to continue? [y/n]: Semaphores with keys prefixed by 3405 (0xd4d) NOT destroyed.\n", (tool, r)
    assert r.stderr == "WARNING: This operation will destroy all semaphores with keys that have a prefix 3405 (0xd4d).\n", (tool, r)
    r = tool("udevcomplete_all", "7", input="")
    assert r.stdout == "Do you really want to continue? [y/n]: \nSemaphores with keys prefixed by 3405 (0xd4d) NOT destroyed.\n", (tool, r)
    assert r.stderr == "WARNING: This operation will destroy all semaphores older than 7 minutes with keys that have a prefix 3405 (0xd4d).\n", (tool, r)
    r = tool("udevcomplete_all", "0", input="x\nyes\n")
    assert r.stdout == "Do you really want to continue? [y/n]: Do you really want to continue? [y/n]: 2 semaphores with keys prefixed by 3405 (0xd4d) destroyed. 0 skipped.\n", (tool, r)
    assert len(ck.list_cookies()) == 0
    assert ck.ipc_stat(other).key == 0x12340001
    r = tool("udevcomplete_all", "abc")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "Failed to read age_in_minutes parameter.\nCommand failed.\n"), (tool, r)
print("ok")
''')
    assert out == "ok\n"


def test_dmctl_udevcookies_in_empty_namespace_matches_dmsetup():
    out = isolated(r'''
a, b = dmsetup("udevcookies"), dmctl("udevcookies")
assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr), (a, b)
c, semid = ck.create()
ck.sem_inc(c, semid)
a, b = dmsetup("udevcookies"), dmctl("udevcookies")
assert a.stdout == b.stdout, (a, b)
assert "0x%-10x %-10d %-10d " % (c, semid, 2) in b.stdout
print("ok")
''')
    assert out == "ok\n"
