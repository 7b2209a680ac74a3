"""Damaged or foreign simulator state (issue 13): each case is one line on stderr that
names the file and what to do, exit status 1, no traceback, and the state dir exactly
as it was.  ``dmctl sim reset`` is the way out of a damaged dir."""

import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from testlib import ROOT


def _env(sim, **extra):
    return dict(os.environ, DMCTL_SIM_DIR=sim, DMCTL_BACKEND="sim", PYTHONPATH=ROOT, **extra)


def dmctl(sim, *args, prelude=None, **extra):
    code = "from dmctl.cli.main import entry; entry()"
    if prelude:
        code = prelude + "\n" + code
    return subprocess.run([sys.executable, "-c", code] + list(args), env=_env(sim, **extra),
                          capture_output=True, text=True, timeout=120)


def snapshot(d):
    out = {}
    for root, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
        for x in dirs:
            out[os.path.relpath(os.path.join(root, x), d) + "/"] = None
    return out


def one_line_error(p, *words):
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture
def sim(tmp_path):
    """A state dir with one device."""
    d = str(tmp_path / "sim")
    p = dmctl(d, "create", "keep", "--table", "0 8 zero")
    assert p.returncode == 0, p.stderr
    return d


def test_state_dir_is_created_0700(tmp_path):
    d = str(tmp_path / "new" / "sim")
    assert dmctl(d, "ls").returncode == 0
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_not_a_database(sim):
    db = os.path.join(sim, "state.db")
    with open(db, "wb") as f:
        f.write(b"this is not a database\n" * 100)
    before = snapshot(sim)
    for args in (["ls"], ["info", "keep"], ["create", "x", "--table", "0 8 zero"],
                 ["sim", "status"], ["io", "read", "keep", "0", "--sectors", "1"]):
        one_line_error(dmctl(sim, *args), db, "not a dmctl simulator state database",
                       "dmctl sim reset")
        assert snapshot(sim) == before
    # the way out
    p = dmctl(sim, "sim", "reset", "-y")
    assert p.returncode == 0, p.stderr
    p = dmctl(sim, "ls")
    assert (p.returncode, p.stdout) == (0, "No devices found\n")


def test_a_database_of_something_else(tmp_path):
    d = str(tmp_path / "sim")
    os.makedirs(d)
    db = os.path.join(d, "state.db")
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE photos(id INTEGER PRIMARY KEY)")
    c.commit()
    c.close()
    before = snapshot(d)
    one_line_error(dmctl(d, "ls"), db, "not a dmctl simulator state database", "dmctl sim reset")
    assert snapshot(d) == before


@pytest.mark.parametrize("version,words", [
    (99, ["schema 99", "newer", "dmctl sim reset"]),
    (0, ["schema 0", "older", "dmctl sim reset"]),
])
def test_unknown_schema(sim, version, words):
    db = os.path.join(sim, "state.db")
    c = sqlite3.connect(db)
    c.execute("UPDATE meta SET value=? WHERE key='schema'", (version,))
    c.commit()
    c.close()
    before = snapshot(sim)
    one_line_error(dmctl(sim, "info", "keep"), db, *words)
    one_line_error(dmctl(sim, "remove", "keep"), db, *words)
    assert snapshot(sim) == before


def test_locked_past_the_timeout(sim):
    db = os.path.join(sim, "state.db")
    before = snapshot(sim)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        p = dmctl(sim, "remove", "keep", DMCTL_SIM_LOCK_TIMEOUT="0.2")
        line = one_line_error(p, db, "locked", "DMCTL_SIM_LOCK_TIMEOUT")
        assert "0.2 s" in line
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert snapshot(sim) == before
    assert dmctl(sim, "info", "keep").returncode == 0
    one_line_error(dmctl(sim, "ls", DMCTL_SIM_LOCK_TIMEOUT="soon"), "DMCTL_SIM_LOCK_TIMEOUT")


def test_unwritable_dir(sim):
    """A state dir the user cannot write.  Root writes anywhere, so as root the dir is
    made read-only by a read-only bind mount of it in a private mount namespace."""
    before = snapshot(sim)
    code = "from dmctl.cli.main import entry; entry()"
    argv = [sys.executable, "-c", code, "create", "x", "--table", "0 8 zero"]
    if os.geteuid() == 0:
        argv = ["unshare", "-m", "sh", "-c",
                'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"',
                sim] + argv
    else:
        os.chmod(sim, 0o500)
    try:
        p = subprocess.run(argv, env=_env(sim), capture_output=True, text=True, timeout=120)
        one_line_error(p, os.path.join(sim, "state.db"), "writable")
    finally:
        os.chmod(sim, 0o700)
    assert snapshot(sim) == before


# As root no directory is unwritable and a tiny file system needs mount(): the
# database's own errors are injected where it would raise them.
INJECT = """
import sqlite3
from dmctl.sim import core
_save = core.SimEnv.save
def save(self):
    _save(self)                 # the rows are written, then the file system is full
    raise sqlite3.OperationalError(%r)
core.SimEnv.save = save
"""


@pytest.mark.parametrize("message,words", [
    ("database or disk is full", ["disk full", "free space"]),
    ("attempt to write a readonly database", ["cannot write", "writable"]),
    ("disk I/O error", ["disk I/O error", "dmctl sim reset"]),
])
def test_errors_during_a_command_change_nothing(sim, message, words):
    db = os.path.join(sim, "state.db")
    before = snapshot(sim)
    for args in (["create", "x", "--table", "0 8 zero"], ["remove", "keep"],
                 ["rename", "keep", "other"]):
        one_line_error(dmctl(sim, *args, prelude=INJECT % message), db, *words)
        assert snapshot(sim) == before
    p = dmctl(sim, "ls")
    assert p.stdout == "keep\t(254:0)\n" or p.stdout.startswith("keep"), p.stdout


def test_unusable_dir_path(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    one_line_error(dmctl(str(f / "sim"), "ls"), str(f / "sim"), "DMCTL_SIM_DIR")


def test_older_schema_is_migrated_in_place(sim):
    """A schema-1 dir (no work index) is migrated on first use, devices intact."""
    db = os.path.join(sim, "state.db")
    c = sqlite3.connect(db)
    c.execute("DROP INDEX devices_work")
    c.execute("ALTER TABLE devices DROP COLUMN work")
    c.execute("UPDATE meta SET value=1 WHERE key='schema'")
    c.commit()
    c.close()
    p = dmctl(sim, "info", "keep")
    assert p.returncode == 0 and "keep" in p.stdout, p.stderr
    c = sqlite3.connect(db)
    assert c.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == 2
    assert c.execute("SELECT name, work FROM devices").fetchall() == [("keep", 0)]
    c.close()
