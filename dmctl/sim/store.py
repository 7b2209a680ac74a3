"""Persistent state of the simulated device mapper: one SQLite database per sim dir.

Everything the kernel would keep in memory between two dmsetup invocations (devices,
their tables, targets' in-core state, the disks' volatile write caches) lives here, so
that the simulator behaves like one running kernel across many dmctl processes.  Each
dmctl command is one transaction (``BEGIN IMMEDIATE``): concurrent dmctl processes are
serialised, and a process killed mid-command leaves the previous state intact.
"""

import os
import sqlite3

from dmctl.errors import StateError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS devices(
    minor INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uuid TEXT UNIQUE,
    suspended INTEGER NOT NULL DEFAULT 0,
    deferred INTEGER NOT NULL DEFAULT 0,
    open_count INTEGER NOT NULL DEFAULT 0,
    event_nr INTEGER NOT NULL DEFAULT 0,
    ro INTEGER NOT NULL DEFAULT 0,
    read_ahead INTEGER,
    geometry TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    live BLOB,
    inactive BLOB,
    work INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS devices_work ON devices(minor) WHERE work <> 0;
CREATE TABLE IF NOT EXISTS klog(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS backing(
    minor INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    st_dev INTEGER,
    st_ino INTEGER,
    cache BLOB,
    faults BLOB
);
"""

# 1: the first schema.  2: devices.work, the index of devices whose targets have
# background work (SimEnv.run_work visits only those and the devices a command touched).
SCHEMA_VERSION = 2

# In-place migrations from each older schema to the next.
MIGRATIONS = {
    1: ("ALTER TABLE devices ADD COLUMN work INTEGER NOT NULL DEFAULT 0",
        # not known yet: the first command looks at every device once
        "UPDATE devices SET work = 1",
        "CREATE INDEX IF NOT EXISTS devices_work ON devices(minor) WHERE work <> 0"),
}

# How long a command waits for another dmctl process's transaction (seconds).
LOCK_TIMEOUT = 60.0

SQLITE_MAGIC = b"SQLite format 3\x00"

RESET_HINT = "run 'dmctl sim reset' to start over (all simulated devices are forgotten)"


def default_sim_dir():
    d = os.environ.get("DMCTL_SIM_DIR")
    if d:
        return d
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "dmctl", "sim")


def lock_timeout():
    """DMCTL_SIM_LOCK_TIMEOUT (seconds, default LOCK_TIMEOUT)."""
    v = os.environ.get("DMCTL_SIM_LOCK_TIMEOUT")
    if not v:
        return LOCK_TIMEOUT
    try:
        t = float(v)
        if not t >= 0 or t == float("inf"):
            raise ValueError(v)
    except ValueError:
        raise StateError("DMCTL_SIM_LOCK_TIMEOUT=%s is not a number of seconds" % v) from None
    return t


class Store:
    """The database connection; ``transaction()`` brackets one dmctl command.

    A state dir that cannot be used raises ``StateError`` (one line naming the file and
    what to do) and is left as it was: not a database, a schema this dmctl does not know,
    locked by another process past ``DMCTL_SIM_LOCK_TIMEOUT``, not writable, disk full
    (``SimKernel`` rolls the command back and raises ``state_error(e)``)."""

    db_error = sqlite3.Error        # what the database raises (SimKernel turns it into StateError)

    def __init__(self, sim_dir=None):
        self.dir = sim_dir or default_sim_dir()
        self.path = os.path.join(self.dir, "state.db")
        self.db = None
        self._depth = 0
        self.timeout = lock_timeout()
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise StateError("cannot create the simulator's state dir %s: %s; set DMCTL_SIM_DIR "
                             "to a directory you can write" % (self.dir, e.strerror or e)) from None
        self._check_file()
        try:
            self.db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA busy_timeout=%d" % int(self.timeout * 1000))
            self._init_schema()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            err = self.state_error(e)
            self.close()
            raise err from None
        except StateError:
            self.close()
            raise

    def _check_file(self):
        """A state.db that is not an SQLite database is not touched at all."""
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except IsADirectoryError:
            head = b"-"
        except OSError as e:
            raise StateError("cannot read %s: %s; make it readable by you, or %s"
                             % (self.path, e.strerror or e, RESET_HINT)) from None
        if head and head != SQLITE_MAGIC:
            raise StateError("%s is not a dmctl simulator state database; %s"
                             % (self.path, RESET_HINT))

    def state_error(self, e):
        """The StateError for a database error ``e`` (one line: the file, what to do)."""
        if isinstance(e, StateError):
            return e
        msg = str(e)
        low = msg.lower()
        if "locked" in low or "busy" in low:
            return StateError("%s is locked by another dmctl process (waited %g s): try again, "
                              "or set DMCTL_SIM_LOCK_TIMEOUT=SECONDS to wait longer"
                              % (self.path, self.timeout))
        if "full" in low:
            return StateError("%s: disk full, the command was not carried out; free space "
                              "on the file system of %s and run it again" % (self.path, self.dir))
        if "readonly" in low or "read-only" in low or "unable to open" in low:
            return StateError("cannot write %s (%s): make %s writable by you, or set "
                              "DMCTL_SIM_DIR to a directory you can write"
                              % (self.path, msg, self.dir))
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return StateError("%s is not a dmctl simulator state database (%s); %s"
                              % (self.path, msg, RESET_HINT))
        return StateError("%s: %s; if the state is damaged, %s" % (self.path, msg, RESET_HINT))

    def _init_schema(self):
        tables = {r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if not self.db.execute("SELECT 1 FROM sqlite_master").fetchone():
                    for stmt in SCHEMA.strip().split(";"):
                        if stmt.strip():
                            self.db.execute(stmt)
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES('schema', ?)",
                                    (SCHEMA_VERSION,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            tables = {"meta", "devices", "klog", "backing"}
        version = self._schema_version(tables)
        if version == SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version(tables)      # another process may have migrated
            while version < SCHEMA_VERSION:
                for stmt in MIGRATIONS[version]:
                    self.db.execute(stmt)
                version += 1
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (version,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _schema_version(self, tables):
        if not {"meta", "devices", "klog", "backing"} <= tables:
            raise StateError("%s is not a dmctl simulator state database (no dmctl tables); %s"
                             % (self.path, RESET_HINT))
        v = self.get_meta("schema")
        if not isinstance(v, int):
            try:
                v = int(v)
            except (TypeError, ValueError):
                raise StateError("%s has no dmctl state schema version; %s"
                                 % (self.path, RESET_HINT)) from None
        if v > SCHEMA_VERSION:
            raise StateError("%s has state schema %d, newer than this dmctl knows (%d): use the "
                             "dmctl that made it, or %s" % (self.path, v, SCHEMA_VERSION, RESET_HINT))
        if v not in MIGRATIONS and v != SCHEMA_VERSION:
            raise StateError("%s has state schema %d, older than this dmctl can migrate (%d..%d); %s"
                             % (self.path, v, min(MIGRATIONS), SCHEMA_VERSION, RESET_HINT))
        return v

    # -- transactions ---------------------------------------------------------------
    def begin(self):
        if self._depth == 0:
            self.db.execute("BEGIN IMMEDIATE")
        self._depth += 1

    def commit(self):
        self._depth -= 1
        if self._depth == 0:
            self.db.execute("COMMIT")

    def rollback(self):
        self._depth = 0
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass

    @property
    def in_transaction(self):
        return self._depth > 0

    def get_meta(self, key, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key, value):
        self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, value))

    def close(self):
        if self.db is None:
            return
        try:
            self.db.close()
        except Exception:
            pass

    KLOG_KEEP = 2000

    def append_klog(self, lines):
        """The simulated kernel's log (what dmesg would show), newest KLOG_KEEP lines."""
        import time
        now = time.time()
        self.db.executemany("INSERT INTO klog(ts, line) VALUES(?, ?)",
                            [(now, l) for l in lines])
        self.db.execute("DELETE FROM klog WHERE seq <= (SELECT MAX(seq) FROM klog) - ?",
                        (self.KLOG_KEEP,))

    _wcache_made = False

    def journal_path(self, backing_minor):
        d = os.path.join(self.dir, "wcache")
        if not self._wcache_made:
            os.makedirs(d, exist_ok=True)
            self._wcache_made = True
        return os.path.join(d, "%d.jnl" % backing_minor)


# Modules that pickled state written by earlier dmctl versions names, and where their
# classes live now (state survives an upgrade: tests/sim/test_legacy_state.py).
_RENAMED_MODULES = {
    "dmctl.targets": "dmctl.sim.targets",
    "dmctl.backend.base": "dmctl.records",
    "dmctl.backend.sim": "dmctl.sim.core",
}


def _renamed(module):
    for old, new in _RENAMED_MODULES.items():
        if module == old or module.startswith(old + "."):
            return new + module[len(old):]
    return module


def loads(blob):
    """``pickle.loads`` of simulator state, old module paths mapped to today's."""
    import io
    import pickle

    class _Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            return super().find_class(_renamed(module), name)
    return _Unpickler(io.BytesIO(blob)).load()
