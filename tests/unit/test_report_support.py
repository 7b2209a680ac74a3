"""A small in-memory Mapper with the device state of the golden "generic" captures
(DEVICES-generic.txt: loop7 is 7:7), for the query/report tests."""

import errno

from dmctl.backend import base
from dmctl.backend.base import DeviceEntry, DeviceInfo, Mapper, TargetLine, TargetVersion
from dmctl.errors import DmError
from testlib import need_golden as golden  # noqa: F401  (tests/golden; missing: fails)


LIVE = base.DM_ACTIVE_PRESENT_FLAG
INACT = base.DM_INACTIVE_PRESENT_FLAG
SUSP = base.DM_SUSPEND_FLAG
RO = base.DM_READONLY_FLAG


class Dev:
    def __init__(self, name, minor, uuid="", flags=LIVE, open_count=0, event_nr=0,
                 table=(), status=None, deps=()):
        self.name = name
        self.minor = minor
        self.uuid = uuid
        self.flags = flags
        self.open_count = open_count
        self.event_nr = event_nr
        self.table = [TargetLine(*t) for t in table]
        self.status = [TargetLine(*t) for t in (status if status is not None else
                                                 [(s, l, ty, "") for s, l, ty, _p in table])]
        self.deps = list(deps)

    def info(self):
        return DeviceInfo(self.name, self.uuid, 254, self.minor, self.flags, self.open_count,
                          self.event_nr, len(self.table) if self.flags & LIVE else 0)


def generic_devices():
    return [
        Dev("empty1", 2, "EMPTY-UUID-1", event_nr=1, table=[(0, 1024, "zero", "")]),
        Dev("lin1", 1, "LIN-UUID-0001", open_count=1, event_nr=2,
            table=[(0, 16384, "linear", "7:7 0")], deps=[(7, 7)]),
        Dev("multi", 0, table=[(0, 1024, "linear", "7:7 0"), (1024, 1024, "zero", ""),
                               (2048, 1024, "error", "")], deps=[(7, 7)]),
        Dev("ro1", 3, flags=LIVE | RO, table=[(0, 1024, "zero", "")]),
        Dev("stack1", 4, table=[(0, 16384, "linear", "254:1 0")], deps=[(254, 1)]),
    ]


def mirror_devices():
    return [Dev("m2", 0, "MIRROR-UUID-0002", event_nr=1,
                table=[(0, 16384, "mirror", "disk 2 7:6 1024 2 7:4 0 7:5 0")],
                status=[(0, 16384, "mirror", "2 7:4 7:5 16/16 1 AA 3 disk 7:6 A")],
                deps=[(7, 5), (7, 4), (7, 6)])]


class FakeMapper(Mapper):
    kind = "sim"
    simulated = True            # what SimMapper says of itself
    emits_uevents = False
    has_device_nodes = False

    def __init__(self, devices=None, targets=None):
        self.devs = {d.name: d for d in (devices if devices is not None else generic_devices())}
        self.targets = targets or [("zero", (1, 1, 0)), ("mirror", (1, 14, 0)),
                                   ("log-writes", (1, 1, 0)), ("era", (1, 0, 0)),
                                   ("striped", (1, 6, 0)), ("linear", (1, 4, 0)),
                                   ("error", (1, 5, 0))]

    def _find(self, dev, op):
        dev = base.DevId.coerce(dev)
        for d in self.devs.values():
            if (dev.name is not None and d.name == dev.name) or \
               (dev.uuid is not None and d.uuid == dev.uuid) or \
               (dev.major is not None and dev.major == 254 and d.minor == dev.minor):
                return d
        raise DmError(errno.ENXIO, op=op, name=dev.name, uuid=dev.uuid)

    def version(self):
        return (4, 47, 0)

    def list_devices(self, uuid=False):
        return [DeviceEntry(d.name, 254, d.minor, d.event_nr, d.uuid if uuid else None)
                for d in sorted(self.devs.values(), key=lambda d: d.name)]

    def target_versions(self):
        return [TargetVersion(n, v) for n, v in self.targets]

    def target_version(self, name):
        for n, v in self.targets:
            if n == name:
                return TargetVersion(n, v)
        raise DmError(errno.EINVAL, op="target-version", name=name)

    def info(self, dev, inactive=False):
        return self._find(dev, "info").info()

    def table(self, dev, inactive=False):
        d = self._find(dev, "table")
        return d.info(), list(d.table)

    def status(self, dev, inactive=False, noflush=False):
        d = self._find(dev, "status")
        return d.info(), list(d.status)

    def deps(self, dev, inactive=False):
        d = self._find(dev, "deps")
        return d.info(), list(d.deps)

    def read_ahead(self, info):
        return 256


def run(monkeypatch, capsys, argv, mapper=None):
    """Run the CLI in-process against a FakeMapper -> (rc, out, err)."""
    import dmctl.backend
    from dmctl.cli import main as M
    m = mapper if mapper is not None else FakeMapper()
    monkeypatch.setattr(dmctl.backend, "get_mapper", lambda kind=None: m)
    monkeypatch.delenv("DM_DEFAULT_NAME_MANGLING_MODE", raising=False)
    try:
        rc = M.main(list(argv), prog="dmsetup")
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err
