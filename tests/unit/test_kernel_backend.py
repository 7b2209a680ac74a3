"""KernelMapper over SimControl over a small in-memory Mapper, checked against strace.

The fake Mapper below knows just enough device-mapper semantics (minors, tables,
suspend, event numbers, uevents, readonly) to reproduce the golden strace session of
dmsetup 1.02.185 on Linux 6.1 (reference/golden/strace-verbose-*.stderr.txt, copied
verbatim below).  Every ioctl KernelMapper issues, with the reply SimControl writes,
must show the same header fields and payloads strace printed.
"""

import errno
import re
import struct
import threading

import pytest

from dmctl.backend import base
from dmctl.backend.base import DevId, DeviceEntry, DeviceInfo, TargetLine, TargetVersion
from dmctl.backend.kernel import KernelMapper
from dmctl.ioctl.simcontrol import SimControl
from dmctl.errors import DmError
from dmctl.ioctl import abi, codec

TL = TargetLine

GOLDEN_TARGETS = [("zero", (1, 1, 0)), ("mirror", (1, 14, 0)), ("log-writes", (1, 1, 0)),
                  ("era", (1, 0, 0)), ("striped", (1, 6, 0)), ("linear", (1, 4, 0)),
                  ("error", (1, 5, 0))]


# ==================================================================================
# A tiny in-memory device-mapper
# ==================================================================================
class _Dev:
    def __init__(self, name, uuid, minor):
        self.name, self.uuid, self.minor = name, uuid, minor
        self.live = None
        self.live_ro = False
        self.inactive = None
        self.inactive_ro = False
        self.suspended = False
        self.open_count = 0
        self.event_nr = 0
        self.had_table = False
        self.geometry = None


def _devno(tok):
    m = re.match(r"/dev/loop(\d+)$", tok)
    if m:
        return 7, int(m.group(1))
    m = re.match(r"(\d+):(\d+)$", tok)
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


class FakeMapper(base.Mapper):
    kind = "fake"
    MAJOR = 254

    def __init__(self):
        self.devs = {}
        self.cond = threading.Condition()

    # -- helpers
    def _get(self, dev):
        d = DevId.coerce(dev)
        for x in self.devs.values():
            if (d.name and x.name == d.name) or (d.uuid and x.uuid == d.uuid) or \
                    (d.major is not None and (self.MAJOR, x.minor) == (d.major, d.minor)):
                return x
        raise DmError(errno.ENXIO)

    def _info(self, x, inactive=False, uevent=False):
        f = 0
        tc = 0
        if x.suspended:
            f |= abi.DM_SUSPEND_FLAG
        if x.live is not None:
            f |= abi.DM_ACTIVE_PRESENT_FLAG
            if not inactive:
                tc = len(x.live)
                if x.live_ro:
                    f |= abi.DM_READONLY_FLAG
        if x.inactive is not None:
            f |= abi.DM_INACTIVE_PRESENT_FLAG
            if inactive:
                tc = len(x.inactive)
                if x.inactive_ro:
                    f |= abi.DM_READONLY_FLAG
        if uevent:
            f |= abi.DM_UEVENT_GENERATED_FLAG
        return DeviceInfo(x.name, x.uuid or "", self.MAJOR, x.minor, f, x.open_count,
                          x.event_nr, tc)

    def _table(self, x, inactive):
        return x.inactive if inactive else x.live

    # -- driver
    def version(self):
        return (4, 47, 0)

    def list_devices(self, uuid=False):
        return [DeviceEntry(x.name, self.MAJOR, x.minor, x.event_nr,
                            (x.uuid or "") if uuid else None)
                for x in sorted(self.devs.values(), key=lambda x: x.name)]

    def target_versions(self):
        return [TargetVersion(n, v) for n, v in GOLDEN_TARGETS]

    def target_version(self, name):
        for n, v in GOLDEN_TARGETS:
            if n == name:
                return TargetVersion(n, v)
        raise DmError(errno.EINVAL)

    def remove_all(self, deferred=False):
        for k in [k for k, x in self.devs.items() if not x.open_count]:
            del self.devs[k]

    # -- lifecycle
    def create(self, name, uuid=None, minor=None, readonly=False):
        if "/" in name:
            raise DmError(errno.EINVAL, detail="device-mapper: ioctl: device name "
                          "cannot contain '/'")
        if name in self.devs or (uuid and any(x.uuid == uuid for x in self.devs.values())):
            raise DmError(errno.EBUSY)
        used = {x.minor for x in self.devs.values()}
        if minor is None:
            minor = next(m for m in range(1 << 20) if m not in used)
        elif minor in used:
            raise DmError(errno.EBUSY)
        x = self.devs[name] = _Dev(name, uuid, minor)
        return self._info(x)

    def load(self, dev, lines, readonly=False):
        x = self._get(dev)
        known = {n for n, _ in GOLDEN_TARGETS}
        for t in lines:
            if t.target_type not in known:
                raise DmError(errno.EINVAL, detail="device-mapper: table: %d:%d: %s: unknown "
                              "target type" % (self.MAJOR, x.minor, t.target_type))
            if t.target_type == "era" and len(t.params.split()) != 3:
                raise DmError(errno.EINVAL, detail="device-mapper: table: %d:%d: era: "
                              "Invalid argument count (-EINVAL)" % (self.MAJOR, x.minor))
        x.inactive, x.inactive_ro = list(lines), readonly
        return self._info(x)

    def resume(self, dev, noflush=False, nolockfs=False, cookie=0):
        x = self._get(dev)
        uevent = False
        if x.inactive is not None:
            x.live, x.live_ro, x.inactive = x.inactive, x.inactive_ro, None
            x.had_table = True
            x.suspended = True
        if x.suspended:
            if x.live is None:
                raise DmError(errno.EINVAL)
            x.suspended = False
            uevent = True
        return self._info(x, uevent=uevent)

    def suspend(self, dev, noflush=False, nolockfs=False):
        x = self._get(dev)
        x.suspended = True
        return self._info(x)

    def clear(self, dev):
        x = self._get(dev)
        x.inactive = None
        return self._info(x)

    def remove(self, dev, deferred=False, cookie=0):
        x = self._get(dev)
        if x.open_count:
            if deferred:
                return self._info(x)
            raise DmError(errno.EBUSY)
        del self.devs[x.name]
        return self._info(x, uevent=x.had_table)

    def rename(self, dev, new, set_uuid=False, cookie=0):
        x = self._get(dev)
        if set_uuid:
            if x.uuid:
                raise DmError(errno.EINVAL)
            x.uuid = new
        else:
            if new in self.devs:
                raise DmError(errno.EBUSY)
            del self.devs[x.name]
            x.name = new
            self.devs[new] = x
        with self.cond:
            x.event_nr += 1            # dm_table_event() on the live table
            self.cond.notify_all()
        return self._info(x, uevent=x.had_table)

    def set_geometry(self, dev, cylinders, heads, sectors, start):
        x = self._get(dev)
        try:
            g = tuple(int(v) for v in (cylinders, heads, sectors, start))
        except ValueError:
            raise DmError(errno.EINVAL, detail="device-mapper: ioctl: Unable to interpret "
                          "geometry settings.")
        x.geometry = g

    # -- queries
    def info(self, dev, inactive=False):
        return self._info(self._get(dev), inactive)

    def table(self, dev, inactive=False):
        x = self._get(dev)
        lines = []
        for t in self._table(x, inactive) or []:
            toks = t.params.split()
            toks = ["%d:%d" % _devno(s) if _devno(s) else s for s in toks]
            lines.append(TL(t.start, t.length, t.target_type, " ".join(toks)))
        return self._info(x, inactive), lines

    def status(self, dev, inactive=False, noflush=False):
        x = self._get(dev)
        lines = [TL(t.start, t.length, t.target_type,
                    "" if t.target_type in ("linear", "zero", "error") else t.params)
                 for t in self._table(x, inactive) or []]
        return self._info(x, inactive), lines

    def measure(self, dev, inactive=False):
        return self.status(dev, inactive)

    def deps(self, dev, inactive=False):
        x = self._get(dev)
        devs = []
        for t in self._table(x, inactive) or []:
            for s in t.params.split():
                d = _devno(s)
                if d and d not in devs:
                    devs.insert(0, d)             # list_add(): reverse of first use
        return self._info(x, inactive), devs

    def message(self, dev, sector, message):
        x = self._get(dev)
        if x.live is None:
            return None
        t = x.live[0]
        if t.target_type != "era":
            raise DmError(errno.EINVAL, detail="device-mapper: ioctl: Target type does "
                          "not support messages")
        if message == "status":
            return "era ok " * 3
        if message == "huge":
            return "x" * 40000
        if message == "checkpoint":
            x.event_nr += 1
            return None
        raise DmError(errno.EINVAL, detail="device-mapper: era: unsupported message '%s'"
                      % message)

    def wait_event(self, dev, event_nr=0, inactive=False, noflush=False, timeout=None):
        x = self._get(dev)
        with self.cond:
            while x.event_nr == event_nr:
                if not self.cond.wait(timeout):
                    raise DmError(errno.ETIME)
        return self.status(dev, inactive, noflush)


class Recorder:
    """Wraps a control device and keeps (nr, request bytes, reply bytes, ret, errno)."""

    def __init__(self, inner):
        self.inner = inner
        self.log = []

    def ioctl(self, nr, buf):
        req = bytes(buf)
        try:
            r = self.inner.ioctl(nr, buf)
        except OSError as e:
            self.log.append((nr, req, bytes(buf), -1, e.errno))
            raise
        self.log.append((nr, req, bytes(buf), r, None))
        return r

    def poll(self, timeout):
        return self.inner.poll(timeout)

    @property
    def last_detail(self):
        return self.inner.last_detail


def sim():
    fm = FakeMapper()
    return fm, Recorder(SimControl(fm))


# ==================================================================================
# strace output parser
# ==================================================================================
def _parse_value(s, i):
    c = s[i]
    if c == "[":
        i += 1
        out = []
        while s[i] != "]":
            v, i = _parse_value(s, i)
            out.append(v)
            if s.startswith(", ", i):
                i += 2
        return out, i + 1
    if c == "{":
        i += 1
        out = {}
        while s[i] != "}":
            j = s.index("=", i)
            key = s[i:j]
            v, i = _parse_value(s, j + 1)
            out[key] = v
            if s.startswith(", ", i):
                i += 2
        return out, i + 1
    if c == '"':
        j = s.index('"', i + 1)
        return s[i + 1:j].encode(), j + 1
    if s.startswith("makedev(", i):
        j = s.index(")", i)
        a, b = s[i + 8:j].split(", ")
        return ("makedev", int(a, 0), int(b, 0)), j + 1
    if s.startswith("...", i):
        return Ellipsis, i + 3
    j = i
    while j < len(s) and s[j] not in ",}]":
        j += 1
    tok = s[i:j]
    try:
        return int(tok, 0), j
    except ValueError:
        return tok, j


def parse_strace(line):
    m = re.match(r"ioctl\((\w+), (\w+), (.*)\) += (-?\d+)(?: (\w+))?", line)
    assert m, line
    cmd, args, ret, err = m.group(2), m.group(3), int(m.group(4)), m.group(5)
    req, i = _parse_value(args, 0)
    reply = None
    if args.startswith(" => ", i):
        reply, i = _parse_value(args, i + 4)
    return cmd, req, reply, ret, err


def _flags(text):
    v = 0
    for n in text.split("|"):
        v |= getattr(abi, n)
    return v


def check_header(buf, fields, what):
    h = codec.Header.unpack(buf)
    for k, v in fields.items():
        if k == "version":
            assert list(h.version) == v, what
        elif k == "flags":
            assert abi.flag_names(h.flags) == abi.flag_names(_flags(v)), what
        elif k == "dev":
            assert abi.huge_decode_dev(h.dev) == (v[1], v[2]), what
        elif k in ("name", "uuid"):
            assert getattr(h, k) == v, (what, k)
        else:
            assert getattr(h, k) == v, (what, k, getattr(h, k), v)


def check_payload(cmd, direction, buf, items, what):
    """items: the dicts strace printed after the header."""
    if not items:
        return
    if cmd == "DM_TABLE_LOAD" and direction == "req":
        p = codec.kernel_copy_in(bytearray(buf), abi.DM_TABLE_LOAD_CMD)[0]
        lines = codec.kernel_parse_load(p)
        assert [dict(sector_start=t.start, length=t.length, target_type=t.target_type.encode(),
                     string=t.params.encode()) for t in lines] == items, what
    elif cmd == "DM_DEV_RENAME" and direction == "req":
        h = codec.Header.unpack(buf)
        assert items == [{"string": codec.cstring(buf, h.data_start)}], what
    elif cmd == "DM_TARGET_MSG" and direction == "req":
        h = codec.Header.unpack(buf)
        sector = struct.unpack_from("=Q", buf, h.data_start)[0]
        msg = codec.cstring(buf, h.data_start + 8)
        assert items == [{"sector": sector, "message": msg}], what
    elif cmd == "DM_TABLE_STATUS":
        got = [dict(sector_start=t.start, length=t.length, status=0,
                    target_type=t.target_type.encode(), string=t.params.encode())
               for t in codec.decode_target_specs(buf)]
        assert got == items, what
    elif cmd == "DM_TABLE_DEPS":
        deps = codec.decode_deps(buf)
        assert items == [{"count": len(deps),
                          "deps": [("makedev", a, b) for a, b in deps]}], what
    elif cmd == "DM_LIST_DEVICES":
        got = [{"dev": ("makedev", e.major, e.minor), "name": e.name.encode()}
               for e in codec.decode_name_list(buf, has_ext=True)]
        assert got == items, what
    elif cmd == "DM_LIST_VERSIONS":
        got = [{"name": v.name.encode(), "version": list(v.version)}
               for v in codec.decode_versions(buf)]
        assert got == items, what
    else:
        raise AssertionError("unchecked payload %s %s" % (cmd, what))


def check_against_strace(rec_entry, line):
    nr, req, rep, ret, err = rec_entry
    cmd, sreq, srep, sret, serr = parse_strace(line)
    assert abi.CMD_NAMES[nr] == cmd, (line, nr)
    assert (ret, err and errno.errorcode[err]) == (sret, serr), line
    check_header(req, sreq[0], ("request", line))
    check_payload(cmd, "req", req, [x for x in sreq[1:] if x is not Ellipsis], line)
    check_header(rep, srep[0], ("reply", line))
    if sret == 0:
        check_payload(cmd, "rep", rep, srep[1:], line)
    else:
        # on error the kernel copies nothing back except the version words
        assert rep[12:] == req[12:], line


# ---- the golden session (verbatim strace -v lines) ---------------------------------
V = ('ioctl(3, DM_VERSION, [{version=[4, 0, 0], data_size=16384, flags=DM_EXISTS_FLAG}] => '
     '[{version=[4, 47, 0], data_size=16384, flags=DM_EXISTS_FLAG}]) = 0')

CREATE_LIN1 = [V,
    'ioctl(3, DM_DEV_CREATE, [{version=[4, 0, 0], data_size=16384, name="lin1", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin1", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG}]) = 0',
    'ioctl(3, DM_TABLE_LOAD, [{version=[4, 0, 0], data_size=16384, data_start=312, dev=makedev(0xfe, 0), target_count=1, flags=DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG}, {sector_start=0, length=32768, target_type="linear", string="/dev/loop7 0"}] => [{version=[4, 47, 0], data_size=305, data_start=312, dev=makedev(0xfe, 0), name="lin1", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG|DM_INACTIVE_PRESENT_FLAG}]) = 0',
    'ioctl(3, DM_DEV_SUSPEND, [{version=[4, 0, 0], data_size=16384, name="lin1", event_nr=4390912, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0',
]


def _create(name, length, cookie, uuid=None, readonly=False, minor=0):
    def run(km):
        km.create(name, uuid=uuid)
        km.load((254, minor), [TL(0, length, "linear", "/dev/loop7 0")], readonly=readonly)
        km.resume(name, cookie=cookie, readonly=readonly)
    return run


def _expect_error(fn, err):
    def run(km):
        with pytest.raises(DmError) as e:
            fn(km)
        assert e.value.errno == err
    return run


def _create_bad(km):
    km.create("bad1")
    try:
        km.load((254, 2), [TL(0, 1024, "era", "/dev/loop1 /dev/loop0")])
    except DmError as e:
        assert e.errno == errno.EINVAL and e.op == "reload"
        assert (e.major, e.minor) == (254, 2)
        assert "era: Invalid argument count" in e.detail
        km.remove("bad1", cookie=0x430000)
    else:
        raise AssertionError("load should have failed")


SESSION = [
    ("create lin1", _create("lin1", 32768, 0x430000), CREATE_LIN1),
    ("info lin1", lambda km: km.info("lin1"), [V,
        'ioctl(3, DM_DEV_STATUS, [{version=[4, 0, 0], data_size=16384, name="lin1", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG}]) = 0']),
    ("table lin1", lambda km: km.table("lin1"), [V,
        'ioctl(3, DM_TABLE_STATUS, [{version=[4, 0, 0], data_size=16384, data_start=312, name="lin1", flags=DM_EXISTS_FLAG|DM_STATUS_TABLE_FLAG}] => [{version=[4, 47, 0], data_size=358, data_start=312, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_STATUS_TABLE_FLAG|DM_ACTIVE_PRESENT_FLAG}, {sector_start=0, length=32768, status=0, target_type="linear", string="7:7 0"}]) = 0']),
    ("status lin1", lambda km: km.status("lin1"), [V,
        'ioctl(3, DM_TABLE_STATUS, [{version=[4, 0, 0], data_size=16384, data_start=312, name="lin1", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=353, data_start=312, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG}, {sector_start=0, length=32768, status=0, target_type="linear", string=""}]) = 0']),
    ("ls", lambda km: km.list_devices(), [V,
        'ioctl(3, DM_LIST_DEVICES, [{version=[4, 0, 0], data_size=16384, data_start=312, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=344, data_start=312, flags=DM_EXISTS_FLAG}, {dev=makedev(0xfe, 0), name="lin1"}]) = 0']),
    ("targets", lambda km: km.target_versions(), [V,
        'ioctl(3, DM_LIST_VERSIONS, [{version=[4, 1, 0], data_size=16384, data_start=312, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=521, data_start=312, flags=DM_EXISTS_FLAG}, {name="zero", version=[1, 1, 0]}, {name="mirror", version=[1, 14, 0]}, {name="log-writes", version=[1, 1, 0]}, {name="era", version=[1, 0, 0]}, {name="striped", version=[1, 6, 0]}, {name="linear", version=[1, 4, 0]}, {name="error", version=[1, 5, 0]}]) = 0']),
    # dmsetup version: libdm's check, then the command's own DM_VERSION (backend
    # selection calls version() once, the command again)
    ("version", lambda km: (km.version(), km.version()), [V, V]),
    ("suspend", lambda km: km.suspend("lin1"), [V,
        'ioctl(3, DM_DEV_SUSPEND, [{version=[4, 0, 0], data_size=16384, name="lin1", flags=DM_SUSPEND_FLAG|DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_SUSPEND_FLAG|DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG}]) = 0']),
    ("resume", lambda km: km.resume("lin1", cookie=0x430000), [V,
        'ioctl(3, DM_DEV_SUSPEND, [{version=[4, 0, 0], data_size=16384, name="lin1", event_nr=4390912, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("load", lambda km: km.load("lin1", [TL(0, 16384, "linear", "/dev/loop7 0")]), [V,
        'ioctl(3, DM_TABLE_LOAD, [{version=[4, 0, 0], data_size=16384, data_start=312, name="lin1", target_count=1, flags=DM_EXISTS_FLAG}, {sector_start=0, length=16384, target_type="linear", string="/dev/loop7 0"}] => [{version=[4, 47, 0], data_size=305, data_start=312, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG|DM_INACTIVE_PRESENT_FLAG}]) = 0']),
    ("clear", lambda km: km.clear("lin1"), [V,
        'ioctl(3, DM_TABLE_CLEAR, [{version=[4, 0, 0], data_size=16384, name="lin1", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG}]) = 0']),
    ("rename", lambda km: km.rename("lin1", "lin1b", cookie=0x430000), [V,
        'ioctl(3, DM_DEV_RENAME, [{version=[4, 0, 0], data_size=16384, data_start=312, name="lin1", event_nr=4390912, flags=DM_EXISTS_FLAG}, {string="lin1b"}] => [{version=[4, 47, 0], data_size=305, data_start=312, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=1, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("rename back", lambda km: km.rename("lin1b", "lin1", cookie=0x430000), [V,
        'ioctl(3, DM_DEV_RENAME, [{version=[4, 0, 0], data_size=16384, data_start=312, name="lin1b", event_nr=4390912, flags=DM_EXISTS_FLAG}, {string="lin1"}] => [{version=[4, 47, 0], data_size=305, data_start=312, dev=makedev(0xfe, 0), name="lin1b", target_count=1, open_count=0, event_nr=2, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("deps", lambda km: km.deps("lin1"), [V,
        'ioctl(3, DM_TABLE_DEPS, [{version=[4, 0, 0], data_size=16384, data_start=312, name="lin1", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=328, data_start=312, dev=makedev(0xfe, 0), name="lin1", target_count=1, open_count=0, event_nr=2, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG}, {count=1, deps=[makedev(0x7, 0x7)]}]) = 0']),
    ("remove", lambda km: km.remove("lin1", cookie=0x430000), [V,
        'ioctl(3, DM_DEV_REMOVE, [{version=[4, 0, 0], data_size=16384, name="lin1", event_nr=4390912, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, name="lin1", flags=DM_EXISTS_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("create lin1 again", _create("lin1", 32768, 0x430000), CREATE_LIN1),
    ("create lin2 (raw)", _create("lin2", 1024, 0x430000, minor=1), [
        "ioctl(0x3, 0xc138fd00, 0x556864f341b0)  = 0",
        "ioctl(0x3, 0xc138fd03, 0x556864f34260)  = 0",
        "ioctl(0x3, 0xc138fd09, 0x556864f34260)  = 0",
        "ioctl(0x3, 0xc138fd06, 0x556864f34260)  = 0"]),
    ("create bad1", _create_bad, [V,
        'ioctl(3, DM_DEV_CREATE, [{version=[4, 0, 0], data_size=16384, name="bad1", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0x2), name="bad1", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG}]) = 0',
        'ioctl(3, DM_TABLE_LOAD, [{version=[4, 0, 0], data_size=16384, data_start=312, dev=makedev(0xfe, 0x2), target_count=1, flags=DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG}, {sector_start=0, length=1024, target_type="era", string="/dev/loop1 /dev/loop0"}] => [{version=[4, 47, 0], data_size=16384, data_start=312, dev=makedev(0xfe, 0x2), flags=DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG}]) = -1 EINVAL (Invalid argument)',
        'ioctl(3, DM_DEV_REMOVE, [{version=[4, 0, 0], data_size=16384, name="bad1", event_nr=4390912, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, name="bad1", flags=DM_EXISTS_FLAG}]) = 0']),
    ("message lin1 0 hello", _expect_error(lambda km: km.message("lin1", 0, "hello"),
                                           errno.EINVAL), [V,
        'ioctl(3, DM_TARGET_MSG, [{version=[4, 2, 0], data_size=16384, data_start=312, name="lin1", flags=DM_EXISTS_FLAG}, {sector=0, message="hello"}] => [{version=[4, 47, 0], data_size=16384, data_start=312, name="lin1", flags=DM_EXISTS_FLAG}]) = -1 EINVAL (Invalid argument)']),
    ("remove_all", lambda km: (km.remove_all(), km.list_devices()), [V,
        'ioctl(3, DM_REMOVE_ALL, [{version=[4, 0, 0], data_size=16384, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=16384, flags=DM_EXISTS_FLAG}]) = 0',
        'ioctl(3, DM_LIST_DEVICES, [{version=[4, 0, 0], data_size=16384, data_start=312, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=312, data_start=312, flags=DM_EXISTS_FLAG}]) = 0']),
    ("create lin3 (no udevd)", _create("lin3", 1024, 0x600000), [V,
        'ioctl(3, DM_DEV_CREATE, [{version=[4, 0, 0], data_size=16384, name="lin3", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin3", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG}]) = 0',
        'ioctl(3, DM_TABLE_LOAD, [{version=[4, 0, 0], data_size=16384, data_start=312, dev=makedev(0xfe, 0), target_count=1, flags=DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG}, {sector_start=0, length=1024, target_type="linear", string="/dev/loop7 0"}] => [{version=[4, 47, 0], data_size=305, data_start=312, dev=makedev(0xfe, 0), name="lin3", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG|DM_INACTIVE_PRESENT_FLAG}]) = 0',
        'ioctl(3, DM_DEV_SUSPEND, [{version=[4, 0, 0], data_size=16384, name="lin3", event_nr=6291456, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin3", target_count=1, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("remove lin3", lambda km: km.remove("lin3", cookie=0x600000), [V,
        'ioctl(3, DM_DEV_REMOVE, [{version=[4, 0, 0], data_size=16384, name="lin3", event_nr=6291456, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, name="lin3", flags=DM_EXISTS_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("create lin4 -r -u", _create("lin4", 1024, 0x430000, uuid="LIN4-UUID", readonly=True), [V,
        'ioctl(3, DM_DEV_CREATE, [{version=[4, 0, 0], data_size=16384, name="lin4", uuid="LIN4-UUID", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin4", uuid="LIN4-UUID", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG}]) = 0',
        'ioctl(3, DM_TABLE_LOAD, [{version=[4, 0, 0], data_size=16384, data_start=312, dev=makedev(0xfe, 0), target_count=1, flags=DM_READONLY_FLAG|DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG}, {sector_start=0, length=1024, target_type="linear", string="/dev/loop7 0"}] => [{version=[4, 47, 0], data_size=305, data_start=312, dev=makedev(0xfe, 0), name="lin4", uuid="LIN4-UUID", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG|DM_INACTIVE_PRESENT_FLAG}]) = 0',
        'ioctl(3, DM_DEV_SUSPEND, [{version=[4, 0, 0], data_size=16384, name="lin4", event_nr=4390912, flags=DM_READONLY_FLAG|DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin4", uuid="LIN4-UUID", target_count=1, open_count=0, event_nr=0, flags=DM_READONLY_FLAG|DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("info -u", lambda km: km.info(DevId(uuid="LIN4-UUID")), [V,
        'ioctl(3, DM_DEV_STATUS, [{version=[4, 0, 0], data_size=16384, uuid="LIN4-UUID", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="lin4", uuid="LIN4-UUID", target_count=1, open_count=0, event_nr=0, flags=DM_READONLY_FLAG|DM_EXISTS_FLAG|DM_ACTIVE_PRESENT_FLAG}]) = 0']),
    ("remove lin4", lambda km: km.remove("lin4", cookie=0x430000), [V,
        'ioctl(3, DM_DEV_REMOVE, [{version=[4, 0, 0], data_size=16384, name="lin4", event_nr=4390912, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, name="lin4", uuid="LIN4-UUID", flags=DM_EXISTS_FLAG|DM_UEVENT_GENERATED_FLAG}]) = 0']),
    ("create empty0 --notable", lambda km: km.create("empty0"), [V,
        'ioctl(3, DM_DEV_CREATE, [{version=[4, 0, 0], data_size=16384, name="empty0", flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, dev=makedev(0xfe, 0), name="empty0", target_count=0, open_count=0, event_nr=0, flags=DM_EXISTS_FLAG}]) = 0']),
    ("remove empty0", lambda km: km.remove("empty0", cookie=0x430000), [V,
        'ioctl(3, DM_DEV_REMOVE, [{version=[4, 0, 0], data_size=16384, name="empty0", event_nr=4390912, flags=DM_EXISTS_FLAG}] => [{version=[4, 47, 0], data_size=305, name="empty0", flags=DM_EXISTS_FLAG}]) = 0']),
]


def test_golden_strace_session_replays_exactly():
    fm, rec = sim()
    for what, run, lines in SESSION:
        start = len(rec.log)
        run(KernelMapper(control=rec))            # one dmsetup process each
        got = rec.log[start:]
        assert len(got) == len(lines), (what, [abi.CMD_NAMES[g[0]] for g in got])
        for entry, line in zip(got, lines):
            if line.startswith("ioctl(0x3, "):
                req = int(line.split(", ")[1], 16)
                assert abi.request(entry[0]) == req, what
                assert entry[3] == 0
            else:
                check_against_strace(entry, line)
    assert fm.devs == {}


def test_strace_parser_reads_what_it_should():
    cmd, req, rep, ret, err = parse_strace(SESSION[18][2][1])
    assert cmd == "DM_TARGET_MSG" and ret == -1 and err == "EINVAL"
    assert req[1] == {"sector": 0, "message": b"hello"}
    assert req[0]["flags"] == "DM_EXISTS_FLAG" and req[0]["version"] == [4, 2, 0]


# ==================================================================================
# KernelMapper behaviour
# ==================================================================================
def test_round_trip_every_method():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    assert km.version() == (4, 47, 0)
    info = km.create("era1", uuid="ERA-1")
    assert (info.name, info.uuid, info.major, info.minor) == ("era1", "ERA-1", 254, 0)
    assert not info.live_table and not info.suspended
    info = km.load("era1", [TL(0, 131072, "era", "/dev/loop1 /dev/loop0 128")])
    assert info.inactive_table and not info.live_table
    _, inactive = km.table("era1", inactive=True)
    assert inactive == [TL(0, 131072, "era", "7:1 7:0 128")]
    assert km.info("era1", inactive=True).target_count == 1
    info = km.resume("era1")
    assert info.live_table and info.uevent_generated and info.target_count == 1
    info, lines = km.status("era1")
    assert lines == [TL(0, 131072, "era", "/dev/loop1 /dev/loop0 128")]
    info, devs = km.deps("era1")
    assert devs == [(7, 0), (7, 1)]
    assert km.message("era1", 0, "status") == "era ok " * 3
    assert km.message("era1", 0, "checkpoint") is None
    assert km.info("era1").event_nr == 1
    km.create("zz")
    assert km.list_devices() == [DeviceEntry("era1", 254, 0, 1, None),
                                 DeviceEntry("zz", 254, 1, 0, None)]
    assert km.list_devices(uuid=True) == [DeviceEntry("era1", 254, 0, 1, "ERA-1"),
                                          DeviceEntry("zz", 254, 1, 0, "")]
    assert km.target_version("era") == TargetVersion("era", (1, 0, 0))
    assert [t.name for t in km.target_versions()] == [n for n, _ in GOLDEN_TARGETS]
    km.set_geometry("era1", "100", "2", "3", "0")
    assert fm.devs["era1"].geometry == (100, 2, 3, 0)
    info = km.rename("zz", "ZZ-UUID", set_uuid=True)
    assert fm.devs["zz"].uuid == "ZZ-UUID"
    assert km.suspend((254, 0)).suspended
    assert km.clear("era1").inactive_table is False
    km.resume(DevId(uuid="ERA-1"))
    info = km.remove("zz")
    assert info.name == "zz" and info.uuid == "ZZ-UUID"
    km.remove_all()
    assert km.list_devices() == []


def test_requests_carry_exists_flag_version_and_16k():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    km.create("a")
    km.load("a", [TL(0, 8, "zero", "")])
    km.resume("a")
    km.message("a", 0, "x") if False else None
    km.target_version("zero")
    km.set_geometry("a", "1", "1", "1", "0")
    for nr, req, _rep, _r, _e in rec.log:
        h = codec.Header.unpack(req)
        assert h.flags & abi.DM_EXISTS_FLAG, nr
        assert h.version == abi.CMD_MIN_VERSION[nr], nr
        assert h.data_size == 16384 == len(req)
        assert h.data_start == 312
    assert rec.log[0][0] == abi.DM_VERSION_CMD
    assert [e[0] for e in rec.log].count(abi.DM_VERSION_CMD) == 1


def test_persistent_minor_on_create():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    km.dm_major = 254                 # /proc/devices of the machine would be read
    info = km.create("m", minor=77)
    assert info.minor == 77
    h = codec.Header.unpack(rec.log[-1][1])
    assert h.flags & abi.DM_PERSISTENT_DEV_FLAG and abi.huge_decode_dev(h.dev) == (254, 77)


class FullUntil:
    """A control device that answers DM_BUFFER_FULL_FLAG until the buffer holds
    ``need`` bytes, like the kernel does for a payload that does not fit."""

    def __init__(self, inner, need, nr):
        self.inner, self.need, self.nr = inner, need, nr
        self.sizes = []

    def ioctl(self, nr, buf):
        r = self.inner.ioctl(nr, buf)
        if nr == self.nr:
            self.sizes.append(len(buf))
            if len(buf) < self.need:
                f = struct.unpack_from("=I", buf, 28)[0]
                struct.pack_into("=I", buf, 28, f | abi.DM_BUFFER_FULL_FLAG)
                struct.pack_into("=I", buf, 12, 305)
        return r


def test_buffer_full_doubles_until_it_fits():
    fm, rec = sim()
    fm.create("a")
    ctl = FullUntil(rec, 50000, abi.DM_TABLE_STATUS_CMD)
    km = KernelMapper(control=ctl)
    km.table("a")
    assert ctl.sizes == [16384, 32768, 65536]
    # libdm keeps the doubling factor: the next status starts big
    km.table("a")
    assert ctl.sizes[-1] == 65536 and len(ctl.sizes) == 4


def test_buffer_full_from_the_sim_itself():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    km.create("e")
    km.load("e", [TL(0, 8, "era", "a b 40000")])
    km.resume("e")
    # a 40000-byte message reply does not fit 16 KiB nor 32 KiB
    assert km.message("e", 0, "huge") == "x" * 40000
    sizes = [len(req) for nr, req, *_ in rec.log if nr == abi.DM_TARGET_MSG_CMD]
    assert sizes == [16384, 32768, 65536]
    # a status line longer than the buffer: BUFFER_FULL from retrieve_status, retried
    fm.devs["e"].live = [TL(0, 8, "era", "p" * 70000)]
    info, lines = km.status("e")
    assert lines == [TL(0, 8, "era", "p" * 70000)]
    sizes = [len(req) for nr, req, *_ in rec.log if nr == abi.DM_TABLE_STATUS_CMD]
    assert sizes == [65536, 131072]


def test_buffer_full_gives_up_at_the_libdm_maximum():
    class AlwaysFull:
        def __init__(self):
            self.sizes = []

        def ioctl(self, nr, buf):
            if nr != abi.DM_VERSION_CMD:
                self.sizes.append(len(buf))
                struct.pack_into("=I", buf, 28, abi.DM_BUFFER_FULL_FLAG)
            else:
                struct.pack_into("=3I", buf, 0, 4, 47, 0)
            return 0

    ctl = AlwaysFull()
    km = KernelMapper(control=ctl)
    km.min_buffer = 16                 # keep the test's memory small: same arithmetic
    with pytest.raises(DmError) as e:
        km.list_devices()
    assert [s for s in ctl.sizes] == [312 << i for i in range(17)]
    assert e.value.op == "names"
    assert "Ioctl buffer maximum reached (16KB << 16 = 1073741824 bytes), giving up." \
        == e.value.detail


def test_buffer_full_on_other_commands_is_not_retried():
    fm, rec = sim()
    fm.create("a")
    ctl = FullUntil(rec, 10 ** 9, abi.DM_DEV_STATUS_CMD)
    KernelMapper(control=ctl).info("a")
    assert ctl.sizes == [16384]


@pytest.mark.parametrize("call,op", [
    (lambda km: km.info("nope"), "info"),
    (lambda km: km.table("nope"), "table"),
    (lambda km: km.status("nope"), "status"),
    (lambda km: km.deps("nope"), "deps"),
    (lambda km: km.load("nope", [TL(0, 1, "zero", "")]), "reload"),
    (lambda km: km.resume("nope"), "resume"),
    (lambda km: km.suspend("nope"), "suspend"),
    (lambda km: km.remove("nope"), "remove"),
    (lambda km: km.clear("nope"), "clear"),
    (lambda km: km.rename("nope", "x"), "rename"),
    (lambda km: km.message("nope", 0, "m"), "message"),
    (lambda km: km.set_geometry("nope", "1", "1", "1", "1"), "setgeometry"),
    (lambda km: km.wait_event("nope", 0), "waitevent"),
])
def test_enxio_carries_op_and_name(call, op):
    fm, rec = sim()
    with pytest.raises(DmError) as e:
        call(KernelMapper(control=rec))
    assert (e.value.errno, e.value.op, e.value.name) == (errno.ENXIO, op, "nope")


def test_errno_and_kernel_detail_propagate():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    km.create("a", uuid="U")
    with pytest.raises(DmError) as e:
        km.create("b", uuid="U")
    assert (e.value.errno, e.value.op, e.value.name, e.value.uuid) == \
        (errno.EBUSY, "create", "b", "U")
    with pytest.raises(DmError) as e:
        km.load("a", [TL(0, 8, "nosuch", "")])
    assert e.value.errno == errno.EINVAL and "nosuch: unknown target type" in e.value.detail
    with pytest.raises(DmError) as e:
        km.target_version("nosuch")
    assert (e.value.errno, e.value.op) == (errno.EINVAL, "target-version")
    with pytest.raises(DmError) as e:
        km.create("x/y")
    assert "cannot contain '/'" in e.value.detail


def test_kernel_side_framing_errors_reach_the_caller():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    km.create("a")
    with pytest.raises(DmError) as e:
        km.load("a", [])
    assert e.value.errno == errno.EINVAL and "no targets specified" in e.value.detail
    with pytest.raises(DmError) as e:
        km.rename("a", "n" * 128)
    assert e.value.errno == errno.EINVAL and "Invalid new mapped device name" in e.value.detail
    with pytest.raises(DmError) as e:
        km.rename(DevId(uuid="U"), "b")               # rename looks up by name only
    assert e.value.errno == errno.ENXIO
    km.create("b")
    with pytest.raises(DmError) as e:
        km.rename(DevId(uuid="U"), "b")               # "is new free?" comes first
    assert e.value.errno == errno.EBUSY
    with pytest.raises(DmError) as e:
        km.message("a", 0, "   ")
    assert e.value.errno == errno.EINVAL and "Empty message received." in e.value.detail


def test_message_without_live_table_is_einval_like_linux_6_1():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    km.create("a")
    with pytest.raises(DmError) as e:
        km.message("a", 0, "checkpoint")
    assert (e.value.errno, e.value.op) == (errno.EINVAL, "message")
    assert e.value.detail == "device-mapper: ioctl: The device has no table."


def test_message_without_live_table_returns_2_and_copies_nothing():
    fm = FakeMapper()
    rec = Recorder(SimControl(fm, message_no_table_returns_2=True))
    km = KernelMapper(control=rec)
    km.create("a")
    assert km.message("a", 0, "checkpoint") is None
    nr, req, rep, ret, err = rec.log[-1]
    assert nr == abi.DM_TARGET_MSG_CMD and ret == 2 and err is None
    assert rep[12:] == req[12:]                       # only the version was written
    assert struct.unpack_from("=3I", rep, 0) == (4, 47, 0)
    # an empty message is still rejected first
    with pytest.raises(DmError) as e:
        km.message("a", 0, " ")
    assert e.value.errno == errno.EINVAL and "Empty message received." in e.value.detail


def test_message_quirk_with_a_kernel_like_fake():
    class Two:
        def ioctl(self, nr, buf):
            struct.pack_into("=3I", buf, 0, 4, 47, 0)
            return 2 if nr == abi.DM_TARGET_MSG_CMD else 0
    assert KernelMapper(control=Two()).message("x", 0, "m") is None


def test_wait_event_returns_status_and_times_out():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    km.create("a")
    km.load("a", [TL(0, 8, "linear", "/dev/loop7 0")])
    km.resume("a")
    info, lines = km.wait_event("a", event_nr=5)           # differs: returns at once
    assert info.event_nr == 0 and lines == [TL(0, 8, "linear", "")]
    with pytest.raises(DmError) as e:
        km.wait_event("a", event_nr=0, timeout=0.05)
    assert (e.value.errno, e.value.op) == (errno.ETIME, "waitevent")
    assert abi.DM_DEV_ARM_POLL_CMD in [x[0] for x in rec.log]
    # an event arriving during the wait ends it
    t = threading.Timer(0.05, lambda: fm.rename("a", "b"))
    t.start()
    info, _ = km.wait_event(DevId(major=254, minor=0), event_nr=0, timeout=5)
    t.join()
    assert info.event_nr == 1 and info.name == "b"


def test_control_open_failure_is_a_dmerror(monkeypatch):
    import dmctl.ioctl.control as control

    def boom(*a, **k):
        raise OSError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(control.os, "open", boom)
    km = KernelMapper()
    with pytest.raises(DmError) as e:
        km.info("x")
    assert e.value.errno == errno.EACCES
    assert e.value.detail == "/dev/mapper/control: open failed: Permission denied"


def test_kernel_control_uses_mutable_buffer(monkeypatch):
    import dmctl.ioctl.control as control
    calls = []
    monkeypatch.setattr(control.os, "open", lambda path, flags: 99)
    monkeypatch.setattr(control.os, "close", lambda fd: None)

    def fake_ioctl(fd, req, buf, mutate):
        calls.append((fd, req, type(buf), mutate))
        if req == abi.DM_DEV_STATUS:
            raise OSError(errno.ENXIO, "No such device or address")
        struct.pack_into("=3I", buf, 0, 4, 47, 0)
        return 0
    monkeypatch.setattr(control.fcntl, "ioctl", fake_ioctl)
    km = KernelMapper(kmsg=False)
    with pytest.raises(DmError) as e:
        km.info("x")
    assert e.value.errno == errno.ENXIO
    assert calls == [(99, 0xC138FD00, bytearray, True), (99, 0xC138FD07, bytearray, True)]
    assert km.kind == "kernel"


def test_kmsg_detail_used_for_mutating_failures_only():
    class FakeKmsg:
        def __init__(self):
            self.marks = 0

        def mark(self):
            self.marks += 1

        def since_mark(self):
            return ["device-mapper: table: 254:0: era: Invalid block size (-EINVAL)"]

    fm, rec = sim()
    k = FakeKmsg()
    km = KernelMapper(control=rec, kmsg=k)
    km.create("a")
    with pytest.raises(DmError) as e:
        km.load("a", [TL(0, 8, "era", "x y")])
    assert e.value.detail == "device-mapper: table: 254:0: era: Invalid block size (-EINVAL)"
    marks = k.marks
    km.info("a")
    km.status("a")
    assert k.marks == marks                           # queries do not touch kmsg


def test_module_imports_stay_light():
    import ast
    import inspect
    import dmctl.backend.kernel as kernel
    tree = ast.parse(inspect.getsource(kernel))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add(node.module)
    assert top <= {"errno", "os", "struct", "fcntl", "dmctl.backend", "dmctl.errors",
                   "dmctl.ioctl"}


def test_import_time_pulls_no_heavy_modules():
    import subprocess
    import sys
    code = ("import sys; import dmctl.backend.kernel, dmctl.ioctl.control; "
            "bad = [m for m in ('select', 'threading', 'typing', 'dataclasses', 'ctypes',"
            " 'subprocess') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# What no query command's start-up may import (issue 13): the kernel path needs no
# SQLite and no simulator either.  Checked in a `python -S` child (no site, so no
# editable-install .pth importing re/pathlib first and masking a regression).
STARTUP_FORBIDDEN = ("re", "enum", "pickle", "datetime", "pathlib", "json", "click", "tqdm",
                     "pyudev", "ctypes", "subprocess", "dataclasses", "typing", "sqlite3",
                     "importlib", "warnings", "dmctl.sim", "dmctl.libdm.report",
                     "dmctl.libdm.tree", "dmctl.backend.kmsg", "dmctl.numbers")

# The child: `dmctl --backend kernel ARGS` whose /dev/mapper/control is a replay of the
# ioctl replies recorded in the parent (a marshal file: marshal is built in, so reading
# it imports nothing); prints the forbidden modules that were imported.
_REPLAY_CHILD = r"""
import marshal, os, sys
forbidden = sys.argv[1].split(",")
with open(sys.argv[2], "rb") as f:
    major, replies = marshal.loads(f.read())
import dmctl.ioctl.control as control


class Replay(control.ControlDevice):
    def __init__(self, path=None):
        self.replies = list(replies)

    def ioctl(self, cmd_nr, buf):
        nr, out, rv, err = self.replies.pop(0)
        if (nr, len(out)) != (cmd_nr, len(buf)):
            raise SystemExit("unexpected ioctl %d (%d bytes)" % (cmd_nr, len(buf)))
        if err:
            raise OSError(err, os.strerror(err))
        buf[:] = out
        return rv

    def dm_major(self):
        return major


control.KernelControl = Replay
from dmctl.cli.main import main
rc = main(sys.argv[3:])
sys.stdout.flush()
sys.stderr.write("RC %d IMPORTED %s\n" % (rc, ",".join(m for m in forbidden
                                                      if m in sys.modules)))
"""


@pytest.mark.parametrize("argv", [["version"], ["ls"], ["info"], ["info", "lin"],
                                  ["status"], ["status", "lin"], ["table"], ["table", "lin"]],
                         ids=" ".join)
def test_cli_startup_on_the_kernel_path_imports_nothing_heavy(argv, mapper, tmp_path,
                                                              monkeypatch):
    """`dmctl --backend kernel version|ls|info|status|table` run to the end (over
    recorded ioctl replies) with none of STARTUP_FORBIDDEN imported, and print what
    the same command printed over SimControl."""
    import io
    import marshal
    import os
    import subprocess
    import sys
    from dmctl.cli import main
    from dmctl.cli.ctx import Ctx
    from dmctl.ioctl import control
    from testlib import ROOT
    mapper.create("lin")
    mapper.load("lin", [TL(0, 8, "zero", "")])
    mapper.resume("lin")
    mapper.create("stack")
    mapper.load("stack", [TL(0, 8, "linear", "254:0 0")])
    mapper.resume("stack")
    replies = []
    sim_control = SimControl(mapper)

    class Recording(control.ControlDevice):
        def __init__(self, path=None):
            pass

        def ioctl(self, cmd_nr, buf):
            try:
                rv = sim_control.ioctl(cmd_nr, buf)
            except OSError as e:
                replies.append((cmd_nr, bytes(buf), 0, e.errno))
                raise
            replies.append((cmd_nr, bytes(buf), rv, 0))
            return rv

        def dm_major(self):
            return sim_control.dm_major()

    monkeypatch.setattr(control, "KernelControl", Recording)
    dev_dir = tmp_path / "dev"
    (dev_dir / "mapper").mkdir(parents=True)
    monkeypatch.setenv("DM_DEV_DIR", str(dev_dir))
    argv = ["--backend", "kernel"] + argv
    ctx = Ctx("dmctl")
    ctx._stdout, ctx._stderr = io.StringIO(), io.StringIO()
    rc = main._main(ctx, argv)
    ctx.finish()
    assert rc == 0, ctx._stderr.getvalue()
    rec = tmp_path / "replies"
    rec.write_bytes(marshal.dumps((sim_control.dm_major(), replies)))
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-S", "-c", _REPLAY_CHILD, ",".join(STARTUP_FORBIDDEN),
                        str(rec)] + argv, capture_output=True, text=True, env=env,
                       cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout == ctx._stdout.getvalue()
    assert p.stderr == ctx._stderr.getvalue() + "RC 0 IMPORTED \n"


# ==================================================================================
# SimControl as a control node: raw bytes in, kernel behaviour out
# ==================================================================================
def raw(nr, size=16384, **kw):
    return codec.encode_request(nr, size, flags=abi.DM_EXISTS_FLAG, **kw)


def test_simcontrol_unknown_commands_are_enotty_after_the_version_write_back():
    ctl = SimControl(FakeMapper())
    for nr in (abi.DM_MPATH_PROBE_PATHS_CMD, 19, 200):
        buf = raw(abi.DM_DEV_STATUS_CMD, name="x")
        with pytest.raises(OSError) as e:
            ctl.ioctl(nr, buf)
        assert e.value.errno == errno.ENOTTY
        assert struct.unpack_from("=3I", buf, 0) == (4, 47, 0)
        assert "unknown command 0x%x" % abi.request(nr) in ctl.last_detail


def test_simcontrol_version_mismatch():
    ctl = SimControl(FakeMapper())
    buf = codec.encode_request(abi.DM_LIST_DEVICES_CMD, 16384, version=(4, 48, 0))
    before = bytes(buf)
    with pytest.raises(OSError) as e:
        ctl.ioctl(abi.DM_LIST_DEVICES_CMD, buf)
    assert e.value.errno == errno.EINVAL
    assert struct.unpack_from("=3I", buf, 0) == (4, 47, 0) and buf[12:] == before[12:]
    buf = codec.encode_request(abi.DM_VERSION_CMD, 16384, version=(5, 0, 0))
    with pytest.raises(OSError):
        ctl.ioctl(abi.DM_VERSION_CMD, buf)


def test_simcontrol_bad_data_size_and_name_plus_uuid():
    fm = FakeMapper()
    fm.create("x", uuid="U")
    ctl = SimControl(fm)
    buf = raw(abi.DM_DEV_STATUS_CMD, name="x")
    struct.pack_into("=I", buf, 12, 304)
    with pytest.raises(OSError) as e:
        ctl.ioctl(abi.DM_DEV_STATUS_CMD, buf)
    assert e.value.errno == errno.EINVAL and "Invalid data size" in ctl.last_detail
    with pytest.raises(OSError) as e:
        ctl.ioctl(abi.DM_DEV_STATUS_CMD, raw(abi.DM_DEV_STATUS_CMD, name="x", uuid="U"))
    assert e.value.errno == errno.EINVAL
    # name and dev together: the lookup fails (ENXIO), it is not EINVAL
    with pytest.raises(OSError) as e:
        ctl.ioctl(abi.DM_DEV_STATUS_CMD, raw(abi.DM_DEV_STATUS_CMD, name="x",
                                             dev=abi.huge_encode_dev(254, 0)))
    assert e.value.errno == errno.ENXIO and "Invalid ioctl structure" in ctl.last_detail
    # nothing at all to look up by
    with pytest.raises(OSError) as e:
        ctl.ioctl(abi.DM_DEV_STATUS_CMD, raw(abi.DM_DEV_STATUS_CMD))
    assert e.value.errno == errno.ENXIO


def test_simcontrol_no_params_commands_copy_back_only_the_header():
    fm = FakeMapper()
    fm.create("x")
    ctl = SimControl(fm)
    buf = raw(abi.DM_DEV_STATUS_CMD, name="x")
    buf[305:400] = b"\xaa" * 95
    assert ctl.ioctl(abi.DM_DEV_STATUS_CMD, buf) == 0
    assert buf[305:400] == b"\xaa" * 95
    h = codec.Header.unpack(buf)
    assert h.data_size == 305 and h.name == b"x" and h.dev == 0xFE00
    # a payload command writes its payload and reports the size
    fm.load("x", [TL(0, 8, "zero", "")])
    fm.resume("x")
    buf = raw(abi.DM_TABLE_STATUS_CMD, name="x")
    ctl.ioctl(abi.DM_TABLE_STATUS_CMD, buf)
    assert codec.Header.unpack(buf).data_size == 312 + 41


def test_simcontrol_remove_all_and_geometry_copy_back_nothing():
    fm = FakeMapper()
    fm.create("x")
    ctl = SimControl(fm)
    buf = raw(abi.DM_REMOVE_ALL_CMD)
    before = bytes(buf)
    assert ctl.ioctl(abi.DM_REMOVE_ALL_CMD, buf) == 0
    assert buf[12:] == before[12:] and fm.devs == {}


def test_simcontrol_list_devices_prefix_filter_and_order():
    fm = FakeMapper()
    for n, u in (("vg-b", "LVM-2"), ("vg-a", "LVM-1"), ("other", None)):
        fm.create(n, uuid=u)
    ctl = SimControl(fm)
    buf = raw(abi.DM_LIST_DEVICES_CMD, name="vg-")
    ctl.ioctl(abi.DM_LIST_DEVICES_CMD, buf)
    assert [e.name for e in codec.decode_name_list(buf)] == ["vg-a", "vg-b"]
    buf = raw(abi.DM_LIST_DEVICES_CMD, uuid="LVM-2")
    ctl.ioctl(abi.DM_LIST_DEVICES_CMD, buf)
    assert [e.name for e in codec.decode_name_list(buf)] == ["vg-b"]
    buf = codec.encode_request(abi.DM_LIST_DEVICES_CMD, 16384, flags=abi.DM_UUID_FLAG)
    ctl.ioctl(abi.DM_LIST_DEVICES_CMD, buf)
    assert [(e.name, e.uuid) for e in codec.decode_name_list(buf, uuid=True)] == \
        [("other", ""), ("vg-a", "LVM-1"), ("vg-b", "LVM-2")]


def test_simcontrol_buffer_full_list_with_small_buffer():
    fm = FakeMapper()
    fm.create("lin1")
    ctl = SimControl(fm)
    buf = raw(abi.DM_LIST_DEVICES_CMD, size=343)
    ctl.ioctl(abi.DM_LIST_DEVICES_CMD, buf)
    h = codec.Header.unpack(buf)
    assert h.flags & abi.DM_BUFFER_FULL_FLAG and h.data_size == 305


def test_version_uses_the_check_when_first():
    fm, rec = sim()
    km = KernelMapper(control=rec)
    assert km.version() == (4, 47, 0)
    assert [e[0] for e in rec.log] == [abi.DM_VERSION_CMD]
    km.version()
    assert [e[0] for e in rec.log] == [abi.DM_VERSION_CMD] * 2


# ==================================================================================
# Read-ahead (libdm: sysfs bdi/read_ahead_kb, BLKRAGET fallback on the node)
# ==================================================================================
def _ra_setup(tmp_path, kb=None):
    km = KernelMapper(control=SimControl(FakeMapper()))
    km.sysfs_dir = str(tmp_path / "sys") + "/"
    if kb is not None:
        d = tmp_path / "sys" / "dev" / "block" / "254:3" / "bdi"
        d.mkdir(parents=True)
        (d / "read_ahead_kb").write_text("%d\n" % kb)
    return km, DeviceInfo(name="lin1", major=254, minor=3)


def test_read_ahead_from_sysfs(tmp_path):
    km, info = _ra_setup(tmp_path, kb=128)
    assert km.read_ahead(info) == 256 and km.read_ahead_error is None


def test_read_ahead_without_bdi_reports_libdm_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_DEV_DIR", str(tmp_path / "dev"))
    km, info = _ra_setup(tmp_path)
    assert km.read_ahead(info) is None
    assert km.read_ahead_error == "%s/mapper/lin1: open failed: No such file or directory" \
        % (tmp_path / "dev")
    monkeypatch.delenv("DM_DEV_DIR")
    km.read_ahead(DeviceInfo(name="zz-no-such-dmctl", major=254, minor=3))
    assert km.read_ahead_error == \
        "/dev/mapper/zz-no-such-dmctl: open failed: No such file or directory"


def test_set_read_ahead_sysfs_rounds_up_and_minimum_only_raises(tmp_path):
    km, info = _ra_setup(tmp_path, kb=128)
    path = tmp_path / "sys" / "dev" / "block" / "254:3" / "bdi" / "read_ahead_kb"
    km.set_read_ahead(info, 513)
    assert path.read_text() == "257"
    km.set_read_ahead(info, 100, minimum=True)          # 514 >= 100: left alone
    assert path.read_text() == "257"
    km.set_read_ahead(info, 1024, minimum=True)
    assert path.read_text() == "512"
