"""``struct dm_dirty_log_type`` (include/linux/dm-dirty-log.h) as a class.

Operations (kernel names): ctr, dtr, presuspend, postsuspend, resume,
get_region_size, is_clean, in_sync, flush, mark_region, clear_region,
get_resync_work, set_region_sync, get_sync_count, status, is_remote_recovering.

A log instance lives inside the mirror target and is saved with it: it keeps only
picklable state.  ``self.ms`` (the owning mirror target: its environment, its flush
callback ``mirror_flush`` and its table event) is transient and re-attached by the
mirror after a restore.
"""

from dmctl.errors import DmctlError

PREFIX = "device-mapper: dirty region log: "


class LogError(DmctlError):
    """A log constructor failed: errno plus the kernel log lines it printed."""

    def __init__(self, err, lines=()):
        self.errno = err
        self.lines = list(lines)
        super().__init__("; ".join(self.lines) or str(err))


class DirtyLog:
    name = None
    has_presuspend = False
    has_postsuspend = False
    has_resume = False
    has_is_remote_recovering = False
    transient = ("ms",)

    def __init__(self, ms):
        self.ms = ms

    # persistence: never pickle the owning target (it holds the environment)
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self.transient}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.ms = None

    def attach(self, ms):
        self.ms = ms

    # -- the dm_dirty_log_type operations ------------------------------------------------
    def dtr(self):
        pass

    def presuspend(self):
        return 0

    def postsuspend(self):
        return 0

    def resume(self):
        return 0

    def get_region_size(self):
        raise NotImplementedError

    def is_clean(self, region):
        raise NotImplementedError

    def in_sync(self, region, can_block):
        raise NotImplementedError

    def flush(self):
        return 0

    def mark_region(self, region):
        raise NotImplementedError

    def clear_region(self, region):
        raise NotImplementedError

    def get_resync_work(self):
        """(r, region): r < 0 error, 0 nothing to do, 1 ``region`` to recover."""
        raise NotImplementedError

    def set_region_sync(self, region, in_sync):
        raise NotImplementedError

    def get_sync_count(self):
        raise NotImplementedError

    def status(self, type_):
        return ""

    def is_remote_recovering(self, region):
        return 0

    # -- helpers for the simulator ----------------------------------------------------------
    def has_resync_work(self):
        """Whether get_resync_work could hand out a region (no side effects); used to
        tell the simulator's work loop that the mirror is idle."""
        return True

    def table_event(self):
        if self.ms is not None:
            self.ms.table_event()

    def klog(self, line):
        if self.ms is not None:
            self.ms.env.klog(line)
