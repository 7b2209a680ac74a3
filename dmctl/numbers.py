"""C's number parsing, one function per C function, with the C function's exact rules.

dmsetup, libdevmapper and replay-log read numbers with glibc; the kernel's targets with
lib/kstrtox.c and lib/vsprintf.c.  Their rules differ in sign handling, whitespace,
base prefixes and overflow, and users see the difference (``-1`` is a valid sector to
dmsetup, ``+8`` no number at all to a target's sscanf...), so dmctl keeps each rule:

glibc (userspace), for dmsetup's and replay-log's arguments:

* :func:`strtoull` -- ``strtoull``/``strtoul`` (LP64): -> (value, end, erange)
* :func:`strtol` -- ``strtol``: -> (value, end, erange)
* :func:`atoi` -- ``atoi``: -> int (and :func:`c_int`, C's ``(int)`` cast)
* :func:`sscanf_u` -- one ``%u``/``%lu``/``%llu`` conversion of ``sscanf``

The Linux kernel, for the simulated targets' table arguments:

* :func:`simple_strtoull` -- ``simple_strtoull``: -> (value, end)
* :func:`kstrtoull`, :func:`kstrtouint` -- -> (0 or -errno, value)
* :func:`kernel_sscanf_u` -- the ``sscanf(s, "%u%c", &v, &dummy) == 1`` idiom, and
  :func:`kernel_sscanf_us` for several numbers

Strings are Python ``str``; a C byte string may be passed decoded as latin-1 (one
character a byte).  Only the C locale's characters count: whitespace is
``" \\t\\n\\v\\f\\r"`` and digits are ASCII, never other Unicode digits or spaces.
End positions are indexes into the string, as C's end pointers are.

Imports nothing heavy: the CLI's start-up path uses it.
"""

ULLONG_MAX = (1 << 64) - 1          # == ULONG_MAX on LP64
ULONG_MAX = ULLONG_MAX
LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)
UINT_MAX = (1 << 32) - 1

_EINVAL = 22
_ERANGE = 34

#: C ``isspace()`` in the "C" locale (the kernel's ``skip_spaces()`` agrees for ASCII).
CSPACE = " \t\n\v\f\r"
# digit values, base 36 at most; anything else is 99
_VALUE = {c: i for i, c in enumerate("0123456789abcdefghijklmnopqrstuvwxyz")}
_VALUE.update({c.upper(): v for c, v in _VALUE.items()})


def _val(c):
    return _VALUE.get(c, 99)


def skip_space(s, i=0):
    """The index of the first character at or after ``i`` that is not C whitespace."""
    n = len(s)
    while i < n and s[i] in CSPACE:
        i += 1
    return i


def _digits_end(s, i, base):
    n = len(s)
    while i < n and _val(s[i]) < base:
        i += 1
    return i


def _glibc_scan(s, base, pos):
    """glibc ``____strtoul_l_internal``'s scan of ``s[pos:]``: whitespace, one sign, the
    base prefix, digits -> (magnitude, negative, end), or (None, False, pos) when
    nothing converts.  ``"0x"`` without a hex digit converts its ``0`` (end at the x)."""
    i = skip_space(s, pos)
    neg = False
    if s[i:i + 1] in ("+", "-"):
        neg = s[i] == "-"
        i += 1
    if base in (0, 16) and s[i:i + 1] == "0" and s[i + 1:i + 2] in ("x", "X") \
            and _val(s[i + 2:i + 3]) < 16:
        base, i = 16, i + 2
    elif base == 0:
        base = 8 if s[i:i + 1] == "0" else 10
    j = _digits_end(s, i, base)
    if j == i:
        return None, False, pos
    return int(s[i:j], base), neg, j


# ======================================================================================
# glibc
# ======================================================================================

def strtoull(s, base=10, pos=0):
    """glibc ``strtoull(s + pos, &end, base)`` (and ``strtoul``, the same on LP64).

    -> ``(value, end, erange)``.  Leading whitespace and one ``+``/``-`` are accepted;
    base 0 reads ``0x``/``0X`` as hex and a leading ``0`` as octal, base 16 accepts an
    optional ``0x``.  A ``-`` negates modulo 2**64 (``"-1"`` is ULLONG_MAX).  A
    magnitude above ULLONG_MAX gives ULLONG_MAX whatever the sign, with ``erange``
    True (errno ERANGE).  When nothing converts the value is 0 and ``end`` is ``pos``
    (end = nptr); otherwise ``end`` indexes the first character not used.
    """
    mag, neg, end = _glibc_scan(s, base, pos)
    if mag is None:
        return 0, pos, False
    if mag > ULLONG_MAX:
        return ULLONG_MAX, end, True
    return ((-mag) & ULLONG_MAX if neg else mag), end, False


def strtol(s, base=10, pos=0):
    """glibc ``strtol(s + pos, &end, base)`` on LP64: -> ``(value, end, erange)``.

    As :func:`strtoull`, but signed: a result outside [LONG_MIN, LONG_MAX] saturates to
    the nearer bound with ``erange`` True.
    """
    mag, neg, end = _glibc_scan(s, base, pos)
    if mag is None:
        return 0, pos, False
    v = -mag if neg else mag
    if v > LONG_MAX:
        return LONG_MAX, end, True
    if v < LONG_MIN:
        return LONG_MIN, end, True
    return v, end, False


def atoi(s):
    """glibc ``atoi(s)``, i.e. ``(int) strtol(s, NULL, 10)``: whitespace, sign, decimal
    digits, anything after them ignored; 0 when nothing converts.  strtol saturates at
    LONG_MIN/LONG_MAX and the cast keeps the low 32 bits (``"4294967295"`` is -1)."""
    return c_int(strtol(s, 10)[0])


def c_int(v):
    """C's ``(int) v`` on an integer of any width: the low 32 bits, two's complement
    (what ``%d`` prints of a ``u64``)."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def sscanf_u(s, pos=0, bits=32):
    """One ``%u`` conversion of glibc's ``sscanf`` at ``s[pos:]`` (``%lu``/``%llu`` with
    bits=64): -> ``(value, end)``, or ``(None, pos)`` when it fails to match.

    Whitespace is skipped, one sign is accepted, then decimal digits; the value is
    ``strtoul``'s (a ``-`` wraps, overflow saturates to ULONG_MAX without failing)
    truncated to ``bits`` as the assignment to an ``unsigned int`` does.  Whatever
    follows the digits is left for the next directive.
    """
    mag, neg, end = _glibc_scan(s, 10, pos)
    if mag is None:
        return None, pos
    v = ULLONG_MAX if mag > ULLONG_MAX else ((-mag) & ULLONG_MAX if neg else mag)
    return v & ((1 << bits) - 1), end


# ======================================================================================
# The Linux kernel (lib/kstrtox.c, lib/vsprintf.c)
# ======================================================================================

def _kernel_parse(s, base, pos=0):
    """``_parse_integer_fixup_radix`` + ``_parse_integer`` at ``s[pos:]``: no whitespace,
    no sign.  -> (value mod 2**64, number of digits, end, overflow)."""
    i = pos
    if base == 0:
        if s[i:i + 1] == "0":
            base = 16 if s[i + 1:i + 2] in ("x", "X") and _val(s[i + 2:i + 3]) < 16 else 8
        else:
            base = 10
    if base == 16 and s[i:i + 1] == "0" and s[i + 1:i + 2] in ("x", "X"):
        i += 2
    j = _digits_end(s, i, base)
    v = int(s[i:j], base) if j > i else 0
    return v & ULLONG_MAX, j - i, j, v > ULLONG_MAX


def simple_strtoull(s, base=0, pos=0):
    """The kernel's ``simple_strtoull(s + pos, &end, base)``: -> ``(value, end)``.

    No whitespace and no sign; base 0 reads ``0x`` (followed by a hex digit) as hex and
    a leading ``0`` as octal; a ``0x`` is skipped in base 16.  Overflow is not detected:
    the value wraps modulo 2**64.  Without digits the value is 0 and ``end`` is after
    any ``0x`` skipped.
    """
    v, _n, end, _overflow = _kernel_parse(s, base, pos)
    return v, end


def kstrtoull(s, base=0):
    """The kernel's ``kstrtoull(s, base, &res)``: -> ``(0, value)`` or ``(-errno, None)``.

    One optional leading ``+`` (no ``-``, no whitespace), the base rules of
    :func:`simple_strtoull`, at least one digit, then nothing but an optional single
    trailing newline.  Overflow is ``-ERANGE`` (checked first), anything else that is
    wrong ``-EINVAL``.
    """
    pos = 1 if s[:1] == "+" else 0
    v, ndigits, end, overflow = _kernel_parse(s, base, pos)
    if overflow:
        return -_ERANGE, None
    if not ndigits:
        return -_EINVAL, None
    if s[end:end + 1] == "\n":
        end += 1
    if end != len(s):
        return -_EINVAL, None
    return 0, v


def kstrtouint(s, base=0):
    """The kernel's ``kstrtouint(s, base, &res)``: :func:`kstrtoull`, and ``-ERANGE``
    when the value does not fit in 32 bits."""
    err, v = kstrtoull(s, base)
    if err:
        return err, None
    if v > UINT_MAX:
        return -_ERANGE, None
    return 0, v


def kernel_sscanf_u(s, bits=32):
    """The kernel's ``sscanf(s, "%u%c", &v, &dummy) == 1`` (``"%llu%c"`` with bits=64),
    the targets' way to read a number argument: -> value, or None when it is not 1.

    ``vsscanf`` skips whitespace, then needs a decimal digit (unsigned conversions take
    no sign, not even ``+``), reads with ``simple_strntoull`` (overflow wraps modulo
    2**64) and the store truncates to ``bits``; ``%c`` matching anything means trailing
    characters, so the result is not 1.
    """
    v = kernel_sscanf_us(s, 1, bits)
    return None if v is None else v[0]


def kernel_sscanf_us(s, count, bits=64):
    """The kernel's ``sscanf(s, "%lu %lu ... %lu%c", ...) == count`` with ``count``
    conversions (dev_set_geometry's ``"%lu %lu %lu %lu%c"``): -> a list of ``count``
    values, or None.  Each conversion is :func:`kernel_sscanf_u`'s; the spaces between
    them match any whitespace, none included; nothing may follow the last one."""
    out = []
    end = 0
    for _ in range(count):
        i = skip_space(s, end)
        if not "0" <= s[i:i + 1] <= "9":
            return None
        v, _n, end, _overflow = _kernel_parse(s, 10, i)
        out.append(v & ((1 << bits) - 1))
    return out if end == len(s) else None
