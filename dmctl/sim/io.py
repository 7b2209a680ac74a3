"""The simulator's I/O API: submit bios to simulated devices, crash, settle, inject faults.

Every function takes a SimMapper and runs in one transaction of the simulated
kernel, so a whole script or copy is one consistent step.  Library users:

    from dmctl.backend.sim import SimMapper
    from dmctl.sim import io
    m = SimMapper()
    io.write(m, "lin1", 0, b"x" * 4096, fua=True)
    data = io.read(m, "lin1", 0, 8)
    io.flush(m, "lin1")
"""

import errno
import os

from dmctl.constants import DM_MAJOR
from dmctl.errors import DmError, IOFailure
from dmctl.records import DevId
from dmctl.sim import bio as B


class IOError_(IOFailure):
    """An I/O completed with an error (errno), as a program would see it."""

    def __init__(self, err, what):
        self.errno = err
        self.what = what
        super().__init__("%s: %s" % (what, os.strerror(err)))


def resolve(env, device):
    """The simulated block device that ``device`` names: a DevId (by name or by
    major:minor, a backing file's 7:N included), a (major, minor) tuple, or a string
    (``DevId.from_devno_or_node``'s forms, else a name).  The CLI turns users'
    arguments into a DevId with ``dmctl.libdm.devices.device_arg``."""
    if isinstance(device, str):
        device = DevId.from_devno_or_node(device, DM_MAJOR) or DevId(name=device)
    dev = DevId.coerce(device)
    md = None
    if dev.name:
        md = env.device_by_name(dev.name)
    elif dev.major is not None:
        try:
            return env.device_by_devno((dev.major, dev.minor))
        except OSError:
            md = None
    if md is None:
        raise DmError(errno.ENXIO, op="io", name=dev.label(),
                      detail="Device %s not found" % dev.label())
    return md


class Session:
    """Bios submitted within one transaction; ``submit``/``complete`` by id."""

    def __init__(self, env, dev):
        self.env = env
        self.dev = dev
        self.pending = {}

    def submit(self, op, sector, nr, data=None, flags=0, ident=None, hold=False):
        nbytes = nr << 9
        if op == B.READ:
            if data is None or len(data) < nbytes:
                data = bytearray(nbytes)
        elif op == B.WRITE and nr:
            if data is None:
                data = bytes(nbytes)
            if len(data) != nbytes:
                raise ValueError("write of %d sectors needs %d bytes, got %d" % (nr, nbytes, len(data)))
        bio = B.RootBio(op, sector, nr, data, flags)
        bio.end_io = None
        bio.hold = hold
        bio.ident = ident
        if ident is not None:
            if ident in self.pending:
                raise ValueError("bio id %s is already in flight" % ident)
            self.pending[ident] = bio
        if self.dev.is_dm:
            self.dev.submit(bio)
        else:
            self.dev.submit(bio)
        if not hold:
            self._release(bio)
        return bio

    def _release(self, bio):
        held = bio.held
        bio.held = []
        bio.hold = False
        for dev, leaf, err in held:
            dev.release(leaf, err)

    def complete(self, ident):
        bio = self.pending.pop(ident, None)
        if bio is None:
            raise ValueError("no bio with id %s is in flight" % ident)
        self._release(bio)
        return bio

    def finish(self):
        """Complete whatever the script left in flight (in submission order)."""
        left = list(self.pending)
        for ident in left:
            self.complete(ident)
        return left


def _check(bio, what):
    if not bio.done:
        raise IOError_(errno.EAGAIN, what + " did not complete")
    if bio.error:
        raise IOError_(bio.error, what)


def _flags(fua=False, preflush=False, meta=False):
    return (B.FUA if fua else 0) | (B.PREFLUSH if preflush else 0) | (B.META if meta else 0)


def write(mapper, device, sector, data, fua=False, preflush=False, meta=False):
    if len(data) % 512:
        raise ValueError("write length must be a multiple of 512 bytes")

    def fn(env):
        s = Session(env, resolve(env, device))
        b = s.submit(B.WRITE, sector, len(data) >> 9, data, _flags(fua, preflush, meta))
        _check(b, "write")
    mapper.run(fn)


def read(mapper, device, sector, nr):
    def fn(env):
        s = Session(env, resolve(env, device))
        b = s.submit(B.READ, sector, nr)
        _check(b, "read")
        return bytes(b.data)
    return mapper.run(fn)


def discard(mapper, device, sector, nr):
    def fn(env):
        s = Session(env, resolve(env, device))
        _check(s.submit(B.DISCARD, sector, nr), "discard")
    mapper.run(fn)


def flush(mapper, device):
    def fn(env):
        s = Session(env, resolve(env, device))
        _check(s.submit(B.WRITE, 0, 0, None, B.PREFLUSH), "flush")
    mapper.run(fn)


def device_size(mapper, device):
    def fn(env):
        return resolve(env, device).size
    return mapper.run(fn)


# -- scripts ------------------------------------------------------------------------------

class ScriptError(IOFailure):
    def __init__(self, lineno, msg):
        self.lineno = lineno
        super().__init__("line %d: %s" % (lineno, msg))


def _parse_event(words, lineno):
    """``write SECTOR COUNT [fua] [preflush] [meta] [pattern=BYTE|from=FILE[@OFF]]`` etc."""
    if not words:
        raise ScriptError(lineno, "empty event")
    op = words[0]
    if op == "flush":
        if len(words) != 1:
            raise ScriptError(lineno, "flush takes no arguments")
        return (B.WRITE, 0, 0, B.PREFLUSH, None)
    if op not in ("write", "read", "discard"):
        raise ScriptError(lineno, "unknown event '%s'" % op)
    if len(words) < 3 or not words[1].isdigit() or not words[2].isdigit():
        raise ScriptError(lineno, "%s needs SECTOR COUNT" % op)
    sector, count = int(words[1]), int(words[2])
    flags = 0
    source = None
    for w in words[3:]:
        if op == "write" and w == "fua":
            flags |= B.FUA
        elif op == "write" and w == "preflush":
            flags |= B.PREFLUSH
        elif op == "write" and w == "meta":
            flags |= B.META
        elif op == "write" and w.startswith("pattern="):
            v = w[8:]
            try:
                byte = int(v, 0)
            except ValueError:
                if len(v) == 1:
                    byte = ord(v)
                else:
                    raise ScriptError(lineno, "bad pattern '%s'" % v)
            if not 0 <= byte <= 255:
                raise ScriptError(lineno, "pattern must be a byte")
            source = ("pattern", byte)
        elif op == "write" and w.startswith("from="):
            path, _, off = w[5:].partition("@")
            source = ("file", path, int(off) if off else 0)
        else:
            raise ScriptError(lineno, "unexpected '%s'" % w)
    opcode = {"write": B.WRITE, "read": B.READ, "discard": B.DISCARD}[op]
    return (opcode, sector, count, flags, source)


def _payload(source, count):
    n = count << 9
    if source is None:
        return bytes(n)
    if source[0] == "pattern":
        return bytes([source[1]]) * n
    with open(source[1], "rb") as f:
        f.seek(source[2])
        d = f.read(n)
    if len(d) < n:
        d += bytes(n - len(d))
    return d


def run_script(mapper, device, lines, out=None):
    """Run an I/O script (see ``dmctl io script``).  Read data goes to ``out``
    (a binary file) if given.  Returns a list of (lineno, event, errno) for failed
    bios; raises ScriptError on syntax errors (before anything is submitted)."""
    events = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "submit":
            if len(words) < 3:
                raise ScriptError(lineno, "submit needs ID and an event")
            events.append((lineno, "submit", words[1], _parse_event(words[2:], lineno)))
        elif words[0] == "complete":
            if len(words) != 2:
                raise ScriptError(lineno, "complete needs ID")
            events.append((lineno, "complete", words[1], None))
        else:
            events.append((lineno, "now", None, _parse_event(words, lineno)))

    def fn(env):
        s = Session(env, resolve(env, device))
        failures = []
        bios = {}
        for lineno, kind, ident, ev in events:
            if kind == "complete":
                try:
                    b = s.complete(ident)
                except ValueError as e:
                    raise ScriptError(lineno, str(e))
                if b.error:
                    failures.append((lineno, "complete %s" % ident, b.error))
                continue
            op, sector, count, flags, source = ev
            data = _payload(source, count) if op == B.WRITE and count else None
            try:
                b = s.submit(op, sector, count, data, flags, ident=ident, hold=(kind == "submit"))
            except ValueError as e:
                raise ScriptError(lineno, str(e))
            if kind == "now":
                if b.error:
                    failures.append((lineno, B.OP_NAMES.get(op, "?"), b.error))
                elif op == B.READ and out is not None:
                    out.write(bytes(b.data))
        for ident in s.finish():
            failures.append((0, "unfinished %s" % ident, 0))
        return failures
    return mapper.run(fn)


def copy(mapper, device, src, bs=1 << 20, fsync_every=0, progress=None, start_sector=0):
    """Stream a file onto a device.  ``fsync_every`` N: a flush after every N
    blocks (and one at the end when N > 0).  Returns bytes copied."""
    if bs % 512:
        raise ValueError("block size must be a multiple of 512")

    def fn(env):
        dev = resolve(env, device)
        s = Session(env, dev)
        total = os.path.getsize(src)
        done = 0
        n = 0
        sector = start_sector
        with open(src, "rb", buffering=0) as f:
            while True:
                chunk = f.read(bs)
                if not chunk:
                    break
                if len(chunk) % 512:
                    chunk += bytes(512 - len(chunk) % 512)
                b = s.submit(B.WRITE, sector, len(chunk) >> 9, chunk)
                _check(b, "write at sector %d" % sector)
                sector += len(chunk) >> 9
                done += len(chunk)
                n += 1
                if fsync_every and n % fsync_every == 0:
                    _check(s.submit(B.WRITE, 0, 0, None, B.PREFLUSH), "flush")
                if progress:
                    progress(min(done, total), total)
        if fsync_every:
            _check(s.submit(B.WRITE, 0, 0, None, B.PREFLUSH), "flush")
        return done
    return mapper.run(fn)


# -- simulator control ----------------------------------------------------------------------

def crash(mapper, seed=None):
    """Power cut: every device and all in-core target state vanish; every backing file
    keeps its durable contents (with ``seed``: a reproducible random subset of the
    non-durable blocks survives).  Returns {path: (reverted, survived)}."""
    import random
    rng = random.Random(seed) if seed is not None else None
    return mapper.run(lambda env: env.power_cut(rng))


def settle(mapper, progress=None, chunk=64):
    """Run all pending background work to completion; returns the steps done.

    ``progress(steps, regions_left)``, when given, is called before the work, then after
    every ``chunk`` steps and at the end: the steps done so far and the regions the
    mirrors with background work still have to resync (SimEnv.regions_to_resync).
    The work is the same either way, in one transaction."""
    if progress is None:
        return mapper.run(lambda env: env.run_work(None))

    def fn(env):
        total = 0
        progress(0, env.regions_to_resync())
        while True:
            n = env.run_work(chunk)
            total += n
            progress(total, env.regions_to_resync())
            if n < chunk:           # run_work stopped idle, not at the budget
                return total
    return mapper.run(fn)


def fail(mapper, path, kinds=("read", "write", "flush"), sectors=None):
    def fn(env):
        bf = env.backing_file(path)
        lo, hi = sectors if sectors else (None, None)
        for k in kinds:
            bf.faults.rules.append((k, lo, hi))
        env.note_cache(bf)
    mapper.run(fn)


def heal(mapper, path):
    def fn(env):
        bf = env.backing_file(path)
        bf.faults.rules = []
        env.note_cache(bf)
    mapper.run(fn)


def backing_status(mapper):
    """[(minor, path, dirty_blocks, faults)] of every registered backing file."""
    def fn(env):
        out = []
        for bf in sorted(env.all_backing(), key=lambda b: b.minor):
            out.append((bf.minor, bf.path, len(bf.cache), list(bf.faults.rules)))
        return out
    return mapper.run(fn)
