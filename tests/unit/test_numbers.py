"""dmctl.numbers: C's number parsing, one function per C function.

The glibc functions are also checked against the host's glibc through ctypes; the
kernel's against the rules of lib/kstrtox.c and lib/vsprintf.c, spelled out case by case.
"""

import ctypes
import errno

import pytest

from dmctl import numbers as N
from dmctl.numbers import (
    LONG_MAX, LONG_MIN, ULLONG_MAX, atoi, c_int, kernel_sscanf_u, kernel_sscanf_us,
    kstrtoull, kstrtouint, simple_strtoull, skip_space, sscanf_u, strtol, strtoull)

EINVAL, ERANGE = errno.EINVAL, errno.ERANGE


# ======================================================================== glibc

# --------------------------------------------------------------------- strtoull

@pytest.mark.parametrize("s,base,value,end,erange", [
    # plain, whitespace, signs
    ("0", 10, 0, 1, False), ("12", 10, 12, 2, False), ("  7", 10, 7, 3, False),
    ("\t\n\v\f\r 9", 10, 9, 7, False), ("+5", 10, 5, 2, False), ("00012", 10, 12, 5, False),
    ("-1", 10, ULLONG_MAX, 2, False), ("-0", 10, 0, 2, False),
    ("-5", 10, (1 << 64) - 5, 2, False),
    # trailing junk stops the scan
    ("100 x", 10, 100, 3, False), ("1.5", 10, 1, 1, False), ("12x", 10, 12, 2, False),
    ("0x10", 10, 0, 1, False),
    # overflow saturates whatever the sign
    ("18446744073709551615", 10, ULLONG_MAX, 20, False),
    ("18446744073709551616", 10, ULLONG_MAX, 20, True),
    ("-99999999999999999999999", 10, ULLONG_MAX, 24, True),
    # nothing converts: 0, end = nptr
    ("", 10, 0, 0, False), ("x", 10, 0, 0, False), ("-", 10, 0, 0, False),
    ("  ", 10, 0, 0, False), ("- 2", 10, 0, 0, False), ("+-2", 10, 0, 0, False),
    # base 0: 0x hex, 0 octal, else decimal
    ("0x1f", 0, 31, 4, False), ("0X1F", 0, 31, 4, False), ("017", 0, 15, 3, False),
    ("08", 0, 0, 1, False), ("0x", 0, 0, 1, False), ("0xg", 0, 0, 1, False),
    (" -0x1", 0, ULLONG_MAX, 5, False), ("42", 0, 42, 2, False), ("0", 0, 0, 1, False),
    ("0x10000000000000000", 0, ULLONG_MAX, 19, True),
    # base 16 takes an optional 0x; base 8
    ("0x1f", 16, 31, 4, False), ("ff", 16, 255, 2, False), ("0xz", 16, 0, 1, False),
    ("778", 8, 63, 2, False),
    # C locale only: no Unicode digits or spaces
    ("\u0663", 10, 0, 0, False), ("\xa05", 10, 0, 0, False), ("1\u0663", 10, 1, 1, False),
])
def test_strtoull(s, base, value, end, erange):
    assert strtoull(s, base) == (value, end, erange)


def test_strtoull_from_a_position():
    assert strtoull("ab 12 x", 10, 2) == (12, 5, False)
    assert strtoull("ab x", 10, 2) == (0, 2, False)      # end = nptr = s + pos


# --------------------------------------------------------------------- strtol

@pytest.mark.parametrize("s,base,value,end,erange", [
    ("12", 10, 12, 2, False), (" -3x", 10, -3, 3, False), ("+4", 10, 4, 2, False),
    ("9223372036854775807", 10, LONG_MAX, 19, False),
    ("9223372036854775808", 10, LONG_MAX, 19, True),
    ("-9223372036854775808", 10, LONG_MIN, 20, False),
    ("-9223372036854775809", 10, LONG_MIN, 20, True),
    ("0755", 8, 0o755, 4, False), ("0x1A", 0, 26, 4, False), ("", 10, 0, 0, False),
    ("junk", 8, 0, 0, False), ("9", 8, 0, 0, False),
])
def test_strtol(s, base, value, end, erange):
    assert strtol(s, base) == (value, end, erange)


# --------------------------------------------------------------------- atoi, c_int

@pytest.mark.parametrize("s,value", [
    ("12", 12), ("-3", -3), ("  +4x", 4), ("junk", 0), ("", 0), ("-", 0),
    ("4294967296", 0), ("2147483648", -2147483648), ("4294967295", -1),
    ("99999999999999999999", -1), ("-99999999999999999999", 0), ("0x10", 0),
    ("010", 10), ("\u0663", 0),
])
def test_atoi(s, value):
    assert atoi(s) == value


@pytest.mark.parametrize("v,value", [
    (0, 0), (1, 1), (0x7FFFFFFF, 0x7FFFFFFF), (0x80000000, -(1 << 31)),
    (0xFFFFFFFF, -1), (1 << 32, 0), (ULLONG_MAX, -1), (-1, -1), (-(1 << 31) - 1, 0x7FFFFFFF),
])
def test_c_int(v, value):
    assert c_int(v) == value


# --------------------------------------------------------------------- sscanf %u, %llu

@pytest.mark.parametrize("s,value,end", [
    ("0", 0, 1), ("100 x", 100, 3), ("  7", 7, 3), ("+5", 5, 2), ("00012", 12, 5),
    ("-1", ULLONG_MAX, 2), ("-0", 0, 2), ("-5", (1 << 64) - 5, 2),
    ("99999999999999999999999", ULLONG_MAX, 23),
    ("-99999999999999999999999", ULLONG_MAX, 24),
    ("0x10", 0, 1), ("1.5", 1, 1), ("\t\f3", 3, 3),
])
def test_sscanf_llu_is_glibcs(s, value, end):
    # values checked against glibc sscanf("%llu") through ctypes (see the oracle below)
    assert sscanf_u(s, 0, 64) == (value, end)


@pytest.mark.parametrize("s", ["", "x", "-", "+", " ", "- 2", "\u0663"])
def test_sscanf_u_needs_a_digit(s):
    assert sscanf_u(s, 0, 64) == (None, 0)
    assert sscanf_u(s) == (None, 0)


@pytest.mark.parametrize("s,value", [
    ("5", 5), ("4294967295", 0xFFFFFFFF), ("4294967296", 0), ("4294967301", 5),
    ("-1", 0xFFFFFFFF), ("-4294967295", 1),
    # strtoul saturates before the truncation, whatever the sign
    ("99999999999999999999999", 0xFFFFFFFF), ("-99999999999999999999999", 0xFFFFFFFF),
    ("12junk", 12),
])
def test_sscanf_u_truncates_to_unsigned_int(s, value):
    assert sscanf_u(s)[0] == value


def test_sscanf_u_from_a_position():
    assert sscanf_u("0 2048 linear", 1, 64) == (2048, 6)


# --------------------------------------------------------------------- callers' idioms

@pytest.mark.parametrize("s,value", [
    ("0", 0), ("12", 12), (" 5", 5), ("+3", 3), ("-1", ULLONG_MAX),
    ("18446744073709551615", ULLONG_MAX),
    ("18446744073709551616", None), ("", None), ("5 ", None), ("x", None), ("1x", None),
])
def test_strtoull_with_errno_and_end_checks(s, value):
    # dmsetup's message sector: errno = 0; strtoull(s, &end, 10); errno, *end or
    # end == s reject (overflow is an error, "-1" wraps)
    v, end, erange = strtoull(s, 10)
    ok = not erange and end and end == len(s)
    assert (v if ok else None) == value


# --------------------------------------------------------------------- glibc oracle

_ORACLE_INPUTS = [
    "", " ", "0", "1", "-1", "+1", "- 1", "+-1", "007", "08", "0x", "0X1", "0xg", "0x1g",
    " \t\n\v\f\r42", "42 ", "42x", "-0", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
    "18446744073709551616", "-18446744073709551616", "99999999999999999999999",
    "4294967295", "4294967296", "-4294967297", "0x7fffffffffffffff", "0xFFFFFFFFFFFFFFFF",
    "0x10000000000000000", "0777", "1e5", "\xa01", "1\xa0", "\xb2",
]


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.strtoull
    except (OSError, AttributeError):
        pytest.skip("no C library to compare with")
    return libc


def _c_strto(libc, fn, restype, s, base):
    f = getattr(libc, fn)
    f.restype = restype
    f.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
    buf = ctypes.create_string_buffer(s.encode("latin-1"))
    end = ctypes.c_char_p()
    ctypes.set_errno(0)
    v = f(buf, ctypes.byref(end), base)
    err = ctypes.get_errno()
    return v, ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buf), err == ERANGE


@pytest.mark.parametrize("base", [0, 8, 10, 16])
def test_strtoull_and_strtol_match_glibc(base):
    libc = _libc()
    for s in _ORACLE_INPUTS:
        assert strtoull(s, base) == _c_strto(libc, "strtoull", ctypes.c_ulonglong, s, base), s
        assert strtol(s, base) == _c_strto(libc, "strtol", ctypes.c_long, s, base), s


def test_atoi_and_sscanf_match_glibc():
    libc = _libc()
    libc.atoi.restype = ctypes.c_int
    libc.atoi.argtypes = [ctypes.c_char_p]
    for s in _ORACLE_INPUTS:
        b = s.encode("latin-1")
        assert atoi(s) == libc.atoi(b), s
        for fmt, ctype, bits in ((b"%u%n", ctypes.c_uint, 32), (b"%llu%n", ctypes.c_ulonglong, 64)):
            v, n = ctype(), ctypes.c_int(-1)
            r = libc.sscanf(b, fmt, ctypes.byref(v), ctypes.byref(n))
            expect = (v.value, n.value) if r == 1 else (None, 0)
            assert sscanf_u(s, 0, bits) == expect, (s, fmt)


# ======================================================================== the kernel

# --------------------------------------------------------------------- simple_strtoull

@pytest.mark.parametrize("s,base,value,end", [
    ("12", 10, 12, 2), ("12x", 10, 12, 2), ("", 10, 0, 0), ("x", 0, 0, 0),
    # no whitespace, no sign
    (" 1", 10, 0, 0), ("+1", 10, 0, 0), ("-1", 10, 0, 0),
    # base 0: 0x + hex digit is hex, a leading 0 octal
    ("0x1f", 0, 31, 4), ("0X1F", 0, 31, 4), ("017", 0, 15, 3), ("0x", 0, 0, 1),
    ("0xg", 0, 0, 1), ("09", 0, 0, 1), ("9", 0, 9, 1),
    # base 16 skips a 0x even without digits after it
    ("0x1f", 16, 31, 4), ("1f", 16, 31, 2), ("0x", 16, 0, 2),
    # overflow wraps modulo 2**64
    ("18446744073709551616", 10, 0, 20), ("18446744073709551621", 10, 5, 20),
])
def test_simple_strtoull(s, base, value, end):
    assert simple_strtoull(s, base) == (value, end)


# --------------------------------------------------------------------- kstrtoull, kstrtouint

@pytest.mark.parametrize("s,base,result", [
    ("0", 10, (0, 0)), ("12", 10, (0, 12)), ("+12", 10, (0, 12)), ("12\n", 10, (0, 12)),
    ("18446744073709551615", 10, (0, ULLONG_MAX)),
    ("0x1f", 0, (0, 31)), ("017", 0, (0, 15)), ("0x1f", 16, (0, 31)), ("1f", 16, (0, 31)),
    # no whitespace, no minus, at most one newline, nothing else after the digits
    (" 12", 10, (-EINVAL, None)), ("12 ", 10, (-EINVAL, None)), ("-1", 10, (-EINVAL, None)),
    ("12\n\n", 10, (-EINVAL, None)), ("12x", 10, (-EINVAL, None)), ("++1", 10, (-EINVAL, None)),
    ("", 10, (-EINVAL, None)), ("+", 10, (-EINVAL, None)), ("\n", 10, (-EINVAL, None)),
    ("0x", 16, (-EINVAL, None)), ("08", 0, (-EINVAL, None)), ("1f", 10, (-EINVAL, None)),
    ("\u0663", 10, (-EINVAL, None)),
    # overflow is ERANGE, and is checked before the trailing characters
    ("18446744073709551616", 10, (-ERANGE, None)), ("99999999999999999999x", 10, (-ERANGE, None)),
])
def test_kstrtoull(s, base, result):
    assert kstrtoull(s, base) == result


@pytest.mark.parametrize("s,result", [
    ("4294967295", (0, 0xFFFFFFFF)), ("4294967296", (-ERANGE, None)), ("+7", (0, 7)),
    ("7\n", (0, 7)), ("", (-EINVAL, None)), ("x", (-EINVAL, None)), ("-0", (-EINVAL, None)),
    ("18446744073709551616", (-ERANGE, None)),
])
def test_kstrtouint(s, result):
    assert kstrtouint(s, 10) == result


def test_kstrto_default_base_is_0():
    assert kstrtoull("0x10") == (0, 16)
    assert kstrtouint("010") == (0, 8)


# --------------------------------------------------------------------- sscanf "%u%c"

@pytest.mark.parametrize("s,bits,value", [
    ("8", 32, 8), ("0", 32, 0), ("0008", 32, 8), (" 8", 32, 8), ("\t8", 32, 8),
    ("4294967295", 32, 0xFFFFFFFF),
    # the store truncates, simple_strntoull wraps
    ("4294967304", 32, 8), ("18446744073709551616", 64, 0),
    ("18446744073709551617", 64, 1), ("18446744073709551615", 64, ULLONG_MAX),
    # no sign for unsigned conversions, no trailing character (the %c)
    ("+8", 32, None), ("-8", 32, None), ("8 ", 32, None), ("8x", 32, None),
    ("0x8", 32, None), ("", 32, None), (" ", 32, None), ("\u0663", 32, None),
    ("8.0", 64, None),
])
def test_kernel_sscanf_u(s, bits, value):
    assert kernel_sscanf_u(s, bits) == value


@pytest.mark.parametrize("s,value", [
    ("1 2 3 4", [1, 2, 3, 4]), ("1  2\t3 4", [1, 2, 3, 4]), (" 1 2 3 4", [1, 2, 3, 4]),
    ("1 2 3", None), ("1 2 3 4 ", None), ("1 2 3 4 5", None), ("1 2 +3 4", None),
    ("1 2 3 x", None), ("18446744073709551617 0 0 0", [1, 0, 0, 0]),
])
def test_kernel_sscanf_us_geometry(s, value):
    # dev_set_geometry: sscanf(geostr, "%lu %lu %lu %lu%c", ...) == 4
    assert kernel_sscanf_us(s, 4) == value


# ======================================================================== helpers

def test_skip_space_is_c_isspace():
    assert skip_space(" \t\n\v\f\rx") == 6
    assert skip_space("x  y", 1) == 3
    assert skip_space("\xa0x") == 0 and skip_space("") == 0
    assert N.CSPACE == " \t\n\v\f\r"


def test_numbers_imports_nothing_heavy():
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(N))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == set()
