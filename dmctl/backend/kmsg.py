"""The kernel's own reason for a failed DM ioctl, read back from ``/dev/kmsg``.

The ioctl returns only an errno; dm logs the real reason (``device-mapper: table:
254:3: era: Invalid block size (-EINVAL)``) with printk before returning.  ``KmsgReader``
remembers the end of the log before a mutating ioctl (``mark``: one lseek), and after a
failure reads only the records written since (``since_mark``).  Everything is best
effort: an unreadable /dev/kmsg (no CAP_SYSLOG with dmesg_restrict, containers, no such
file) silently gives nothing.

/dev/kmsg records: ``<prio>,<seq>,<usec>,<flags>[,...];<text>\\n`` followed by
continuation lines starting with a space (``SUBSYSTEM=...``); one record per read().
"""

import os

PATH = "/dev/kmsg"
PREFIX = "device-mapper:"
_READ_SIZE = 8192
_MAX_RECORDS = 1000


def parse_record(data):
    """One /dev/kmsg record -> (seq, text) or None.  Escaped bytes (\\xNN) are decoded."""
    try:
        s = data.decode("utf-8", "replace")
    except Exception:
        return None
    head, sep, rest = s.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        seq = int(fields[1])
    except (IndexError, ValueError):
        seq = None
    text = rest.split("\n", 1)[0]
    if "\\x" in text:
        text = _unescape(text)
    return seq, text


def _unescape(text):
    out = []
    i = 0
    while i < len(text):
        if text.startswith("\\x", i) and i + 4 <= len(text):
            try:
                out.append(chr(int(text[i + 2:i + 4], 16)))
                i += 4
                continue
            except ValueError:
                pass
        out.append(text[i])
        i += 1
    return "".join(out)


def dm_lines(texts):
    """Keep only device-mapper's lines."""
    return [t for t in texts if t.startswith(PREFIX)]


class KmsgReader:
    def __init__(self, path=PATH):
        self.path = path
        self.fd = None
        self.marked = False
        self.broken = False

    def _open(self):
        if self.fd is None and not self.broken:
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                self.broken = True
        return self.fd

    def mark(self):
        """Remember the current end of the kernel log (cheap: one lseek)."""
        fd = self._open()
        if fd is None:
            return
        try:
            os.lseek(fd, 0, os.SEEK_END)
            self.marked = True
        except OSError:
            self.marked = False

    def records_since_mark(self):
        """Texts of all records logged since ``mark``."""
        if not self.marked or self.fd is None:
            return []
        texts = []
        for _ in range(_MAX_RECORDS):
            try:
                data = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as e:
                import errno
                if e.errno == errno.EPIPE:      # overwritten records: skip ahead
                    continue
                if e.errno == errno.EINTR:
                    continue
                break
            if not data:
                break
            rec = parse_record(data)
            if rec is not None:
                texts.append(rec[1])
        self.marked = False
        return texts

    def since_mark(self):
        """The ``device-mapper: ...`` lines logged since ``mark`` (maybe empty)."""
        try:
            return dm_lines(self.records_since_mark())
        except Exception:
            return []

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
