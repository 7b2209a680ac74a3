"""The dm-log-writes on-disk log format (``drivers/md/dm-log-writes.c``).

Pure packing and parsing, a reader that validates like xfstests' ``replay-log``, and a
writer that lays entries out exactly as the kernel's logging thread does.  Stdlib only.

Layout (all integers little-endian; ``S`` is the log's *sectorsize*, the logical block
size of the data device, 512 or 4096):

* byte 0: the super, one S-byte block: ``u64 magic, u64 version, u64 nr_entries,
  u32 sectorsize`` and zero padding;
* then, from byte S, each entry: one S-byte header block (``u64 sector, u64 nr_sectors,
  u64 flags, u64 data_len``, a mark's text from byte 32, zeros to S) followed by
  ``nr_sectors * S`` bytes of data.  Discards and marks carry no data.

``sector`` and ``nr_sectors`` count S-byte sectors.  ``data_len`` is the length in bytes
of a mark's text (0 otherwise).  The kernel's own ``next_sector`` bookkeeping, and so
the status line, counts 512-byte sectors.
"""

import os
import struct

from dmctl.errors import DmctlError
from dmctl.numbers import c_int

__all__ = [
    "MAGIC", "VERSION", "FLUSH", "FUA", "DISCARD", "MARK", "METADATA", "FLAG_NAMES",
    "SUPER", "ENTRY", "C_ENTRY_SIZE", "LogFormatError", "BadMagic", "BadVersion",
    "ShortSuper", "Malformed", "Truncated", "Super", "LogEntry", "flags_to_str",
    "flag_names", "pack_super", "unpack_super", "pack_entry", "unpack_entry",
    "entry_valid", "mark_matches", "mark_text", "truncate_mark", "pack_log",
    "LogReader", "LogWriter", "pread_full",
]

MAGIC = 0x6A736677736872          # "rhswfsj"
VERSION = 1

FLUSH = 1 << 0
FUA = 1 << 1
DISCARD = 1 << 2
MARK = 1 << 3
METADATA = 1 << 4

# Order matters: replay-log prints the names in this order.
FLAG_NAMES = ((FLUSH, "FLUSH"), (FUA, "FUA"), (DISCARD, "DISCARD"), (MARK, "MARK"),
              (METADATA, "METADATA"))

_U64 = (1 << 64) - 1

#: ``struct log_write_super`` as the kernel writes it (28 bytes of fields, padded to 32).
SUPER = struct.Struct("<QQQI4x")
#: ``struct log_write_entry`` (32 bytes); a mark's text starts right after it.
ENTRY = struct.Struct("<QQQQ")
#: ``sizeof(struct log_write_entry)`` in replay-log, whose copy of the struct ends in
#: ``char data[1]`` (32 + 1, aligned to 8): how much it reads when skipping entries.
C_ENTRY_SIZE = 40


class LogFormatError(DmctlError, ValueError):
    """The log is not a valid dm-log-writes log (``message`` is replay-log's text)."""


class BadMagic(LogFormatError):
    def __init__(self, magic=None):
        self.magic = magic
        super().__init__("Magic doesn't match")


class BadVersion(LogFormatError):
    def __init__(self, version):
        self.version = version
        super().__init__("Version mismatch, wanted %d, have %d" % (VERSION, c_int(version)))


class ShortSuper(LogFormatError):
    def __init__(self, got):
        self.got = got
        super().__init__("Error reading super: short read of %d bytes" % got)


class Malformed(LogFormatError):
    """An entry header fails replay-log's sanity check; ``pos`` is in S units."""

    def __init__(self, pos, index=None):
        self.pos = pos
        self.index = index
        super().__init__("Malformed entry @%d" % pos)


class Truncated(LogFormatError):
    """The log ends inside an entry header or its data."""

    def __init__(self, what, offset, index=None):
        self.what = what
        self.offset = offset
        self.index = index
        super().__init__("Log truncated reading %s at byte %d" % (what, offset))


class Super:
    __slots__ = ("magic", "version", "nr_entries", "sectorsize")

    def __init__(self, magic, version, nr_entries, sectorsize):
        self.magic = magic
        self.version = version
        self.nr_entries = nr_entries
        self.sectorsize = sectorsize

    def __repr__(self):
        return "Super(magic=%#x, version=%d, nr_entries=%d, sectorsize=%d)" % (
            self.magic, self.version, self.nr_entries, self.sectorsize)

    def __eq__(self, other):
        return isinstance(other, Super) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)


class LogEntry:
    """One log entry as found in a log.

    ``index`` counts from 0; ``pos`` is the header's position and ``end_pos`` the
    position just after its data, both in S units (``end_pos`` is what
    ``replay-log --find`` prints after the ``@``).  ``data_offset`` is the byte offset of
    the data in the log, ``size`` the data length in bytes (``nr_sectors * S``; a discard
    has a size but no data in the log).  ``mark`` is the mark text (bytes) or None.
    """

    __slots__ = ("index", "pos", "end_pos", "sector", "nr_sectors", "flags", "data_len",
                 "mark", "data_offset", "size", "sectorsize")

    def __init__(self, index, pos, sector, nr_sectors, flags, data_len, mark, sectorsize):
        self.index = index
        self.pos = pos
        self.sector = sector
        self.nr_sectors = nr_sectors
        self.flags = flags
        self.data_len = data_len
        self.mark = mark
        self.sectorsize = sectorsize
        self.size = (nr_sectors * sectorsize) & _U64
        self.data_offset = (pos + 1) * sectorsize
        has_data = not (flags & DISCARD)
        self.end_pos = pos + 1 + (nr_sectors if has_data else 0)

    @property
    def has_data(self):
        return bool(self.nr_sectors) and not (self.flags & DISCARD)

    @property
    def flag_names(self):
        return flag_names(self.flags)

    def as_dict(self):
        """The JSON shape ``dmctl replay-log --json`` prints."""
        mark = None
        if self.mark is not None:
            mark = self.mark.decode("utf-8", "backslashreplace")
        return {
            "index": self.index, "pos": self.pos, "end_pos": self.end_pos,
            "sector": self.sector, "nr_sectors": self.nr_sectors, "size": self.size,
            "flags": self.flags, "flag_names": self.flag_names, "mark": mark,
            "data_offset": self.data_offset,
        }

    def __repr__(self):
        return ("LogEntry(index=%d, pos=%d, sector=%d, nr_sectors=%d, flags=%s, mark=%r)"
                % (self.index, self.pos, self.sector, self.nr_sectors,
                   flags_to_str(self.flags), self.mark))


def flag_names(flags):
    """``["FLUSH", "FUA"]``; unknown bits as ``"UNKNOWN.0x…"``; ``[]`` for none."""
    out = []
    for bit, name in FLAG_NAMES:
        if flags & bit:
            out.append(name)
            flags &= ~bit
    if flags:
        out.append("UNKNOWN.0x%x" % flags)
    return out


def flags_to_str(flags):
    """replay-log's rendering: ``NONE``, ``FUA``, ``FLUSH|FUA``, ``MARK|UNKNOWN.0x40``."""
    return "|".join(flag_names(flags)) or "NONE"


def pack_super(nr_entries, sectorsize, *, version=VERSION, magic=MAGIC, pad=True):
    """The super block; ``pad`` fills it with zeros to one sectorsize block."""
    raw = SUPER.pack(magic, version, nr_entries, sectorsize)
    if pad and sectorsize > len(raw):
        raw += bytes(sectorsize - len(raw))
    return raw


def unpack_super(buf, offset=0):
    magic, version, nr_entries, sectorsize = SUPER.unpack_from(buf, offset)
    return Super(magic, version, nr_entries, sectorsize)


def pack_entry(sector, nr_sectors, flags, sectorsize=512, *, data_len=None, mark=None):
    """One entry header block of ``sectorsize`` bytes.

    For a mark pass ``mark`` (bytes or str; ``flags`` should include MARK); ``data_len``
    defaults to its length.  The text is not truncated here (see ``truncate_mark``).
    """
    if isinstance(mark, str):
        mark = mark.encode()
    text = mark or b""
    if data_len is None:
        data_len = len(text)
    raw = ENTRY.pack(sector, nr_sectors, flags, data_len) + text
    if len(raw) > sectorsize:
        raise ValueError("mark of %d bytes does not fit a %d-byte entry" % (len(text), sectorsize))
    return raw + bytes(sectorsize - len(raw))


def unpack_entry(buf, offset=0):
    """``(sector, nr_sectors, flags, data_len)`` of the header at ``offset``."""
    return ENTRY.unpack_from(buf, offset)


def entry_valid(header, offset=0):
    """replay-log's ``log_entry_valid``: not all-zero, and zero-padded unless a mark.

    ``header`` must hold at least 33 bytes from ``offset``.
    """
    nr_sectors = int.from_bytes(header[offset + 8:offset + 16], "little")
    flags = int.from_bytes(header[offset + 16:offset + 24], "little")
    if not flags and not nr_sectors:
        return False
    if flags != MARK and header[offset + 32] != 0:
        return False
    return True


def mark_text(header, data_len, offset=0):
    """The mark text stored in a header block (stops at a NUL, like C strings)."""
    start = offset + 32
    text = bytes(header[start:start + min(data_len, len(header))])
    nul = text.find(b"\0")
    return text if nul < 0 else text[:nul]


def mark_matches(wanted, header, data_len, offset=0):
    """replay-log's ``strncmp(wanted, entry->data, data_len + 1) == 0``.

    An exact match: a prefix of the stored text does not match.  ``data_len + 1`` is
    computed in u64 as in C (so ``data_len == 2**64 - 1`` compares nothing and matches).
    """
    if isinstance(wanted, str):
        wanted = os.fsencode(wanted)
    n = (data_len + 1) & _U64
    nul = wanted.find(b"\0")
    if nul >= 0:
        wanted = wanted[:nul]
    a = wanted + b"\0"
    b = bytes(header[offset + 32:offset + 32 + min(n, len(a))])
    # Past the end of the block C would read whatever follows; treat it as NUL.
    b += bytes(max(0, min(n, len(a)) - len(b)))
    for i in range(min(n, len(a))):
        if a[i] != b[i]:
            return False
        if a[i] == 0:
            return True
    return True


def truncate_mark(text, sectorsize):
    """The kernel's ``kstrndup(mark, sectorsize - 32 - 1)`` (479 bytes for S=512)."""
    if isinstance(text, str):
        text = text.encode()
    nul = text.find(b"\0")
    if nul >= 0:
        text = text[:nul]
    return text[:max(0, sectorsize - ENTRY.size - 1)]


def pack_log(entries, sectorsize=512, nr_entries=None):
    """A whole log as bytes, for tests and tools.

    ``entries`` are tuples ``(sector, nr_sectors, flags, payload)``: ``payload`` is the
    data (``nr_sectors * sectorsize`` bytes; shorter is zero-padded) or, for a MARK, the
    mark text.  ``nr_entries`` defaults to the number of entries.
    """
    parts = [pack_super(len(entries) if nr_entries is None else nr_entries, sectorsize)]
    for sector, nr_sectors, flags, payload in entries:
        if isinstance(payload, str):
            payload = payload.encode()
        if flags & MARK:
            parts.append(pack_entry(sector, nr_sectors, flags, sectorsize, mark=payload or b""))
            continue
        parts.append(pack_entry(sector, nr_sectors, flags, sectorsize))
        if not (flags & DISCARD) and nr_sectors:
            size = nr_sectors * sectorsize
            payload = bytes(payload or b"")
            if len(payload) > size:
                raise ValueError("payload longer than nr_sectors * sectorsize")
            parts.append(payload + bytes(size - len(payload)))
    return b"".join(parts)


def pread_full(fd, n, offset):
    """``os.pread`` that only comes back short at the end of the file."""
    out = os.pread(fd, n, offset)
    if 0 < len(out) < n:
        parts = [out]
        got = len(out)
        while got < n:
            more = os.pread(fd, n - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        out = b"".join(parts)
    return out


class _Source:
    """Positional reads over a path, an fd, a binary file object or a bytes-like."""

    def __init__(self, source):
        self._own_fd = None
        self._buf = None
        self._fd = None
        self._file = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._buf = memoryview(source).cast("B")
        elif isinstance(source, int):
            self._fd = source
        elif isinstance(source, (str, os.PathLike)):
            self._fd = self._own_fd = os.open(source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        else:
            try:
                self._fd = source.fileno()
            except (AttributeError, OSError, ValueError):
                self._file = source

    def pread(self, n, offset):
        if self._buf is not None:
            return bytes(self._buf[offset:offset + n])
        if self._fd is not None:
            return pread_full(self._fd, n, offset)
        self._file.seek(offset)
        return self._file.read(n)

    def close(self):
        if self._own_fd is not None:
            os.close(self._own_fd)
            self._own_fd = None


class LogReader:
    """Reads a dm-log-writes log and iterates its entries, checking them as replay-log does.

    ``source`` is a path, an open fd, a binary file object or a bytes-like object.
    Opening reads and checks the super (``BadMagic``, ``BadVersion``, ``ShortSuper``).
    ``sectorsize``, ``nr_entries`` and ``version`` come from the super.

    ``entries()`` yields ``LogEntry`` objects in log order; ``read_data(entry)`` returns an
    entry's data.  Like replay-log, iteration stops after ``nr_entries`` entries; pass
    ``beyond_super=True`` to keep going while valid headers follow (a crashed log's super
    lags the entries really written: it is updated only after FUA and MARK entries).
    """

    def __init__(self, source):
        self._src = _Source(source)
        try:
            raw = self._src.pread(SUPER.size, 0)
            if len(raw) < SUPER.size:
                raise ShortSuper(len(raw))
            sup = unpack_super(raw)
            if sup.magic != MAGIC:
                raise BadMagic(sup.magic)
            if sup.version != VERSION:
                raise BadVersion(sup.version)
            if sup.sectorsize < ENTRY.size + 1:
                raise LogFormatError("Invalid sectorsize %d" % sup.sectorsize)
        except BaseException:
            self._src.close()
            raise
        self.super = sup
        self.sectorsize = sup.sectorsize
        self.nr_entries = sup.nr_entries
        self.version = sup.version

    def close(self):
        self._src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read_header(self, pos, index=None):
        """The entry whose header is at ``pos`` (S units); checks it like replay-log."""
        s = self.sectorsize
        raw = self._src.pread(s, pos * s)
        if len(raw) < s:
            raise Truncated("entry", pos * s, index)
        if not entry_valid(raw):
            raise Malformed(pos, index)
        sector, nr_sectors, flags, data_len = ENTRY.unpack_from(raw)
        mark = mark_text(raw, data_len) if flags & MARK else None
        return LogEntry(index, pos, sector, nr_sectors, flags, data_len, mark, s)

    def entries(self, start=0, *, beyond_super=False):
        """Yield entries from index ``start`` (earlier ones are skipped, not returned)."""
        pos = 1
        index = 0
        while beyond_super or index < self.nr_entries:
            try:
                e = self.read_header(pos, index)
            except (Truncated, Malformed):
                if beyond_super and index >= self.nr_entries:
                    return
                raise
            if index >= start:
                yield e
            pos = e.end_pos
            index += 1

    __iter__ = entries

    def read_data(self, entry):
        """The entry's data bytes (b"" for discards, marks and empty flushes)."""
        if not entry.has_data:
            return b""
        data = self._src.pread(entry.size, entry.data_offset)
        if len(data) < entry.size:
            raise Truncated("data", entry.data_offset + len(data), entry.index)
        return data

    def find_mark(self, mark):
        """The first MARK entry whose text is exactly ``mark``, or None."""
        wanted = os.fsencode(mark) if isinstance(mark, str) else mark
        for e in self.entries():
            if e.flags & MARK and e.mark == wanted:
                return e
        return None


class LogWriter:
    """Lays out log entries exactly as the kernel's ``log_writes_kthread`` does.

    The simulated target decides *when* a block is logged (the unflushed list, flush
    splicing, FUA and marks going straight to the queue); this class does what the
    logging thread does with each block it takes off the queue:

    * ``sector = next_sector``; ``next_sector += nr_sectors * S/512`` unless DISCARD, then
      ``+= S/512`` for the header (512-byte units, as the kernel keeps it);
    * if ``end_sector`` is known and ``next_sector >= end_sector``: "Ran out of space on
      the logdev", logging is disabled, the block is dropped (and ``next_sector`` stays
      advanced, as in the kernel);
    * otherwise ``logged_entries += 1``, the header block (and the mark text, or the data)
      is written at ``sector * 512``, and after a FUA or MARK entry the super is rewritten.

    ``write(offset, data)`` writes bytes to the log device at a byte offset; an OSError
    from it is treated like a failed log bio ("Error writing log block"), which disables
    logging.  ``end_sector`` is the log device size in 512-byte sectors (0: unknown, no
    limit unless ``get_end_sector`` later returns one).  ``dmerr(text)`` receives the
    kernel's error messages (they are also kept in ``messages``).

    Nothing is written at construction: the kernel writes the super only after the first
    FUA or MARK entry.
    """

    def __init__(self, sectorsize, write, end_sector=0, *, get_end_sector=None, dmerr=None):
        if sectorsize < 512 or sectorsize & (sectorsize - 1):
            raise ValueError("sectorsize must be a power of two >= 512")
        self.sectorsize = sectorsize
        self._spb = sectorsize >> 9          # 512-byte sectors per logical sector
        self._write = write
        self._get_end_sector = get_end_sector
        self._dmerr = dmerr
        self.next_sector = self._spb
        self.end_sector = end_sector
        self.logged_entries = 0
        self.logging_enabled = True
        self.messages = []

    def _error(self, text):
        self.messages.append(text)
        if self._dmerr is not None:
            self._dmerr(text)

    def disable(self, text=None):
        """Stop logging (the kernel does so on allocation or log I/O failure)."""
        if text:
            self._error(text)
        self.logging_enabled = False

    def status_info(self):
        """The target's INFO status: ``<logged entries> <next_sector - 1>[ logging_disabled]``."""
        s = "%d %d" % (self.logged_entries, (self.next_sector - 1) & _U64)
        if not self.logging_enabled:
            s += " logging_disabled"
        return s

    def log_block(self, sector, nr_sectors, flags, data=b"", mark=None):
        """Log one block taken off the logging queue.  Returns True if it was written.

        ``sector``/``nr_sectors`` are in S units (the kernel's ``bio_to_dev_sectors``);
        ``data`` is the written payload (``nr_sectors * S`` bytes; ignored for discards);
        ``mark`` the mark text for MARK blocks (already truncated, see ``log_mark``).
        """
        if not self.logging_enabled:
            return False
        pos = self.next_sector
        if not (flags & DISCARD):
            self.next_sector += nr_sectors * self._spb
        self.next_sector += self._spb
        if not self.end_sector and self._get_end_sector is not None:
            self.end_sector = self._get_end_sector()
        if self.end_sector and self.next_sector >= self.end_sector:
            self.disable("Ran out of space on the logdev")
            return False
        self.logged_entries += 1
        text = b""
        if flags & MARK:
            text = mark.encode() if isinstance(mark, str) else (mark or b"")
        try:
            self._write(pos * 512, pack_entry(sector, nr_sectors, flags, self.sectorsize,
                                              mark=text))
            if data and nr_sectors and not (flags & DISCARD) and not text:
                self._write((pos + self._spb) * 512, data)
            if flags & (FUA | MARK):
                self.write_super()
        except OSError as e:
            # bi_status: BLK_STS_NOSPC (3) for ENOSPC, else BLK_STS_IOERR (10).
            self.disable("Error writing log block, error=%d" % (3 if e.errno == 28 else 10))
        return True

    def log_mark(self, text):
        """Log a mark as ``dmsetup message … mark TEXT`` does (text cut to S - 33 bytes)."""
        return self.log_block(0, 0, MARK, mark=truncate_mark(text, self.sectorsize))

    def write_super(self):
        """Rewrite the super with the current ``logged_entries``."""
        self._write(0, pack_super(self.logged_entries, self.sectorsize))
