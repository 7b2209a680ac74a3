"""dmctl.getopt: the one GNU getopt_long work-alike (dmsetup's surface and replay-log)."""

import pytest

from dmctl.getopt import (NO_ARG, OPTIONAL, REQUIRED, GetoptError, getopt_long,
                          iter_getopt_long, parse_short_spec)

SHORT = parse_short_spec("vo:x::")
LONG = [("verbose", NO_ARG, "verbose"), ("version", NO_ARG, "version"),
        ("options", REQUIRED, "options"), ("opt-in", OPTIONAL, "opt-in")]


def test_short_spec():
    assert SHORT == {"v": NO_ARG, "o": REQUIRED, "x": OPTIONAL}


def test_permutation_prefixes_and_values():
    opts, args = getopt_long("p", ["a", "-vvofoo", "--verb", "b", "--opti=x", "--options",
                                   "y", "-o", "z", "-x", "-xq", "--", "-v"], SHORT, LONG)
    assert opts == [("v", None), ("v", None), ("o", "foo"), ("verbose", None),
                    ("options", "x"), ("options", "y"), ("o", "z"), ("x", None), ("x", "q")]
    assert args == ["a", "b", "-v"]


@pytest.mark.parametrize("argv,message", [
    (["--foo=bar"], "p: unrecognized option '--foo=bar'"),
    (["--ver=1"], "p: option '--ver=1' is ambiguous; possibilities: '--verbose' '--version'"),
    (["--verbose=1"], "p: option '--verbose' doesn't allow an argument"),
    (["--options"], "p: option '--options' requires an argument"),
    (["-q"], "p: invalid option -- 'q'"),
    (["-vo"], "p: option requires an argument -- 'o'"),
])
def test_glibc_messages(argv, message):
    with pytest.raises(GetoptError) as e:
        getopt_long("p", argv, SHORT, LONG)
    assert str(e.value) == message


def test_same_flag_and_val_is_not_ambiguous():
    # glibc: prefix matches with equal has_arg, flag and val are one option; the first
    # in the table is reported
    long_only = [("next-flush", NO_ARG, "next-flush", 0), ("next-fua", NO_ARG, "next-fua", 0),
                 ("num", REQUIRED, "num", 0)]
    assert getopt_long("p", ["--next"], {}, long_only)[0] == [("next-flush", None)]
    with pytest.raises(GetoptError, match="possibilities: '--next-flush' '--num'$"):
        getopt_long("p", ["--n"], {}, long_only)


def test_lazy_iteration_stops_where_the_caller_does():
    seen = []
    it = iter_getopt_long("p", ["-v", "--bogus"], SHORT, LONG)
    seen.append(next(it))
    assert seen == [("v", None)]
    with pytest.raises(GetoptError):
        next(it)


def test_posixly_correct_stops_at_the_first_non_option():
    assert getopt_long("p", ["-v", "a", "-v"], SHORT, LONG, posixly_correct=True) == (
        [("v", None)], ["a", "-v"])
    assert getopt_long("p", ["-v", "a", "-v"], SHORT, LONG) == (
        [("v", None), ("v", None)], ["a"])
