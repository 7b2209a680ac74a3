"""The udev cookie commands through dmctl's dmsetup-compatible CLI.

Most run in-process (main()) so that "udev is running" can be simulated by pointing
dmctl.libdm.udev.UDEV_CONTROL at a file; semaphores are the host's real ones.  A few run
``python -m dmctl`` and the installed dmsetup side by side.
"""

import io
import os
import re
import subprocess
import sys
import time

import pytest

from dmctl.libdm import cookie as ck
from dmctl.libdm import udev
from dmctl.cli.main import main

DMSETUP = "/usr/sbin/dmsetup"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_semaphores_supported_on_this_host():
    # no skip when dmctl says "no SysV IPC": that would hide the regression (the host
    # tiers run where semaphores work; the tests below then fail as well)
    assert ck.semaphores_supported()


@pytest.fixture
def cli(monkeypatch, capsys, tmp_path):
    for v in ("DM_DISABLE_UDEV", "DM_UDEV_COOKIE", "DMCTL_UDEV_TIMEOUT"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("DM_DEV_DIR", str(tmp_path / "dev"))
    monkeypatch.setattr(udev, "UDEV_CONTROL", str(tmp_path / "absent"))

    class Runner:
        def udev_running(self):
            p = tmp_path / "control"
            p.write_text("")
            monkeypatch.setattr(udev, "UDEV_CONTROL", str(p))

        def __call__(self, *argv, stdin=""):
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
            capsys.readouterr()
            rc = main(list(argv), prog="dmsetup")
            out, err = capsys.readouterr()
            return rc, out, err
    return Runner()


@pytest.fixture
def own_cookies():
    made = []

    def make(value=None):
        c, semid = ck.create()
        made.append(semid)
        if value is not None:
            ck.setval(semid, value)
        return c, semid
    yield make
    for semid in made:
        try:
            ck.rmid(semid)
        except OSError:
            pass


def missing_cookie():
    c, semid = ck.create()
    ck.rmid(semid)
    return c


def test_udevcreatecookie_prints_nothing_without_udev(cli):
    assert cli("udevcreatecookie") == (0, "", "")


@pytest.mark.parametrize("args,setenv", [(("--noudevsync",), {}),
                                         ((), {"DM_DISABLE_UDEV": "1"})])
def test_udevcreatecookie_nothing_when_sync_off(cli, monkeypatch, args, setenv):
    cli.udev_running()
    for k, v in setenv.items():
        monkeypatch.setenv(k, v)
    rc, out, err = cli(*(args + ("udevcreatecookie",)))
    assert (rc, out) == (0, "")


def test_full_transaction_through_the_cli(cli):
    """udevcreatecookie -> (a task's +1) -> udev's udevcomplete $DM_COOKIE ->
    udevreleasecookie: the shell-level protocol lvm-style callers use."""
    cli.udev_running()
    rc, out, err = cli("udevcreatecookie")
    assert rc == 0 and err == "" and re.fullmatch(r"0x0D4D[0-9A-F]{4}\n", out), out
    c = int(out, 16)
    semid = ck.semget(c, 1, 0)
    assert ck.getval(semid) == 1
    ck.sem_inc(c, semid)                       # the ioctl's task
    dm_cookie = (0x60 << 16) | (c & 0xFFFF)    # what the uevent carries (decimal)
    rc, out, err = cli("udevflags", str(dm_cookie))
    assert out == ("DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG='1'\n"
                   "DM_UDEV_PRIMARY_SOURCE_FLAG='1'\n")
    rc, out, err = cli("udevcomplete", str(dm_cookie))
    assert (rc, out, err) == (0, "DM_COOKIE_COMPLETED=0x%-10x\n" % dm_cookie, "")
    assert ck.getval(semid) == 1
    t = time.monotonic()
    assert cli("udevreleasecookie", "0x%08X" % c) == (0, "", "")
    assert time.monotonic() - t < 2
    with pytest.raises(OSError):
        ck.semget(c, 1, 0)


def test_udevreleasecookie_from_environment(cli, monkeypatch, own_cookies):
    cli.udev_running()
    c, semid = own_cookies()
    monkeypatch.setenv("DM_UDEV_COOKIE", "%d" % c)
    assert cli("udevreleasecookie") == (0, "", "")
    with pytest.raises(OSError):
        ck.semget(c, 1, 0)


def test_udevreleasecookie_without_cookie(cli):
    assert cli("udevreleasecookie") == (
        1, "", "No udev transaction cookie given.\nCommand failed.\n")


def test_udevreleasecookie_bad_cookie(cli):
    assert cli("udevreleasecookie", "12x") == (
        1, "", "Incorrect cookie value.\nCommand failed.\n")


def test_udevreleasecookie_times_out_and_explains(cli, own_cookies):
    cli.udev_running()
    c, semid = own_cookies(2)                # one uevent nobody completes
    t = time.monotonic()
    rc, out, err = cli("--udevtimeout", "0.5", "udevreleasecookie", "0x%x" % c)
    took = time.monotonic() - t
    assert rc == 0 and out == ""
    assert 0.45 <= took < 3
    assert err.startswith("Udev cookie 0x%x (semid %d) was not completed within 0.5 s: 1 "
                          "uevent(s) of this transaction were not acknowledged by udev"
                          % (c, semid)), err
    assert "--udevtimeout" in err
    with pytest.raises(OSError):
        ck.semget(c, 1, 0)                   # removed: no leak


def test_udevreleasecookie_timeout_from_env(cli, monkeypatch, own_cookies):
    cli.udev_running()
    monkeypatch.setenv("DMCTL_UDEV_TIMEOUT", "0.3")
    c, semid = own_cookies(2)
    t = time.monotonic()
    rc, out, err = cli("udevreleasecookie", "%d" % c)
    assert rc == 0 and "within 0.3 s" in err and time.monotonic() - t < 3


def test_bad_udevtimeout(cli, own_cookies):
    c, semid = own_cookies()
    rc, out, err = cli("--udevtimeout", "soon", "udevreleasecookie", "%d" % c)
    assert rc == 1
    assert err == ("Invalid --udevtimeout value 'soon': expected a positive number of "
                   "seconds.\nCommand failed.\n")


def test_udevcomplete_without_udev_leaves_semaphore(cli, own_cookies):
    c, semid = own_cookies(2)
    assert cli("udevcomplete", "%d" % c) == (0, "DM_COOKIE_COMPLETED=0x%-10x\n" % c, "")
    assert ck.getval(semid) == 2             # like dmsetup: no sync support, no-op


def test_udevcomplete_flags_only_cookie(cli):
    cli.udev_running()
    assert cli("udevcomplete", "0x00600000") == (0, "DM_COOKIE_COMPLETED=0x600000    \n", "")


def test_udevcomplete_missing_semaphore(cli):
    cli.udev_running()
    c = missing_cookie()
    flagged = 0x00430000 | (c & 0xFFFF)
    rc, out, err = cli("udevcomplete", "%d" % flagged)
    assert rc == 1
    assert out == "DM_COOKIE_COMPLETED=0x%-10x\n" % flagged
    assert err == ("Could not find notification semaphore identified by cookie value "
                   "%u (0x%x)\nCommand failed.\n" % (c, c))


def test_udevcomplete_incorrect_state(cli, own_cookies):
    cli.udev_running()
    c, semid = own_cookies(0)
    rc, out, err = cli("udevcomplete", "%d" % c)
    assert rc == 1
    assert err == ("semid %d: semop failed for cookie 0x%x: incorrect semaphore state\n"
                   "Could not signal waiting process using notification semaphore "
                   "identified by cookie value %u (0x%x)\nCommand failed.\n"
                   % (semid, c, c, c))


def test_udevcookie_option_parsing(cli):
    # dmsetup 1.02.185: _udev_cookie = _get_cookie_value(optarg) -> 0, no failure
    assert cli("--udevcookie", "junk", "udevflags", "0x10000") == (
        0, "DM_UDEV_DISABLE_DM_RULES_FLAG='1'\n", "Incorrect cookie value.\n")


def test_udevflags_argument_count(cli):
    rc, out, err = cli("udevflags")
    assert rc == 1 and err.startswith("Incorrect number of arguments.\n")


def test_udevcookies_lists_and_vvv_debug(cli, own_cookies):
    cli.udev_running()
    c, semid = own_cookies(3)
    rc, out, err = cli("udevcookies")
    assert rc == 0
    assert out.startswith("Cookie       Semid      Value      Last semop time           "
                          "Last change time\n")
    assert "0x%-10x %-10d %-10d " % (c, semid, 3) in out
    rc, out, err = cli("-vvv", "udevcomplete", "%d" % c)
    assert out == ("DM_COOKIE_COMPLETED=0x%-10x\n"
                   "Udev cookie 0x%x (semid %d) decremented to 2\n" % (c, c, semid))


@pytest.mark.parametrize("args", [
    ("udevflags", "0x00601234"), ("udevflags", "4390912"), ("udevflags", "0xFFFF0000"),
    ("udevflags", "0"), ("udevflags", "x"), ("udevcomplete", "0x00600000"),
    ("udevcomplete", "4390912"), ("udevreleasecookie",), ("udevcreatecookie", "x"),
    ("udevcomplete_all", "-y", "zz"),
    ("--udevcookie", "0", "udevcookies"),
])
def test_subprocess_output_equals_dmsetup(tmp_path, args):
    """``python -m dmctl`` vs the real dmsetup (stdout, stderr apart from the usage
    text, exit status) for cases that need no udev and no kernel driver."""
    env = dict(os.environ, DM_DEV_DIR=str(tmp_path), PYTHONPATH=ROOT)
    for v in ("DM_UDEV_COOKIE", "DM_DISABLE_UDEV"):
        env.pop(v, None)
    assert os.access(DMSETUP, os.X_OK), "%s is missing: install Debian's dmsetup" % DMSETUP
    a = subprocess.run([DMSETUP] + list(args), capture_output=True, text=True, env=env)
    b = subprocess.run([sys.executable, "-m", "dmctl"] + list(args), capture_output=True,
                       text=True, env=env, cwd=ROOT)
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout), (a, b)
    assert a.stderr.split("\n")[0] == b.stderr.split("\n")[0], (a.stderr, b.stderr)
