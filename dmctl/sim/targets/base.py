"""The simulated target framework: the kernel's ``struct target_type`` as a class.

A target class has the kernel's hooks (ctr, dtr, map, end_io, presuspend,
postsuspend, preresume, resume, status, message, iterate_devices) and its identity
(name, version).  Instances persist between dmctl processes: ``save()`` returns their
in-core state, ``restore()`` rebuilds them; device references are stored as device
numbers and re-resolved through the environment.

Registry: target names map to "module:Class" and are imported only when a table
uses them (``dmctl ls``/``status`` of linear devices never imports era or mirror).
"""

import errno

from dmctl.errors import TargetError
from dmctl.sim import bio as B

STATUSTYPE_INFO = 0
STATUSTYPE_TABLE = 1
STATUSTYPE_IMA = 2

# In the kernel's list order (dmsetup targets on Debian's 6.1: most recently
# registered first; linear/striped/error are built into dm-mod and come last).
REGISTRY = {
    "zero": ("dmctl.sim.targets.zero:Zero", (1, 1, 0)),
    "mirror": ("dmctl.sim.targets.mirror:Mirror", (1, 14, 0)),
    "log-writes": ("dmctl.sim.targets.log_writes:LogWrites", (1, 1, 0)),
    "era": ("dmctl.sim.targets.era:Era", (1, 0, 0)),
    "striped": ("dmctl.sim.targets.striped:Striped", (1, 6, 0)),
    "linear": ("dmctl.sim.targets.linear:Linear", (1, 4, 0)),
    "error": ("dmctl.sim.targets.error:Error", (1, 5, 0)),
}


def _module_exists(modpath):
    import importlib.util
    try:
        return importlib.util.find_spec(modpath) is not None
    except (ImportError, ValueError):
        return False


def available():
    """[(name, version)] of the targets this simulator has, in kernel list order."""
    out = []
    for name, (path, version) in REGISTRY.items():
        if _module_exists(path.split(":")[0]):
            out.append((name, version))
    return out


_CLASSES = {}


def get_class(name):
    cls = _CLASSES.get(name)
    if cls is not None:
        return cls
    ent = REGISTRY.get(name)
    if ent is None or not _module_exists(ent[0].split(":")[0]):
        return None
    import importlib
    modname, attr = ent[0].split(":")
    cls = getattr(importlib.import_module(modname), attr)
    _CLASSES[name] = cls
    return cls


def split_args(s):
    """dm_split_args: whitespace-separated, backslash quotes the next character."""
    out = []
    cur = []
    have = False
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            cur.append(s[i + 1])
            have = True
            i += 2
            continue
        if c in " \t\n\v\f\r":
            if have:
                out.append("".join(cur))
                cur = []
                have = False
            i += 1
            continue
        cur.append(c)
        have = True
        i += 1
    if have:
        out.append("".join(cur))
    return out


class TargetInfo:
    """``struct dm_target``: where the target sits in its table."""
    __slots__ = ("begin", "len", "table_ro", "error", "num_flush_bios",
                 "num_discard_bios", "max_io_len")

    def __init__(self, begin, length, table_ro=False):
        self.begin = begin
        self.len = length
        self.table_ro = table_ro
        self.error = None
        self.num_flush_bios = 0
        self.num_discard_bios = 0
        # dm_set_target_max_io_len: the core splits bios at multiples of this
        # (relative to the target's start) before map() sees them; 0 = no limit
        self.max_io_len = 0


class Target:
    """Base class of simulated targets.  Subclasses set ``name`` and ``version`` and
    override the hooks they need; the defaults are the kernel's behaviour for a target
    that lacks the hook."""

    name = None
    version = (0, 0, 0)
    # ti->discards_supported: the target handles discards whatever its devices do
    discards_supported = False
    # whether the kernel's target type has an iterate_devices method
    has_iterate_devices = True
    # whether the target's background work goes on while its device is suspended
    # (most targets stop their workers in presuspend/postsuspend)
    works_while_suspended = False
    # per-target transient attributes not saved between processes
    transient = ("env", "ti", "md")

    def __init__(self, env, ti):
        self.env = env
        self.ti = ti
        self.md = None          # the mapped device (set by the core)
        self.devs = []          # DevRefs in dm_get_device order

    # -- construction ---------------------------------------------------------------
    @classmethod
    def ctr(cls, env, ti, argv):
        raise NotImplementedError

    def get_device(self, path, error_text, errno_override=None):
        """dm_get_device: resolve a path or MAJ:MIN; raise TargetError on failure."""
        try:
            dev = self.env.lookup_device(path)
        except OSError as e:
            raise TargetError(errno_override or e.errno, error_text)
        self.devs.append(dev.devno)
        self.env.get_ref(dev, self)
        return dev

    def dev(self, devno):
        return self.env.device_by_devno(devno)

    def dtr(self):
        pass

    # -- I/O ------------------------------------------------------------------------
    def map(self, bio):
        return B.DM_MAPIO_KILL

    def end_io(self, bio, error):
        return B.DM_ENDIO_DONE

    # -- lifecycle ------------------------------------------------------------------
    def presuspend(self, noflush=False):
        pass

    def postsuspend(self):
        pass

    def preresume(self):
        pass

    def resume(self):
        pass

    # -- reporting ------------------------------------------------------------------
    def status(self, type_, noflush=False):
        return ""

    def message(self, argv):
        raise TargetError(errno.EINVAL, "Target type does not support messages",
                          log="device-mapper: ioctl: Target type does not support messages")

    has_message = False

    def iterate_devices(self):
        return list(self.devs)

    def work(self, budget):
        """Background work (the target's worker threads): do at most ``budget``
        steps, return the number done (0 when idle)."""
        return 0

    # -- persistence ----------------------------------------------------------------
    def save(self):
        return {k: v for k, v in self.__dict__.items() if k not in self.transient}

    @classmethod
    def restore(cls, env, ti, state):
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        obj.env = env
        obj.ti = ti
        obj.md = None
        obj.attach()
        return obj

    def attach(self):
        """Re-acquire transient resources after restore()."""
        pass

    def devno_str(self, devno):
        return "%d:%d" % devno


def target_offset(ti, sector):
    return sector - ti.begin
