"""Pure encoding and decoding of DM ioctl buffers (no file descriptors, no I/O).

Two sides:

* the **user side** (what libdevmapper does): build a request buffer, decode a reply;
* the **kernel side** (what ``drivers/md/dm-ioctl.c`` does): take a request apart and
  write a reply into the kernel's copy of the buffer exactly as the kernel would, so
  that ``dmctl.ioctl.simcontrol`` can stand in for ``/dev/mapper/control``.

Strings cross the ABI as bytes; names, uuids and parameters are decoded as UTF-8 with
``surrogateescape`` so that every byte string round-trips.
"""

from dmctl.records import DeviceEntry, DeviceInfo, TargetLine, TargetVersion
from dmctl.ioctl import abi
from dmctl.errors import DmctlError

_ENC = "utf-8"
_ERRS = "surrogateescape"

_HDR = abi.STRUCT_DM_IOCTL
_SPEC = abi.STRUCT_DM_TARGET_SPEC
_U32 = abi.U32
_S32 = abi.S32
_U64 = abi.U64

# libdm: "Give len a minimum size so that we have space to store dependencies or status
# information" (_flatten, min_size).
MIN_BUFFER_SIZE = 16 * 1024


def to_bytes(s):
    if s is None:
        return b""
    if isinstance(s, (bytes, bytearray)):
        return bytes(s)
    return s.encode(_ENC, _ERRS)


def to_str(b):
    return b.decode(_ENC, _ERRS)


def cstring(buf, start, end=None):
    """The NUL-terminated byte string at ``start`` (up to ``end`` if no NUL)."""
    if end is None:
        end = len(buf)
    i = bytes(buf[start:end]).find(b"\0")
    return bytes(buf[start:end if i < 0 else start + i])


# =====================================================================================
# The header
# =====================================================================================
class Header:
    """``struct dm_ioctl`` as plain Python values (name/uuid as bytes, without NULs)."""
    __slots__ = ("version", "data_size", "data_start", "target_count", "open_count",
                 "flags", "event_nr", "padding", "dev", "name", "uuid")

    def __init__(self, version=(4, 0, 0), data_size=0, data_start=0, target_count=0,
                 open_count=0, flags=0, event_nr=0, padding=0, dev=0, name=b"", uuid=b""):
        self.version = tuple(version)
        self.data_size = data_size
        self.data_start = data_start
        self.target_count = target_count
        self.open_count = open_count
        self.flags = flags
        self.event_nr = event_nr
        self.padding = padding
        self.dev = dev
        self.name = name
        self.uuid = uuid

    @classmethod
    def unpack(cls, buf, offset=0):
        v = _HDR.unpack_from(buf, offset)
        return cls(version=v[0:3], data_size=v[3], data_start=v[4], target_count=v[5],
                   open_count=v[6], flags=v[7], event_nr=v[8], padding=v[9], dev=v[10],
                   name=v[11].split(b"\0", 1)[0], uuid=v[12].split(b"\0", 1)[0])

    def pack_into(self, buf, offset=0):
        """Write the header (``data[7]`` is left as zeros)."""
        _HDR.pack_into(buf, offset, self.version[0], self.version[1], self.version[2],
                       self.data_size, self.data_start, self.target_count,
                       self.open_count, self.flags, self.event_nr, self.padding,
                       self.dev, self.name, self.uuid, b"")

    @property
    def major_minor(self):
        return abi.huge_decode_dev(self.dev)

    def __repr__(self):
        return ("Header(version=%r, data_size=%d, data_start=%d, target_count=%d, "
                "open_count=%d, flags=%s, event_nr=%d, dev=%#x, name=%r, uuid=%r)" % (
                    self.version, self.data_size, self.data_start, self.target_count,
                    self.open_count, abi.flag_names(self.flags), self.event_nr, self.dev,
                    self.name, self.uuid))


# =====================================================================================
# User side: requests
# =====================================================================================
def request_length(targets=(), newname=None, message=None, geometry=None,
                   min_size=MIN_BUFFER_SIZE):
    """The buffer size libdm's ``_flatten`` allocates (before any doubling)."""
    n = abi.SIZEOF_DM_IOCTL
    for t in targets:
        n += abi.SIZEOF_DM_TARGET_SPEC + len(to_bytes(t.params)) + 1 + 8
    if newname is not None:
        n += len(to_bytes(newname)) + 1
    if message is not None:
        n += abi.SIZEOF_DM_TARGET_MSG + len(to_bytes(message[1])) + 1
    if geometry is not None:
        n += len(to_bytes(geometry)) + 1
    return max(n, min_size)


def encode_request(nr, capacity, flags=0, name=None, uuid=None, dev=0, event_nr=0,
                   targets=(), newname=None, message=None, geometry=None, version=None):
    """Build a request buffer of ``capacity`` bytes the way libdm's ``_flatten`` does.

    ``targets``: TargetLine-like objects (start, length, target_type, params), written as
    ``dm_target_spec`` + NUL-terminated params, each ``next`` relative to its own spec and
    8-byte aligned.  ``newname``: the RENAME string.  ``message``: ``(sector, text)`` as a
    ``dm_target_msg``.  ``geometry``: the SET_GEOMETRY string.  ``version`` defaults to the
    per-command minimum libdm sends.  Raises ValueError when something does not fit.
    """
    name_b = to_bytes(name)
    uuid_b = to_bytes(uuid)
    if len(name_b) >= abi.DM_NAME_LEN:
        raise ValueError("Name \"%s\" too long." % to_str(name_b))
    if len(uuid_b) >= abi.DM_UUID_LEN:
        raise ValueError("Uuid \"%s\" too long." % to_str(uuid_b))
    if b"\0" in name_b or b"\0" in uuid_b:
        raise ValueError("NUL byte in name or uuid")
    if capacity < abi.SIZEOF_DM_IOCTL:
        raise ValueError("buffer of %d bytes cannot hold struct dm_ioctl" % capacity)
    if version is None:
        version = abi.CMD_MIN_VERSION.get(nr, (4, 0, 0))
    buf = bytearray(capacity)
    targets = list(targets)
    Header(version=version, data_size=capacity, data_start=abi.SIZEOF_DM_IOCTL,
           target_count=len(targets), flags=flags, event_nr=event_nr & 0xFFFFFFFF,
           dev=dev, name=name_b, uuid=uuid_b).pack_into(buf)
    out = abi.SIZEOF_DM_IOCTL
    for t in targets:
        out = _put_spec_for_load(buf, out, t)
    for payload in (newname, geometry):
        if payload is not None:
            b = to_bytes(payload)
            _check_room(buf, out + len(b) + 1)
            buf[out:out + len(b)] = b
    if message is not None:
        sector, text = message
        b = to_bytes(text)
        _check_room(buf, out + abi.SIZEOF_DM_TARGET_MSG + len(b) + 1)
        _U64.pack_into(buf, out, sector)
        start = out + abi.SIZEOF_DM_TARGET_MSG
        buf[start:start + len(b)] = b
    return buf


def _check_room(buf, end):
    if end > len(buf):
        raise ValueError("Ran out of memory building ioctl parameter")


def _put_spec_for_load(buf, off, t):
    ttype = to_bytes(t.target_type)
    if len(ttype) >= abi.DM_MAX_TYPE_NAME:
        raise ValueError("Target type name %s is too long." % to_str(ttype))
    params = to_bytes(t.params)
    if b"\0" in params:
        raise ValueError("NUL byte in target parameters")
    pstart = off + abi.SIZEOF_DM_TARGET_SPEC
    # libdm: "if ((out + len + 1) >= end) Ran out of memory building ioctl parameter"
    if pstart + len(params) + 1 >= len(buf):
        raise ValueError("Ran out of memory building ioctl parameter")
    buf[pstart:pstart + len(params)] = params
    nxt = abi.align8(pstart + len(params) + 1)     # buffer offsets: 312 is 8-aligned
    _SPEC.pack_into(buf, off, t.start, t.length, 0, nxt - off, ttype)
    return nxt


# =====================================================================================
# User side: replies
# =====================================================================================
def decode_header(buf):
    return Header.unpack(buf)


def decode_info(buf):
    """The reply header as a DeviceInfo (what libdm's dm_task_get_info reads)."""
    h = Header.unpack(buf)
    major, minor = abi.huge_decode_dev(h.dev)
    return DeviceInfo(name=to_str(h.name), uuid=to_str(h.uuid), major=major, minor=minor,
                      flags=h.flags, open_count=h.open_count, event_nr=h.event_nr,
                      target_count=h.target_count)


def _payload_bounds(buf, h=None):
    if h is None:
        h = Header.unpack(buf)
    end = min(h.data_size, len(buf))
    return h, h.data_start, end


def decode_name_list(buf, uuid=False, has_ext=None):
    """DM_LIST_DEVICES reply -> [DeviceEntry] in the kernel's order.

    ``has_ext``: whether the records carry the event_nr/flags words (interface >= 4.37);
    None guesses from the record sizes.  ``uuid``: DM_UUID_FLAG was sent; an entry's
    uuid is then its string, ``""`` (DOESNT_HAVE_UUID) or None (kernel ignored the flag).
    """
    h, start, end = _payload_bounds(buf)
    if end - start < 8 or _U64.unpack_from(buf, start)[0] == 0:
        return []
    out = []
    off = start
    guessed = None
    while True:
        dev, nxt = abi.STRUCT_DM_NAME_LIST.unpack_from(buf, off)
        rec_end = off + nxt if nxt else end
        name_off = off + abi.DM_NAME_LIST_NAME_OFFSET
        name = cstring(buf, name_off, rec_end)
        ext_off = abi.align8(name_off + len(name) + 1 - off) + off
        ext = has_ext
        if ext is None:
            if guessed is None:
                # A non-last record tells exactly; a last one only by the room left.
                guessed = ext_off + 8 <= rec_end
            ext = guessed
        event_nr = 0
        entry_uuid = None
        if ext and ext_off + 8 <= min(rec_end, len(buf)):
            event_nr, lflags = abi.STRUCT_DM_NAME_LIST_EXT.unpack_from(buf, ext_off)
            if uuid:
                if lflags & abi.DM_NAME_LIST_FLAG_HAS_UUID:
                    entry_uuid = to_str(cstring(buf, ext_off + 8, rec_end))
                elif lflags & abi.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID:
                    entry_uuid = ""
        major, minor = abi.huge_decode_dev(dev)
        out.append(DeviceEntry(to_str(name), major, minor, event_nr, entry_uuid))
        if not nxt:
            break
        off += nxt
        if off + abi.DM_NAME_LIST_NAME_OFFSET > end:
            break
    return out


def decode_target_specs(buf):
    """DM_TABLE_STATUS / DM_DEV_WAIT reply -> [TargetLine].

    ``target_count`` specs starting at ``data_start``; each ``next`` is relative to the
    *first* spec.  Parameters are returned verbatim.
    """
    h, start, end = _payload_bounds(buf)
    lines = []
    off = start
    for _ in range(h.target_count):
        if off + abi.SIZEOF_DM_TARGET_SPEC > end:
            break
        sector, length, _status, nxt, ttype = _SPEC.unpack_from(buf, off)
        params = cstring(buf, off + abi.SIZEOF_DM_TARGET_SPEC, end)
        lines.append(TargetLine(sector, length, to_str(ttype.split(b"\0", 1)[0]),
                                to_str(params)))
        off = start + nxt
    return lines


def decode_deps(buf):
    """DM_TABLE_DEPS reply -> [(major, minor)] in the kernel's order."""
    h, start, end = _payload_bounds(buf)
    if end - start < abi.SIZEOF_DM_TARGET_DEPS:
        return []
    count = _U32.unpack_from(buf, start)[0]
    devs = []
    for i in range(count):
        o = start + abi.SIZEOF_DM_TARGET_DEPS + 8 * i
        if o + 8 > end:
            break
        devs.append(abi.huge_decode_dev(_U64.unpack_from(buf, o)[0]))
    return devs


def decode_versions(buf):
    """DM_LIST_VERSIONS / DM_GET_TARGET_VERSION reply -> [TargetVersion].

    ``next`` is relative to the current entry; 0 (or no advance) ends the list.
    """
    h, start, end = _payload_bounds(buf)
    out = []
    off = start
    while off + abi.SIZEOF_DM_TARGET_VERSIONS <= end:
        nxt, a, b, c = abi.STRUCT_DM_TARGET_VERSIONS.unpack_from(buf, off)
        name = cstring(buf, off + abi.SIZEOF_DM_TARGET_VERSIONS, end)
        out.append(TargetVersion(to_str(name), (a, b, c)))
        if not nxt:
            break
        off += nxt
    return out


def decode_message(buf):
    """DM_TARGET_MSG reply -> the target's output, or None without DM_DATA_OUT_FLAG."""
    h, start, end = _payload_bounds(buf)
    if not h.flags & abi.DM_DATA_OUT_FLAG:
        return None
    return to_str(cstring(buf, start, end))


# =====================================================================================
# Kernel side
# =====================================================================================
class KernelError(DmctlError):
    """A handler failure: the errno and what the kernel logs (None if nothing)."""

    def __init__(self, err, log=None):
        self.errno = err
        self.log = log
        super().__init__(err, log)


def _ioctl_log(text):
    return "device-mapper: ioctl: " + text


class KParam:
    """The kernel's copy of the request (``struct dm_ioctl *param`` in dm-ioctl.c).

    Header fields are read and written in place, so every byte the kernel does not
    touch keeps what the caller sent (and goes back to the caller as such).
    """

    __slots__ = ("buf", "param_size")

    def __init__(self, buf, param_size):
        self.buf = buf
        self.param_size = param_size

    def _u32(off):
        return property(lambda s: _U32.unpack_from(s.buf, off)[0],
                        lambda s, v: _U32.pack_into(s.buf, off, v & 0xFFFFFFFF))

    data_size = _u32(abi.OFF_DATA_SIZE)
    data_start = _u32(abi.OFF_DATA_START)
    target_count = _u32(abi.OFF_TARGET_COUNT)
    flags = _u32(abi.OFF_FLAGS)
    event_nr = _u32(abi.OFF_EVENT_NR)
    del _u32

    open_count = property(lambda s: _S32.unpack_from(s.buf, abi.OFF_OPEN_COUNT)[0],
                          lambda s, v: _S32.pack_into(s.buf, abi.OFF_OPEN_COUNT, v))
    dev = property(lambda s: _U64.unpack_from(s.buf, abi.OFF_DEV)[0],
                   lambda s, v: _U64.pack_into(s.buf, abi.OFF_DEV, v))
    version = property(lambda s: abi.VERSION3.unpack_from(s.buf, 0))

    @property
    def name(self):
        return cstring(self.buf, abi.OFF_NAME, abi.OFF_NAME + abi.DM_NAME_LEN)

    @property
    def uuid(self):
        return cstring(self.buf, abi.OFF_UUID, abi.OFF_UUID + abi.DM_UUID_LEN)

    def set_name(self, b):
        """strscpy(param->name, b): the string and its NUL; later bytes are kept."""
        b = b[:abi.DM_NAME_LEN - 1] + b"\0"
        self.buf[abi.OFF_NAME:abi.OFF_NAME + len(b)] = b

    def set_uuid(self, b):
        b = b[:abi.DM_UUID_LEN - 1] + b"\0"
        self.buf[abi.OFF_UUID:abi.OFF_UUID + len(b)] = b

    def set_flag(self, bit, on=True):
        self.flags = (self.flags | bit) if on else (self.flags & ~bit)

    def result_buffer(self):
        """get_result_buffer(): data_start := 312; returns (offset, len available)."""
        self.data_start = abi.DM_DATA_START
        start = abi.DM_DATA_START
        return start, (self.param_size - start if start < self.param_size else 0)

    def header(self):
        return Header.unpack(self.buf)


def kernel_check_version(user_buf, kernel_version):
    """check_version(): copy in version[3], write the kernel's version back to the
    caller's buffer (even on mismatch).  Raises KernelError(EINVAL) on mismatch."""
    import errno as _errno
    v = abi.VERSION3.unpack_from(user_buf, 0)
    kv = tuple(kernel_version)
    abi.VERSION3.pack_into(user_buf, 0, *kv)
    if v[0] != abi.DM_VERSION_MAJOR or v[1] > kv[1]:
        raise KernelError(_errno.EINVAL, _ioctl_log(
            "ioctl interface mismatch: kernel(%u.%u.%u), user(%u.%u.%u), cmd(%d)"
            % (kv + v + (0,))))


def kernel_copy_in(user_buf, nr):
    """copy_params() + validate_params(): the kernel's copy of the request.

    Returns ``(KParam, input_param_size)``.  The KParam's ``data_size`` is already
    reset to 305 as ``ctl_ioctl`` does before calling the handler.
    """
    import errno as _errno
    if len(user_buf) < abi.DM_MIN_DATA_SIZE:
        raise KernelError(_errno.EFAULT)
    data_size = _U32.unpack_from(user_buf, abi.OFF_DATA_SIZE)[0]
    if data_size < abi.DM_MIN_DATA_SIZE:
        raise KernelError(_errno.EINVAL, _ioctl_log(
            "Invalid data size in the ioctl structure: %u" % data_size))
    if nr in abi.NO_PARAMS_CMDS:
        kbuf = bytearray(user_buf[:abi.DM_MIN_DATA_SIZE])
        _U32.pack_into(kbuf, abi.OFF_DATA_SIZE, abi.DM_MIN_DATA_SIZE)
    else:
        if data_size > len(user_buf):
            raise KernelError(_errno.EFAULT)
        kbuf = bytearray(user_buf[:data_size])
    p = KParam(kbuf, 0)
    input_param_size = p.data_size
    p.param_size = input_param_size
    # validate_params()
    p.flags = p.flags & ~abi.DM_OUTPUT_ONLY_FLAGS
    if nr not in (abi.DM_REMOVE_ALL_CMD, abi.DM_LIST_DEVICES_CMD, abi.DM_LIST_VERSIONS_CMD):
        if nr == abi.DM_DEV_CREATE_CMD:
            if not p.name:
                raise KernelError(_errno.EINVAL, _ioctl_log(
                    "name not supplied when creating device"))
        elif p.uuid and p.name:
            raise KernelError(_errno.EINVAL, _ioctl_log(
                "only supply one of name or uuid, cmd(%u)" % nr))
        kbuf[abi.OFF_NAME + abi.DM_NAME_LEN - 1] = 0
        kbuf[abi.OFF_UUID + abi.DM_UUID_LEN - 1] = 0
    p.data_size = abi.DM_MIN_DATA_SIZE
    return p, input_param_size


def kernel_copy_out(user_buf, p):
    """copy_to_user(user, param, param->data_size) after a successful handler."""
    n = p.data_size
    user_buf[:n] = p.buf[:n]


def kernel_lookup_key(p):
    """Which key __find_device_hash_cell() uses: ('uuid'|'name'|'dev', value).

    Returns ``(None, log)`` for an invalid combination (the caller answers -ENXIO).
    """
    name, uuid, dev = p.name, p.uuid, p.dev
    if uuid:
        if name or dev:
            return None, _ioctl_log("Invalid ioctl structure: uuid %s, name %s, dev %x"
                                    % (to_str(uuid), to_str(name), dev))
        return ("uuid", uuid), None
    if name:
        if dev:
            return None, _ioctl_log("Invalid ioctl structure: name %s, dev %x"
                                    % (to_str(name), dev))
        return ("name", name), None
    if dev:
        return ("dev", abi.huge_decode_dev(dev)), None
    return None, None


def kernel_found(p, info):
    """The "sneaky" write-back of a successful lookup: canonical name and uuid, and
    DM_INACTIVE_PRESENT_FLAG set or cleared from the device's state."""
    p.set_name(to_bytes(info.name))
    if info.uuid:
        p.set_uuid(to_bytes(info.uuid))
    else:
        p.buf[abi.OFF_UUID] = 0
    p.set_flag(abi.DM_INACTIVE_PRESENT_FLAG, info.flags & abi.DM_INACTIVE_PRESENT_FLAG)


_STATUS_CLEARED = (abi.DM_SUSPEND_FLAG | abi.DM_READONLY_FLAG | abi.DM_ACTIVE_PRESENT_FLAG
                   | abi.DM_INTERNAL_SUSPEND_FLAG)
_STATUS_SET = (abi.DM_SUSPEND_FLAG | abi.DM_INTERNAL_SUSPEND_FLAG | abi.DM_DEFERRED_REMOVE
               | abi.DM_ACTIVE_PRESENT_FLAG | abi.DM_READONLY_FLAG)


def kernel_dev_status(p, info):
    """__dev_status(): fill the reply header from a DeviceInfo.

    ``info.flags`` carries the device's state (SUSPEND, INTERNAL_SUSPEND, DEFERRED_REMOVE,
    ACTIVE_PRESENT, and READONLY/target_count as seen for the table the request asked
    about); other input flags are echoed.
    """
    f = p.flags & ~_STATUS_CLEARED
    f |= info.flags & _STATUS_SET
    p.flags = f
    p.dev = abi.huge_encode_dev(info.major, info.minor)
    p.open_count = info.open_count
    p.event_nr = info.event_nr
    p.target_count = info.target_count


def kernel_write_name_list(p, entries, uuid_flag):
    """list_devices(): ``entries`` are DeviceEntry (already filtered, in name order).

    Sets DM_BUFFER_FULL_FLAG (data_size stays 305) when they do not fit.
    """
    needed = 0
    recs = []
    for e in entries:
        name = to_bytes(e.name)
        uuid = to_bytes(e.uuid) if (uuid_flag and e.uuid) else None
        needed += abi.align8(abi.DM_NAME_LIST_NAME_OFFSET + len(name) + 1)
        needed += abi.align8(8)
        if uuid is not None:
            needed += abi.align8(len(uuid) + 1)
        recs.append((e, name, uuid))
    start, avail = p.result_buffer()
    if avail < needed or avail < 8:
        p.set_flag(abi.DM_BUFFER_FULL_FLAG)
        return
    p.data_size = p.data_start + needed
    buf = p.buf
    _U64.pack_into(buf, start, 0)                       # "Flags no data"
    off = start
    old = None
    for e, name, uuid in recs:
        if old is not None:
            _U32.pack_into(buf, old + 8, off - old)
        _U64.pack_into(buf, off, abi.huge_encode_dev(e.major, e.minor))
        _U32.pack_into(buf, off + 8, 0)
        n = off + abi.DM_NAME_LIST_NAME_OFFSET
        buf[n:n + len(name) + 1] = name + b"\0"
        old = off
        ext = abi.align8(n + len(name) + 1)
        lflags = 0
        if uuid_flag:
            lflags = (abi.DM_NAME_LIST_FLAG_HAS_UUID if uuid is not None
                      else abi.DM_NAME_LIST_FLAG_DOESNT_HAVE_UUID)
        abi.STRUCT_DM_NAME_LIST_EXT.pack_into(buf, ext, e.event_nr & 0xFFFFFFFF, lflags)
        off = ext + 8
        if uuid is not None:
            buf[off:off + len(uuid) + 1] = uuid + b"\0"
            off = abi.align8(off + len(uuid) + 1)


def kernel_write_status(p, lines):
    """retrieve_status(): one dm_target_spec + string per TargetLine.

    ``next`` is the aligned offset of the following spec from the first one.  Stops with
    DM_BUFFER_FULL_FLAG when ``remaining <= 40`` before a spec, or when a string fills
    the rest of the buffer (``strlen + 1 == remaining``; longer strings are truncated by
    the target's DMEMIT first).  data_size = end of the last complete string.
    """
    buf = p.buf
    outbuf, length = p.result_buffer()
    out = outbuf
    used = 0
    for t in lines:
        remaining = length - (out - outbuf)
        if remaining <= abi.SIZEOF_DM_TARGET_SPEC:
            p.set_flag(abi.DM_BUFFER_FULL_FLAG)
            break
        spec = out
        _U64.pack_into(buf, spec + abi.SPEC_OFF_SECTOR_START, t.start)
        _U64.pack_into(buf, spec + abi.SPEC_OFF_LENGTH, t.length)
        _S32.pack_into(buf, spec + abi.SPEC_OFF_STATUS, 0)
        # strncpy(target_type, name, 15): pads with NULs up to 15, byte 15 untouched
        tt = to_bytes(t.target_type)[:abi.DM_MAX_TYPE_NAME - 1]
        tt = tt + b"\0" * (abi.DM_MAX_TYPE_NAME - 1 - len(tt))
        o = spec + abi.SPEC_OFF_TARGET_TYPE
        buf[o:o + len(tt)] = tt
        out += abi.SIZEOF_DM_TARGET_SPEC
        remaining = length - (out - outbuf)
        s = to_bytes(t.params)
        if len(s) + 1 >= remaining:
            s = s[:remaining - 1]
            buf[out:out + len(s) + 1] = s + b"\0"
            p.set_flag(abi.DM_BUFFER_FULL_FLAG)
            break
        buf[out:out + len(s) + 1] = s + b"\0"
        out += len(s) + 1
        used = p.data_start + (out - outbuf)
        out = abi.align8(out)
        _U32.pack_into(buf, spec + abi.SPEC_OFF_NEXT, out - outbuf)
    if used:
        p.data_size = used
    p.target_count = len(lines)


def kernel_write_deps(p, devs):
    """retrieve_deps(): count + huge_encode_dev(dev)[]; BUFFER_FULL if it does not fit."""
    start, avail = p.result_buffer()
    needed = abi.SIZEOF_DM_TARGET_DEPS + 8 * len(devs)
    if avail < needed:
        p.set_flag(abi.DM_BUFFER_FULL_FLAG)
        return
    _U32.pack_into(p.buf, start, len(devs))
    for i, (major, minor) in enumerate(devs):
        _U64.pack_into(p.buf, start + 8 + 8 * i, abi.huge_encode_dev(major, minor))
    p.data_size = p.data_start + needed


def kernel_write_versions(p, versions):
    """__list_versions(): needed = sum(16 + strlen + 1 + 7), an over-estimate which is
    also what data_size reports; entries 8-aligned, ``next`` relative to the entry."""
    names = [to_bytes(v.name) for v in versions]
    needed = sum(abi.SIZEOF_DM_TARGET_VERSIONS + len(n) + 1 + 7 for n in names)
    start, avail = p.result_buffer()
    if avail < needed:
        p.set_flag(abi.DM_BUFFER_FULL_FLAG)
        return
    p.data_size = p.data_start + needed
    off = start
    old = None
    for v, n in zip(versions, names):
        if old is not None:
            _U32.pack_into(p.buf, old, off - old)
        abi.STRUCT_DM_TARGET_VERSIONS.pack_into(p.buf, off, 0, *v.version)
        o = off + abi.SIZEOF_DM_TARGET_VERSIONS
        p.buf[o:o + len(n) + 1] = n + b"\0"
        old = off
        off = abi.align8(o + len(n) + 1)


def kernel_write_message_result(p, result, maxlen):
    """The tail of target_message() when the target returned 1 (output produced)."""
    p.set_flag(abi.DM_DATA_OUT_FLAG)
    start = abi.DM_DATA_START
    r = to_bytes(result)
    # the target wrote at most maxlen - 1 characters plus NUL (DMEMIT truncates)
    if maxlen:
        w = r[:maxlen - 1] + b"\0"
        p.buf[start:start + len(w)] = w
    if not maxlen or len(r[:maxlen - 1]) + 1 >= maxlen:
        p.set_flag(abi.DM_BUFFER_FULL_FLAG)
    else:
        p.data_size = p.data_start + len(r) + 1


def _invalid_str(buf, start, end):
    """invalid_str(): no NUL between start and end."""
    if start >= end:
        return True
    return bytes(buf[start:end]).find(b"\0") < 0


def kernel_string_param(p, what):
    """The string at data_start for DEV_RENAME / DEV_SET_GEOMETRY (uses the *input*
    data_start); None when it lies before ``data`` or is not NUL-terminated."""
    off = p.data_start
    if off < abi.OFF_DATA or _invalid_str(p.buf, off, p.param_size):
        return None
    return cstring(p.buf, off, p.param_size)


def kernel_target_msg(p):
    """(sector, message bytes) of DM_TARGET_MSG, or None if invalid (target_message)."""
    off = p.data_start
    if off < abi.OFF_DATA or _invalid_str(p.buf, off + abi.SIZEOF_DM_TARGET_MSG,
                                          p.param_size):
        return None
    sector = _U64.unpack_from(p.buf, off)[0]
    return sector, cstring(p.buf, off + abi.SIZEOF_DM_TARGET_MSG, p.param_size)


def kernel_parse_load(p):
    """populate_table() framing: -> [TargetLine] (params verbatim).

    Raises KernelError(EINVAL, log) exactly where dm-ioctl.c would (no targets, spec
    overlapping, beyond the end, not 8-aligned, params not NUL-terminated).
    """
    import errno as _errno
    EINVAL = _errno.EINVAL
    if not p.target_count:
        raise KernelError(EINVAL, _ioctl_log("populate_table: no targets specified"))
    buf = p.buf
    end = p.param_size
    spec = 0                                   # (struct dm_target_spec *) param
    nxt = p.data_start
    min_size = abi.SIZEOF_DM_IOCTL
    lines = []
    for i in range(p.target_count):
        if nxt < min_size:
            raise KernelError(EINVAL, _ioctl_log(
                "populate_table: next target spec (offset %u) overlaps %s"
                % (nxt, "previous target" if i else "'struct dm_ioctl'")))
        remaining = end - spec
        if remaining - abi.SIZEOF_DM_TARGET_SPEC <= nxt:
            raise KernelError(EINVAL, _ioctl_log(
                "Target spec extends beyond end of parameters")
                + "\n" + _ioctl_log("unable to find target"))
        if nxt % 8:
            raise KernelError(EINVAL, _ioctl_log(
                "Next dm_target_spec (offset %u) is not 8-byte aligned" % nxt)
                + "\n" + _ioctl_log("unable to find target"))
        spec += nxt
        params_off = spec + abi.SIZEOF_DM_TARGET_SPEC
        nul = bytes(buf[params_off:end]).find(b"\0")
        if nul < 0:
            raise KernelError(EINVAL, _ioctl_log(
                "populate_table: target parameters not NUL-terminated"))
        # "Add 1 for NUL terminator": the next spec may not start inside this one
        min_size = (params_off + nul) - spec + 1
        sector, length, _st, nxt, ttype = _SPEC.unpack_from(buf, spec)
        lines.append(TargetLine(sector, length, to_str(ttype.split(b"\0", 1)[0]),
                                to_str(bytes(buf[params_off:params_off + nul]))))
    return lines
