"""``dmctl replay-log``: a drop-in replacement for xfstests' ``src/log-writes/replay-log``.

Same options (GNU ``getopt_long``: options anywhere, unique prefixes, ``--opt=value``),
same stdout/stderr text, same exit codes and the same replayed bytes, so that xfstests'
``common/dmlogwrites`` works unchanged.  The C tool's quirks are kept on purpose:

* an empty log (``nr_entries == 0``) or ``--start-entry`` past the end prints
  ``Invalid entry number`` and exits 1 whatever else was asked;
* ``--fsck`` without ``--check`` (or the reverse) prints the usage only after the log
  was opened and the start entry found;
* in ``--find`` mode a read error or malformed entry exits 255 (C's ``return -1``);
* stdout is buffered as glibc buffers it (whole blocks when not a terminal, lines on a
  terminal), so its interleaving with stderr and with ``--fsck`` commands is the C one;
* discards outside ``--start-sector``/``--end-sector`` are still replayed; on a target
  without BLKDISCARD (a regular file) they become zeros (``-v`` says so once), and a
  discard chunk over 128 MiB is skipped;
* ``--end-mark`` together with ``--next-flush``/``--next-fua`` stops at the mark only.

Additions (after the original options, so that prefixes resolve as before):
``--json`` prints one JSON object per entry (replay: each entry processed; ``--find``: the
entry found; neither: the entries from the start point up to the stop condition) instead
of text lines; a progress bar is drawn on stderr during long replays when stderr is a
terminal (``--no-progress`` turns it off).

Where the C tool has undefined behaviour dmctl says so instead: a super with a sectorsize
below 33 bytes (C divides by zero or reads out of bounds) prints
``Invalid sectorsize N`` and exits 1.
"""

import os
import struct
import sys

from dmctl import getopt as _getopt
from dmctl import numbers as _n
from dmctl.formats import log_writes as _lw

PROG = "replay-log"

_U64 = (1 << 64) - 1
_MAX_RW = 0x7FFFF000              # Linux caps one read()/write() at this many bytes
_MAX_ZERO = 128 * 1024 * 1024     # log->max_zero_size
_DISCARD_CHUNK = 1 << 30          # log_discard's max_chunk
_BLKDISCARD = 0x1277              # _IO(0x12, 119)
_IOV_MAX = 1024
_COALESCE_MAX = 64 << 20
_WINDOW = 8 << 20
_FLUSH, _FUA, _DISCARD, _MARK = _lw.FLUSH, _lw.FUA, _lw.DISCARD, _lw.MARK
_ENTRY = _lw.ENTRY
_C_ENTRY = _lw.C_ENTRY_SIZE
_MARK_MAX = 4097 - _C_ENTRY       # strndup limit for --start-mark/--end-mark

# replay-log's long_options table as getopt's (name, has_arg, key, val): val 0 means
# "long only" (the C code switches on option_index), so options with the same has_arg
# and val 0 are one option to getopt's ambiguity rule and a prefix picks the first.
_SHORTOPTS = {"v": _getopt.NO_ARG}
_LONGOPTS = tuple((name, _getopt.REQUIRED if arg else _getopt.NO_ARG,
                   "v" if val else name, val) for name, arg, val in (
    ("next-flush", False, 0), ("next-fua", False, 0), ("start-entry", True, 0),
    ("end-mark", True, 0), ("log", True, 0), ("replay", True, 0), ("limit", True, 0),
    ("verbose", False, "v"), ("find", False, 0), ("num-entries", False, 0),
    ("no-discard", False, 0), ("fsck", True, 0), ("check", True, 0),
    ("start-mark", True, 0), ("start-sector", True, 0), ("end-sector", True, 0),
    # dmctl additions
    ("json", False, 0), ("no-progress", False, 0),
))

_USAGE = b"""Usage: replay-log --log <logfile> [options]
\t--replay <device> - replay onto a specific device
\t--limit <number> - number of entries to replay
\t--next-flush - replay to/find the next flush
\t--next-fua - replay to/find the next fua
\t--start-entry <entry> - start at the given entry #
\t--start-mark <mark> - mark to start from
\t--end-mark <mark> - replay to/find the given mark
\t--find - put replay-log in find mode, will search based on the other options
\t--number-entries - print the number of entries in the log
\t--no-discard - don't process discard entries
\t--fsck - the fsck command to run, must specify --check
\t--check [<number>|flush|fua|discard] when to check the file system, mush specify --fsck
\t--start-sector <sector> - replay ops on region from <sector> onto <device>
\t--end-sector <sector> - replay ops on region to <sector> onto <device>
\t-v or --verbose - print replayed ops
\t-vv - print also skipped ops
"""

_CHECK_NUMBER, _CHECK_FUA, _CHECK_FLUSH, _CHECK_DISCARD = 1, 2, 3, 4
_ERANGE = 34


class _Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _off_t(v):
    v &= _U64
    return v - (1 << 64) if v >> 63 else v


class _CStdout:
    """stdout as glibc buffers it: by lines on a terminal, else by st_blksize blocks."""

    def __init__(self, stream, before_emit):
        self._before_emit = before_emit
        self._stream = getattr(stream, "buffer", None)
        self._text = stream if self._stream is None else None
        self.buf = bytearray()
        self.emitted = 0
        self.line = False
        self.block = 8192
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            try:
                self.line = os.isatty(fd)
                st = os.fstat(fd)
                if st.st_blksize > 0:
                    self.block = st.st_blksize
            except OSError:
                pass
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
        self.broken = False

    def tell(self):
        return self.emitted + len(self.buf)

    def truncate(self, pos):
        keep = pos - self.emitted
        if 0 <= keep < len(self.buf):
            del self.buf[keep:]

    def write(self, data):
        self.buf += data
        if self.line:
            nl = self.buf.rfind(b"\n")
            if nl >= 0:
                self._emit(nl + 1)
        else:
            k = len(self.buf)
            if k > self.block:
                self._emit(k - (k - self.block) % self.block)

    def flush(self):
        if self.buf:
            self._emit(len(self.buf))

    def _emit(self, n):
        self._before_emit()
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        self.emitted += n
        if self.broken:
            return
        try:
            if self._stream is not None:
                self._stream.write(chunk)
                self._stream.flush()
            else:
                self._text.write(chunk.decode("utf-8", "surrogateescape"))
                self._text.flush()
        except BrokenPipeError:
            self.broken = True


class _Window:
    """Positional reads of the log through one large, reused buffer (few syscalls, no
    fresh memory per read).  Refilling overwrites what earlier views showed, so
    ``before_refill`` (the pending replay writes' flush) runs first, and callers copy
    what they keep (the entry header)."""

    __slots__ = ("fd", "base", "end", "buf", "view", "before_refill")

    def __init__(self, fd, before_refill):
        self.fd = fd
        self.base = self.end = 0
        self.buf = None
        self.view = memoryview(b"")
        self.before_refill = before_refill

    def read(self, off, n):
        if self.base <= off and off + n <= self.end:
            return self.view[off - self.base:off - self.base + n]
        if n > _WINDOW:
            return memoryview(_lw.pread_full(self.fd, n, off))
        self.before_refill()
        if self.buf is None:
            self.buf = bytearray(_WINDOW)
        view = memoryview(self.buf)
        got = 0
        while got < _WINDOW:
            k = os.preadv(self.fd, [view[got:]], off + got)
            if k <= 0:
                break
            got += k
        self.view = view[:got]
        self.base = off
        self.end = off + got
        return self.view[:n]


def _alloc_limit():
    """The largest malloc() Linux's default overcommit heuristic grants: RAM + swap."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(("MemTotal:", "SwapTotal:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total or (1 << 62)


class _Replay:
    """All of replay-log's state (struct log plus main()'s locals)."""

    def __init__(self, prog, out, err):
        self.prog = prog
        self.out_stream = out
        self.err_stream = err
        self.errno = 0
        self.verbose = 0
        self.logfd = -1
        self.replayfd = -1
        self.ignore_discard = False
        self.discard_not_supp = False
        self.pending = []                 # coalesced data writes: (view, out_pos)
        self.pend_start = self.pend_end = 0
        self.pend_cap = -1
        self.replay_limit = None          # bytes: a block device's size
        self.json = False
        self.progress = None
        self.stdout = None

    # -- output -------------------------------------------------------------------
    def err(self, msg):
        if self.progress is not None:
            self.progress.clear()
        stream = getattr(self.err_stream, "buffer", None)
        try:
            if stream is not None:
                stream.write(msg)
                stream.flush()
            else:
                self.err_stream.write(msg.decode("utf-8", "surrogateescape"))
                self.err_stream.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def usage(self):
        self.err(_USAGE)
        raise _Exit(1)

    def printf(self, data):
        self.stdout.write(data)

    # -- replay target writes ----------------------------------------------------
    def queue_write(self, view, offset, out_pos):
        """Write ``view`` at ``offset``, possibly later as part of one pwritev().

        A batch only grows at its end (so it never overlaps itself), up to IOV_MAX
        pieces, ``_COALESCE_MAX`` bytes and, on a block device, the device's end
        (``pend_cap``; -1 when nothing is pending).  The replay loop inlines the
        "append to the batch" case.
        """
        size = len(view)
        if offset == self.pend_end and offset + size <= self.pend_cap and (
                len(self.pending) < _IOV_MAX):
            self.pending.append((view, out_pos))
            self.pend_end = offset + size
            return
        self.flush_writes()
        limit = self.replay_limit
        if limit is not None and offset + size > limit:
            self._pwrite_one(view, offset)
            return
        self.pending.append((view, out_pos))
        self.pend_start = offset
        self.pend_end = offset + size
        cap = offset + _COALESCE_MAX
        self.pend_cap = cap if limit is None else min(cap, limit)

    def _pwrite_one(self, view, offset):
        try:
            n = os.pwrite(self.replayfd, view, _off_t(offset)) if len(view) <= _MAX_RW else _MAX_RW
        except OSError as e:
            self.errno = e.errno
            n = -1
        if n != len(view):
            self.err(b"Error writing data: %d\n" % self.errno)
            raise _Exit(-1)

    def flush_writes(self):
        pending = self.pending
        if not pending:
            return
        self.pending = []
        self.pend_cap = -1
        if len(pending) == 1:
            self._flush_one(pending, 0)
            return
        views = [v for v, _ in pending]
        try:
            n = os.pwritev(self.replayfd, views, _off_t(self.pend_start))
        except OSError:
            n = -1
        if n != self.pend_end - self.pend_start:
            # Redo entry by entry (the same bytes to the same places) so that the error
            # is reported at the entry where the C tool would have stopped.
            for i in range(len(pending)):
                self._flush_one(pending, i)

    def _flush_one(self, pending, i):
        view, out_pos = pending[i]
        offset = self.pend_start + sum(len(v) for v, _ in pending[:i])
        try:
            self._pwrite_one(view, offset)
        except _Exit:
            # What C printed after this entry never happened.
            self.stdout.truncate(out_pos)
            raise

    # -- discards (log_discard / discard_range / zero_range) ----------------------
    def discard(self, sector, nr_sectors):
        if self.ignore_discard:
            return
        self.flush_writes()
        s = self.sectorsize
        start = (sector * s) & _U64
        size = (nr_sectors * s) & _U64
        quiet = not self.verbose or self.json
        while size:
            if self.discard_not_supp and quiet and size > _DISCARD_CHUNK:
                # Every whole 1 GiB chunk but the last is over max_zero_size and is
                # skipped without a word: go straight to the last one.
                k = (size - 1) // _DISCARD_CHUNK
                size -= k * _DISCARD_CHUNK
                start = (start + k * _DISCARD_CHUNK) & _U64
            length = min(size, _DISCARD_CHUNK)
            if not self.discard_not_supp:
                self._discard_range(start, length)
            if self.discard_not_supp:
                self._zero_range(start, length)
            size -= length
            start = (start + length) & _U64

    def _discard_range(self, start, length):
        import fcntl
        try:
            fcntl.ioctl(self.replayfd, _BLKDISCARD, struct.pack("=QQ", start, length))
        except OSError as e:
            self.errno = e.errno
            if self.verbose and not self.json:
                self.printf(b"replay device doesn't support discard, "
                            b"switching to writing zeros\n")
            self.discard_not_supp = True

    def _zero_range(self, start, length):
        if _MAX_ZERO < length:
            if self.verbose and not self.json:
                self.printf(b"discard len %d larger than max %d\n" % (length, _MAX_ZERO))
            return
        zeros = bytes(min(length, 8 << 20))
        zv = memoryview(zeros)
        while length:
            chunk = min(length, len(zeros))
            try:
                n = os.pwrite(self.replayfd, zv[:chunk], _off_t(start))
            except OSError as e:
                self.errno = e.errno
                n = -1
            if n != chunk:
                self.err(b"Error zeroing file: %d\n" % self.errno)
                raise _Exit(-1)
            length -= n
            start += n


def _strtoull(rp, value):
    """C ``strtoull(value, &end, 0)`` of an option's bytes -> (value, rest); an
    overflow leaves ERANGE in ``rp.errno``, as in errno, for later messages."""
    text = value.decode("latin-1")          # one character a byte, C's view
    v, end, erange = _n.strtoull(text, 0)
    if erange:
        rp.errno = _ERANGE
    return v, value[end:]


def _parse_number(rp, value, what):
    v, rest = _strtoull(rp, value)
    if rest:
        rp.err(b"Invalid %s number\n" % what)
        raise _Exit(1)
    return v


def main(argv, prog=PROG, stdout=None, stderr=None):
    """Run ``replay-log`` with ``argv`` (no program name); returns the exit status."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    prog_b = os.fsencode(prog)
    rp = _Replay(prog_b, out, err)
    rp.stdout = _CStdout(out, rp.flush_writes)
    try:
        code = _run(rp, [os.fsdecode(a) for a in argv])
    except _Exit as e:
        code = e.code
    except BrokenPipeError:
        code = 141
    finally:
        if rp.progress is not None:
            rp.progress.close()
        try:
            rp.flush_writes()
        except _Exit:
            code = 1
        rp.stdout.flush()
        for fd in (rp.replayfd, rp.logfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
    if rp.stdout.broken and code == 0:
        code = 141
    return code & 0xFF


def _run(rp, args):
    logfile = replayfile = fsck_command = None
    stop_flags = 0
    start_entry = 0
    start_sector = 0
    end_sector = _U64
    run_limit = 0
    check_number = 0
    end_mark = start_mark = None
    find_mode = False
    print_num_entries = False
    discard = True
    check_mode = 0
    no_progress = False

    # getopt_long(argc, argv, "v", long_options, &option_index), one option at a time:
    # a bad number stops the run before a later bad option is seen, as in C
    options = _getopt.iter_getopt_long(os.fsdecode(rp.prog), args, _SHORTOPTS, _LONGOPTS,
                                       posixly_correct="POSIXLY_CORRECT" in os.environ)
    while True:
        try:
            key, value = next(options)
        except StopIteration:
            break
        except _getopt.GetoptError as e:
            rp.err(os.fsencode(str(e)) + b"\n")
            rp.usage()
        if value is not None:
            value = os.fsencode(value)
        if key == "v":
            rp.verbose += 1
        elif key == "next-flush":
            stop_flags |= _FLUSH
        elif key == "next-fua":
            stop_flags |= _FUA
        elif key == "start-entry":
            start_entry = _parse_number(rp, value, b"entry")
        elif key == "start-mark":
            start_mark = value[:_MARK_MAX].split(b"\0")[0]
        elif key == "end-mark":
            end_mark = value[:_MARK_MAX].split(b"\0")[0]
            stop_flags |= _MARK
        elif key == "log":
            logfile = value
        elif key == "replay":
            replayfile = value
        elif key == "limit":
            run_limit = _parse_number(rp, value, b"entry")
        elif key == "find":
            find_mode = True
        elif key == "num-entries":
            print_num_entries = True
        elif key == "no-discard":
            discard = False
        elif key == "fsck":
            fsck_command = value
        elif key == "check":
            if value == b"flush":
                check_mode = _CHECK_FLUSH
            elif value == b"fua":
                check_mode = _CHECK_FUA
            elif value == b"discard":
                check_mode = _CHECK_DISCARD
            else:
                check_mode = _CHECK_NUMBER
                check_number, rest = _strtoull(rp, value)
                if not check_number or rest:
                    rp.err(b"Invalid entry number\n")
                    raise _Exit(1)
        elif key == "start-sector":
            start_sector = _parse_number(rp, value, b"sector")
        elif key == "end-sector":
            end_sector = _parse_number(rp, value, b"sector")
        elif key == "json":
            rp.json = True
        elif key == "no-progress":
            no_progress = True

    if logfile is None:
        rp.usage()

    _log_open(rp, logfile, replayfile)
    rp.ignore_discard = not discard
    rp.start_sector = start_sector
    rp.end_sector = end_sector

    if start_mark is not None:
        _seek_to_mark(rp, start_mark)
    else:
        _seek_entry(rp, start_entry)

    if (fsck_command is not None) != bool(check_mode):
        rp.usage()

    if find_mode:
        return _find(rp, run_limit, stop_flags, end_mark)

    if print_num_entries:
        rp.printf(b"%d\n" % rp.nr_entries)
        return 0

    if replayfile is None:
        if rp.json:
            return _list_json(rp, run_limit, stop_flags, end_mark)
        rp.printf(b"Log version=%d, sectorsize=%d, entries=%d\n" % (
            _lw.VERSION, rp.sectorsize, rp.nr_entries))
        return 0

    if not no_progress:
        rp.progress = _maybe_progress(rp, run_limit)
    ret = _replay(rp, run_limit, stop_flags, end_mark, fsck_command, check_mode, check_number)
    if rp.progress is not None:
        rp.progress.close()
    try:
        os.fsync(rp.replayfd)
    except OSError as e:
        rp.errno = e.errno
    return 1 if ret < 0 else 0


def _maybe_progress(rp, run_limit):
    """A progress bar of the entries to replay (dmctl.progress: tqdm, imported only
    here) when stderr is a terminal and ``-v`` does not print to the same terminal;
    else None, and nothing is written that the C tool would not write."""
    stream = rp.err_stream
    try:
        if not os.isatty(stream.fileno()):
            return None
        if rp.verbose and not rp.json and os.isatty(rp.out_stream.fileno()):
            return None
    except (AttributeError, OSError, ValueError):
        return None
    total = rp.nr_entries - rp.cur_entry
    if run_limit:
        total = min(total, run_limit)
    if total < 2:
        return None
    from dmctl import progress as _progress
    return _progress.bar(total, "entry", "replay-log", stream=stream)


def _log_open(rp, logfile, replayfile):
    cloexec = getattr(os, "O_CLOEXEC", 0)
    try:
        rp.logfd = os.open(logfile, os.O_RDONLY | cloexec)
    except OSError as e:
        rp.err(b"Couldn't open log %s: %d\n" % (logfile, e.errno))
        raise _Exit(1)
    if replayfile is not None:
        try:
            rp.replayfd = os.open(replayfile, os.O_WRONLY | cloexec)
        except OSError as e:
            rp.err(b"Couldn't open replay file %s: %d\n" % (replayfile, e.errno))
            raise _Exit(1)
        try:
            st = os.fstat(rp.replayfd)
            import stat
            if stat.S_ISBLK(st.st_mode):
                rp.replay_limit = os.lseek(rp.replayfd, 0, os.SEEK_END)
                os.lseek(rp.replayfd, 0, os.SEEK_SET)
        except OSError:
            pass
    try:
        raw = os.read(rp.logfd, _lw.SUPER.size)
    except OSError as e:
        # C compares the -1 from read() as unsigned, passes, and finds garbage.
        rp.errno = e.errno
        rp.err(b"Magic doesn't match\n")
        raise _Exit(1)
    if len(raw) < _lw.SUPER.size:
        rp.err(b"Error reading super: %d\n" % rp.errno)
        raise _Exit(1)
    sup = _lw.unpack_super(raw)
    if sup.magic != _lw.MAGIC:
        rp.err(b"Magic doesn't match\n")
        raise _Exit(1)
    if sup.version != _lw.VERSION:
        rp.err(b"Version mismatch, wanted %d, have %d\n" % (_lw.VERSION, _n.c_int(sup.version)))
        raise _Exit(1)
    rp.sectorsize = sup.sectorsize
    rp.nr_entries = sup.nr_entries
    try:
        rp.cur_pos = os.lseek(rp.logfd, _off_t(rp.sectorsize - _lw.SUPER.size), os.SEEK_CUR)
    except OSError as e:
        rp.errno = e.errno
        rp.err(b"Error seeking to first entry: %d\n" % e.errno)
        raise _Exit(1)
    rp.cur_entry = 0
    if rp.sectorsize < _ENTRY.size + 1 and rp.nr_entries:
        rp.err(b"Invalid sectorsize %d\n" % rp.sectorsize)
        raise _Exit(1)
    rp.window = _Window(rp.logfd, rp.flush_writes)
    try:
        rp.log_size = os.lseek(rp.logfd, 0, os.SEEK_END)
    except OSError:
        rp.log_size = 0


def _lseek_cur(rp, delta, what):
    """lseek(fd, delta, SEEK_CUR) from our own position, failing where the kernel would."""
    _set_pos(rp, rp.cur_pos + _off_t(delta), b"Error seeking in %s" % what, -1)


def _set_pos(rp, new, message, code):
    """Move the log position to ``new`` as a successful lseek() would, or fail like it.

    Inside the log no syscall is needed.  Past its end the kernel decides (a regular
    file refuses offsets over its filesystem's maximum file size, a block device any
    offset past its end), so ask it; below 0 or past 2**63 - 1 it is EINVAL.
    """
    if new > rp.log_size:
        err = 0
        if new < 0 or new >> 63:
            err = 22
        else:
            try:
                os.lseek(rp.logfd, new, os.SEEK_SET)
            except OSError as e:
                err = e.errno
        if err:
            rp.errno = err
            rp.err(b"%s: %d\n" % (message, err))
            raise _Exit(code)
    elif new < 0:
        rp.errno = 22
        rp.err(b"%s: 22\n" % message)
        raise _Exit(code)
    rp.cur_pos = new


def _valid(hdr, flags, nr_sectors):
    if not flags and not nr_sectors:
        return False
    if flags != _MARK and hdr[32] != 0:
        return False
    return True


def _seek_entry(rp, entry_num):
    """log_seek_entry(): reads 40-byte headers from the first entry; -vv prints them."""
    if entry_num >= rp.nr_entries:
        rp.err(b"Invalid entry number\n")
        raise _Exit(1)
    s = rp.sectorsize
    rp.cur_pos = s
    rp.cur_entry = 0
    vv = rp.verbose > 1 and not rp.json
    try:
        for i in range(entry_num):
            hdr = _lw.pread_full(rp.logfd, _C_ENTRY, rp.cur_pos)
            if len(hdr) != _C_ENTRY:
                rp.err(b"Error reading entry: %d\n" % rp.errno)
                raise _Exit(1)
            sector, nr_sectors, flags, _ = _ENTRY.unpack_from(hdr)
            if not _valid(hdr, flags, nr_sectors):
                rp.err(b"Malformed entry @%d\n" % (rp.cur_pos // s))
                raise _Exit(1)
            if vv:
                rp.printf(b"seek entry %d@%d: %d, size %d, flags 0x%x\n" % (
                    _n.c_int(i), rp.cur_pos // s, sector, nr_sectors, flags))
            seek = (s - _C_ENTRY) & _U64
            if not flags & _DISCARD:
                seek = (seek + nr_sectors * s) & _U64
            _set_pos(rp, rp.cur_pos + _C_ENTRY + _off_t(seek), b"Error seeking in file", 1)
            rp.cur_entry += 1
    except _Exit as e:
        raise _Exit(1) from e


def _seek_next(rp):
    """log_seek_next_entry(read_data=1): returns (header, header_pos) or None at the end.

    Raises _Exit(-1) on errors (after printing them), like C's ``return -1``.
    """
    if rp.cur_entry >= rp.nr_entries:
        return None
    s = rp.sectorsize
    hdr = _lw.pread_full(rp.logfd, s, rp.cur_pos)
    if len(hdr) != s:
        rp.err(b"Error reading entry: %d\n" % rp.errno)
        raise _Exit(-1)
    sector, nr_sectors, flags, data_len = _ENTRY.unpack_from(hdr)
    if not _valid(hdr, flags, nr_sectors):
        rp.err(b"Malformed entry @%d\n" % (rp.cur_pos // s))
        raise _Exit(-1)
    hpos = rp.cur_pos
    rp.cur_entry += 1
    rp.cur_pos += s
    if rp.verbose > 1 and not rp.json:
        rp.printf(b"seek entry %d@%d: %d, size %d, flags 0x%x(%s)\n" % (
            _n.c_int(rp.cur_entry - 1), rp.cur_pos // s, sector, nr_sectors, flags,
            _lw.flags_to_str(flags).encode()))
    size = (nr_sectors * s) & _U64
    if size and not flags & _DISCARD:
        _lseek_cur(rp, size, b"log")
    return hdr, hpos


def _should_stop(hdr, flags, stop_flags, mark):
    if flags & stop_flags:
        if not stop_flags & _MARK:
            return True
        if flags & _MARK:
            data_len = int.from_bytes(hdr[24:32], "little")
            return _lw.mark_matches(mark, hdr, data_len)
    return False


def _seek_to_mark(rp, mark):
    while True:
        try:
            got = _seek_next(rp)
        except _Exit:
            raise _Exit(1)
        if got is None:
            rp.err(b"Couldn't find starting mark\n")
            raise _Exit(1)
        hdr = got[0]
        flags = int.from_bytes(hdr[16:24], "little")
        if _should_stop(hdr, flags, _MARK, mark):
            return


def _entry_dict(rp, hdr, hpos, index, extra=None):
    sector, nr_sectors, flags, data_len = _ENTRY.unpack_from(hdr)
    mark = _lw.mark_text(hdr, data_len) if flags & _MARK else None
    e = _lw.LogEntry(index, hpos // rp.sectorsize, sector, nr_sectors, flags, data_len,
                     mark, rp.sectorsize)
    d = e.as_dict()
    if extra:
        d.update(extra)
    return d


def _print_json(rp, obj):
    import json
    rp.printf(json.dumps(obj, sort_keys=False).encode() + b"\n")


def _find(rp, run_limit, stop_flags, end_mark):
    num_entries = 0
    while True:
        got = _seek_next(rp)              # _Exit(-1) -> exit status 255
        if got is None:
            break
        hdr, hpos = got
        num_entries += 1
        flags = int.from_bytes(hdr[16:24], "little")
        if (run_limit and num_entries == run_limit) or _should_stop(hdr, flags, stop_flags, end_mark):
            if rp.json:
                _print_json(rp, _entry_dict(rp, hdr, hpos, rp.cur_entry - 1))
            else:
                rp.printf(b"%d@%d\n" % ((rp.cur_entry - 1) & _U64, rp.cur_pos // rp.sectorsize))
            return 0
    rp.err(b"Couldn't find entry\n")
    return 1


def _list_json(rp, run_limit, stop_flags, end_mark):
    num_entries = 0
    try:
        while True:
            got = _seek_next(rp)
            if got is None:
                return 0
            hdr, hpos = got
            num_entries += 1
            _print_json(rp, _entry_dict(rp, hdr, hpos, rp.cur_entry - 1))
            flags = int.from_bytes(hdr[16:24], "little")
            if (run_limit and num_entries == run_limit) or _should_stop(hdr, flags, stop_flags, end_mark):
                return 0
    except _Exit:
        raise _Exit(1)


def _run_fsck(rp, command):
    rp.flush_writes()
    try:
        os.fsync(rp.replayfd)
    except OSError as e:
        rp.errno = e.errno
        return -1
    if rp.progress is not None:
        rp.progress.clear()
    import subprocess
    try:
        rc = subprocess.call([b"/bin/sh", b"-c", command])
    except OSError as e:
        rp.errno = e.errno
        return -1
    if rc < 0:                            # killed by a signal: WEXITSTATUS() is 0
        rc = 0
    return -1 if rc else 0


def _replay(rp, run_limit, stop_flags, end_mark, fsck_command, check_mode, check_number):
    """The replay loop of main() with log_replay_next_entry() inlined for speed.

    ``pos``/``entry`` mirror ``log->cur_pos``/``log->cur_entry``; they are stored back
    into ``rp`` before anything that reads them there.
    """
    s = rp.sectorsize
    nr_total = rp.nr_entries
    window = rp.window
    read = window.read
    wbase, wend, wview = window.base, window.end, window.view
    unpack = _ENTRY.unpack_from
    verbose = 0 if rp.json else rp.verbose
    json_mode = rp.json
    track = verbose or json_mode          # stdout positions matter only if it is written
    printf = rp.printf
    tell = rp.stdout.tell
    queue_write = rp.queue_write
    start_sector = rp.start_sector
    end_sector = rp.end_sector
    log_size = rp.log_size
    progress = rp.progress
    flags_str = _lw.flags_to_str
    num_entries = 0
    ret = 0
    pos = rp.cur_pos
    entry = rp.cur_entry
    try:
        while entry < nr_total:
            # ---- log_replay_next_entry(log, entry, 1)
            if wbase <= pos and pos + s <= wend:
                hdr = wview[pos - wbase:pos - wbase + s]
            else:
                hdr = read(pos, s)
                wbase, wend, wview = window.base, window.end, window.view
            if len(hdr) != s:
                rp.err(b"Error reading entry: %d\n" % rp.errno)
                ret = -1
                break
            sector, nr_sectors, flags, data_len = unpack(hdr)
            if (not flags and not nr_sectors) or (flags != _MARK and hdr[32]):
                rp.err(b"Malformed entry @%d\n" % (pos // s))
                ret = -1
                break
            if flags & _MARK or json_mode:
                hdr = bytes(hdr)          # reading the data may refill the window
            hpos = pos
            entry += 1
            pos += s
            size = (nr_sectors * s) & _U64
            skip = bool(nr_sectors) and (
                (sector + nr_sectors) & _U64 <= start_sector or sector > end_sector)
            if verbose > 1 or (verbose and not skip):
                printf(b"%s %d@%d: sector %d, size %d, flags 0x%x(%s)\n" % (
                    b"skipping" if skip else b"replaying", _n.c_int(entry - 1),
                    pos // s, sector, size, flags, flags_str(flags).encode()))
            elif json_mode:
                _print_json(rp, _entry_dict(rp, hdr, hpos, entry - 1, {"skipped": skip}))
            if size:
                if flags & _DISCARD:
                    rp.discard(sector, nr_sectors)
                elif skip:
                    new = pos + _off_t(size)
                    if new > log_size or new < 0:
                        rp.cur_pos = pos
                        _lseek_cur(rp, size, b"log")
                    pos = new
                else:
                    if size > _MAX_RW:
                        # C mallocs the whole entry, then one read() returns at most
                        # _MAX_RW bytes: either error, never a replay.
                        if size > _alloc_limit():
                            rp.err(b"Error allocating buffer %d entry %d\n" % (
                                size, (entry - 1) & _U64))
                            ret = -1
                            break
                        data = b""
                    elif wbase <= pos and pos + size <= wend:
                        data = wview[pos - wbase:pos - wbase + size]
                    else:
                        data = read(pos, size)
                        wbase, wend, wview = window.base, window.end, window.view
                    if len(data) != size:
                        rp.err(b"Error reading data: %d\n" % rp.errno)
                        ret = -1
                        break
                    pos += size
                    off = (sector * s) & _U64
                    if off == rp.pend_end and off + size <= rp.pend_cap and (
                            len(rp.pending) < _IOV_MAX):
                        rp.pending.append((data, tell() if track else 0))
                        rp.pend_end = off + size
                    else:
                        queue_write(data, off, tell() if track else 0)
            # ---- main()'s loop body
            num_entries += 1
            if fsck_command is not None:
                if check_mode == _CHECK_NUMBER:
                    run = not num_entries % check_number
                elif check_mode == _CHECK_FUA:
                    run = flags & _FUA
                elif check_mode == _CHECK_FLUSH:
                    run = flags & _FLUSH
                else:
                    run = flags & _DISCARD
                if run and _run_fsck(rp, fsck_command):
                    rp.err(b"Fsck errored out on entry %d\n" % ((entry - 1) & _U64))
                    ret = -1
                    break
            if (run_limit and num_entries == run_limit) or (
                    flags & stop_flags and _should_stop(hdr, flags, stop_flags, end_mark)):
                break
            if progress is not None and not num_entries & 1023:
                progress.update(num_entries - progress.n)
        rp.flush_writes()
    except _Exit as e:
        if e.code != -1:
            raise
        ret = -1
    rp.cur_pos = pos
    rp.cur_entry = entry
    return ret


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
