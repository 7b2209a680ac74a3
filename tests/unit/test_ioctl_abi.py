"""dmctl.ioctl.abi against an independent ctypes model of <linux/dm-ioctl.h>.

ctypes lays structs out with the C compiler's rules, so sizeof/offsetof here are what
gcc gives for the uapi header on this machine; the struct.Struct formats and the OFF_*
constants in abi must agree with them field by field.
"""

import ctypes
import struct

import pytest

from dmctl.ioctl import abi


class DmIoctl(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint32 * 3),
        ("data_size", ctypes.c_uint32),
        ("data_start", ctypes.c_uint32),
        ("target_count", ctypes.c_uint32),
        ("open_count", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
        ("event_nr", ctypes.c_uint32),
        ("padding", ctypes.c_uint32),
        ("dev", ctypes.c_uint64),
        ("name", ctypes.c_char * 128),
        ("uuid", ctypes.c_char * 129),
        ("data", ctypes.c_char * 7),
    ]


class DmTargetSpec(ctypes.Structure):
    _fields_ = [
        ("sector_start", ctypes.c_uint64),
        ("length", ctypes.c_uint64),
        ("status", ctypes.c_int32),
        ("next", ctypes.c_uint32),
        ("target_type", ctypes.c_char * 16),
    ]


class DmTargetDeps(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint32), ("padding", ctypes.c_uint32),
                ("dev", ctypes.c_uint64 * 0)]


class DmNameList(ctypes.Structure):
    _fields_ = [("dev", ctypes.c_uint64), ("next", ctypes.c_uint32),
                ("name", ctypes.c_char * 0)]


class DmTargetVersions(ctypes.Structure):
    _fields_ = [("next", ctypes.c_uint32), ("version", ctypes.c_uint32 * 3),
                ("name", ctypes.c_char * 0)]


class DmTargetMsg(ctypes.Structure):
    _fields_ = [("sector", ctypes.c_uint64), ("message", ctypes.c_char * 0)]


def _offsets(cls):
    return [getattr(cls, f[0]).offset for f in cls._fields_]


def _struct_offsets(st):
    """Offsets of every item of a struct.Struct format (repeat counts expanded for
    non-string codes, so '3I' gives three offsets, '128s' one)."""
    fmt = st.format.lstrip("=<>!@")
    items = []
    for count, code in _tokens(fmt):
        if code in "sp":
            items.append(code if count == 1 else "%d%s" % (count, code))
        else:
            items.extend([code] * count)
    offs, pos = [], 0
    for it in items:
        offs.append(pos)
        pos += struct.calcsize("=" + it)
    return offs


def _tokens(fmt):
    num = ""
    for ch in fmt.replace(" ", ""):
        if ch.isdigit():
            num += ch
        else:
            yield (int(num) if num else 1), ch
            num = ""


def test_sizes_match_ctypes():
    assert ctypes.sizeof(DmIoctl) == abi.SIZEOF_DM_IOCTL == abi.STRUCT_DM_IOCTL.size == 312
    assert ctypes.sizeof(DmTargetSpec) == abi.SIZEOF_DM_TARGET_SPEC == 40
    assert ctypes.sizeof(DmTargetDeps) == abi.SIZEOF_DM_TARGET_DEPS == 8
    assert ctypes.sizeof(DmNameList) == abi.SIZEOF_DM_NAME_LIST == 16
    assert ctypes.sizeof(DmTargetVersions) == abi.SIZEOF_DM_TARGET_VERSIONS == 16
    assert ctypes.sizeof(DmTargetMsg) == abi.SIZEOF_DM_TARGET_MSG == 8


def test_dm_ioctl_field_offsets():
    c = {f[0]: getattr(DmIoctl, f[0]).offset for f in DmIoctl._fields_}
    assert c == {
        "version": abi.OFF_VERSION, "data_size": abi.OFF_DATA_SIZE,
        "data_start": abi.OFF_DATA_START, "target_count": abi.OFF_TARGET_COUNT,
        "open_count": abi.OFF_OPEN_COUNT, "flags": abi.OFF_FLAGS,
        "event_nr": abi.OFF_EVENT_NR, "padding": abi.OFF_PADDING, "dev": abi.OFF_DEV,
        "name": abi.OFF_NAME, "uuid": abi.OFF_UUID, "data": abi.OFF_DATA,
    }
    # every item of the struct format sits where ctypes puts the field
    st = _struct_offsets(abi.STRUCT_DM_IOCTL)
    expected = [0, 4, 8] + _offsets(DmIoctl)[1:]
    assert st == expected
    assert abi.DM_MIN_DATA_SIZE == DmIoctl.data.offset == 305
    assert abi.DM_DATA_START == 312


@pytest.mark.parametrize("cls,st", [
    (DmTargetSpec, abi.STRUCT_DM_TARGET_SPEC),
    (DmTargetDeps, abi.STRUCT_DM_TARGET_DEPS),
    (DmNameList, abi.STRUCT_DM_NAME_LIST),
    (DmTargetMsg, abi.STRUCT_DM_TARGET_MSG),
])
def test_small_struct_offsets(cls, st):
    offs = _offsets(cls)
    got = _struct_offsets(st)
    assert got == offs[:len(got)]
    # the flexible array member starts right after the packed fixed part
    if len(offs) > len(got):
        assert offs[len(got)] == st.size


def test_target_versions_offsets():
    assert _struct_offsets(abi.STRUCT_DM_TARGET_VERSIONS) == [0, 4, 8, 12]
    assert DmTargetVersions.version.offset == 4
    assert DmTargetVersions.name.offset == abi.STRUCT_DM_TARGET_VERSIONS.size == 16


def test_spec_and_name_list_named_offsets():
    assert DmTargetSpec.sector_start.offset == abi.SPEC_OFF_SECTOR_START
    assert DmTargetSpec.length.offset == abi.SPEC_OFF_LENGTH
    assert DmTargetSpec.status.offset == abi.SPEC_OFF_STATUS
    assert DmTargetSpec.next.offset == abi.SPEC_OFF_NEXT
    assert DmTargetSpec.target_type.offset == abi.SPEC_OFF_TARGET_TYPE
    assert DmNameList.name.offset == abi.DM_NAME_LIST_NAME_OFFSET == 12


def test_pack_through_ctypes_round_trip():
    # a header packed with abi's Struct reads back correctly through ctypes
    buf = bytearray(312)
    abi.STRUCT_DM_IOCTL.pack_into(buf, 0, 4, 47, 1, 16384, 312, 3, -1, 0x4024, 7, 0,
                                  abi.huge_encode_dev(254, 300), b"lin1", b"U-1", b"")
    c = DmIoctl.from_buffer(buf)
    assert list(c.version) == [4, 47, 1]
    assert (c.data_size, c.data_start, c.target_count, c.open_count) == (16384, 312, 3, -1)
    assert (c.flags, c.event_nr, c.dev) == (0x4024, 7, abi.huge_encode_dev(254, 300))
    assert c.name == b"lin1" and c.uuid == b"U-1"


def test_request_numbers():
    assert abi.DM_VERSION == 0xC138FD00 == 3241737472
    # the numbers strace -e raw=ioctl showed for dmsetup create / info
    assert abi.DM_DEV_CREATE == 0xC138FD03
    assert abi.DM_TABLE_LOAD == 0xC138FD09
    assert abi.DM_DEV_SUSPEND == 0xC138FD06
    assert abi.DM_DEV_STATUS == 0xC138FD07
    assert abi.DM_LIST_VERSIONS == 0xC138FD0D
    for nr in range(18):
        assert abi.request(nr) == 0xC138FD00 | nr
        assert abi._IOC_TYPE(abi.request(nr)) == 0xFD
        assert abi._IOC_NR(abi.request(nr)) == nr
    assert abi.DM_GET_TARGET_VERSION == 0xC138FD11
    assert abi.DM_MPATH_PROBE_PATHS == 0x0000FD12


def test_command_numbers_and_names():
    nrs = [abi.DM_VERSION_CMD, abi.DM_REMOVE_ALL_CMD, abi.DM_LIST_DEVICES_CMD,
           abi.DM_DEV_CREATE_CMD, abi.DM_DEV_REMOVE_CMD, abi.DM_DEV_RENAME_CMD,
           abi.DM_DEV_SUSPEND_CMD, abi.DM_DEV_STATUS_CMD, abi.DM_DEV_WAIT_CMD,
           abi.DM_TABLE_LOAD_CMD, abi.DM_TABLE_CLEAR_CMD, abi.DM_TABLE_DEPS_CMD,
           abi.DM_TABLE_STATUS_CMD, abi.DM_LIST_VERSIONS_CMD, abi.DM_TARGET_MSG_CMD,
           abi.DM_DEV_SET_GEOMETRY_CMD, abi.DM_DEV_ARM_POLL_CMD,
           abi.DM_GET_TARGET_VERSION_CMD, abi.DM_MPATH_PROBE_PATHS_CMD]
    assert nrs == list(range(19))
    assert abi.CMD_NAMES[abi.DM_TABLE_LOAD_CMD] == "DM_TABLE_LOAD"


def test_flags():
    expected = {
        "DM_READONLY_FLAG": 0x1, "DM_SUSPEND_FLAG": 0x2, "DM_EXISTS_FLAG": 0x4,
        "DM_PERSISTENT_DEV_FLAG": 0x8, "DM_STATUS_TABLE_FLAG": 0x10,
        "DM_ACTIVE_PRESENT_FLAG": 0x20, "DM_INACTIVE_PRESENT_FLAG": 0x40,
        "DM_BUFFER_FULL_FLAG": 0x100, "DM_SKIP_BDGET_FLAG": 0x200,
        "DM_SKIP_LOCKFS_FLAG": 0x400, "DM_NOFLUSH_FLAG": 0x800,
        "DM_QUERY_INACTIVE_TABLE_FLAG": 0x1000, "DM_UEVENT_GENERATED_FLAG": 0x2000,
        "DM_UUID_FLAG": 0x4000, "DM_SECURE_DATA_FLAG": 0x8000,
        "DM_DATA_OUT_FLAG": 0x10000, "DM_DEFERRED_REMOVE": 0x20000,
        "DM_INTERNAL_SUSPEND_FLAG": 0x40000, "DM_IMA_MEASUREMENT_FLAG": 0x80000,
    }
    for name, value in expected.items():
        assert getattr(abi, name) == value, name
    assert abi.DM_NAME_LIST_FLAG_HAS_UUID == 1
    assert abi.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID == 2
    assert abi.flag_names(0x4 | 0x8 | 0x40) == \
        "DM_EXISTS_FLAG|DM_PERSISTENT_DEV_FLAG|DM_INACTIVE_PRESENT_FLAG"


def test_flags_agree_with_backend_base():
    from dmctl.backend import base
    for name in dir(base):
        if name.startswith("DM_") and (name.endswith("_FLAG") or name == "DM_DEFERRED_REMOVE"):
            assert getattr(abi, name) == getattr(base, name), name


def test_limits():
    assert (abi.DM_NAME_LEN, abi.DM_UUID_LEN, abi.DM_MAX_TYPE_NAME) == (128, 129, 16)
    assert abi.DM_IOCTL == 0xFD


def test_min_versions_as_libdm_sends():
    v = abi.CMD_MIN_VERSION
    assert v[abi.DM_LIST_VERSIONS_CMD] == (4, 1, 0)
    assert v[abi.DM_TARGET_MSG_CMD] == (4, 2, 0)
    assert v[abi.DM_DEV_SET_GEOMETRY_CMD] == (4, 6, 0)
    assert v[abi.DM_DEV_ARM_POLL_CMD] == (4, 36, 0)
    assert v[abi.DM_GET_TARGET_VERSION_CMD] == (4, 41, 0)
    for nr in range(13):
        assert v[nr] == (4, 0, 0)


def test_no_params_commands():
    assert abi.NO_PARAMS_CMDS == {1, 3, 4, 6, 7, 10, 16}


@pytest.mark.parametrize("major,minor,encoded", [
    (254, 0, 0xFE00),
    (7, 7, 0x0707),
    (253, 255, 0xFDFF),
    (253, 256, 0x10FD00),           # minor bits above 8 go to bits 20..31
    (254, (1 << 20) - 1, 0xFFF0FEFF),
])
def test_huge_encode_decode_dev(major, minor, encoded):
    assert abi.huge_encode_dev(major, minor) == encoded
    assert abi.huge_decode_dev(abi.huge_encode_dev(major, minor)) == (major, minor)


def test_huge_encode_matches_glibc_makedev():
    import os
    for major, minor in [(254, 0), (7, 7), (253, 1000), (10, 236), (4095, 1 << 19)]:
        assert abi.huge_encode_dev(major, minor) == os.makedev(major, minor)


def _imported_modules(module):
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(module))
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mods.add(node.module)
    return mods


def test_abi_imports_only_struct():
    # the numbers come from dmctl.constants, which imports nothing at all
    import dmctl.constants
    assert _imported_modules(abi) <= {"struct", "os", "dmctl.constants"}
    assert _imported_modules(dmctl.constants) == set()
