"""Persistent state of the simulated device mapper: one SQLite database per sim dir.

Everything the kernel would keep in memory between two dmsetup invocations (devices,
their tables, targets' in-core state, the disks' volatile write caches) lives here, so
that the simulator behaves like one running kernel across many dmctl processes.  Each
dmctl command is one transaction (``BEGIN IMMEDIATE``): concurrent dmctl processes are
serialised, and a process killed mid-command leaves the previous state intact.
"""

import os
import sqlite3

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
    inactive BLOB
);
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

SCHEMA_VERSION = 1


def default_sim_dir():
    d = os.environ.get("DMCTL_SIM_DIR")
    if d:
        return d
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "dmctl", "sim")


class Store:
    """The database connection; ``transaction()`` brackets one dmctl command."""

    def __init__(self, sim_dir=None):
        self.dir = sim_dir or default_sim_dir()
        os.makedirs(self.dir, exist_ok=True)
        self.path = os.path.join(self.dir, "state.db")
        self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=60000")
        self._depth = 0
        self._init_schema()

    def _init_schema(self):
        row = self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='klog'").fetchone()
        if row is None:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in SCHEMA.strip().split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

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

    def journal_path(self, backing_minor):
        d = os.path.join(self.dir, "wcache")
        os.makedirs(d, exist_ok=True)
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
