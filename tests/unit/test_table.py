"""dmctl.libdm.table: dmsetup 1.02.185's table-line parser, concise format and escaping."""

import pytest

from dmctl.backend.base import TargetLine
from dmctl.libdm.table import (
    TableError, format_concise, format_concise_device, format_table, ioctl_params,
    parse_concise, parse_line, parse_table, quote_concise, to_ioctl)
from dmctl.numbers import ULLONG_MAX

# The C number parsing the table parser uses (glibc's sscanf "%llu", strtoull, atoi) is
# tested in test_numbers.py.


# ------------------------------------------------------------------ table lines

def test_basic_line():
    assert parse_line("0 2048 linear /dev/loop7 0") == TargetLine(0, 2048, "linear",
                                                                  "/dev/loop7 0")


def test_target_without_params_has_empty_params():
    assert parse_line("0 8 zero") == TargetLine(0, 8, "zero", "")
    assert parse_line("  0 8 zero   \r") == TargetLine(0, 8, "zero", "")


@pytest.mark.parametrize("line", ["", "   ", "\t\r", "# comment", "   # 0 8 zero"])
def test_blank_and_comment_lines(line):
    assert parse_line(line) is None


def test_hash_anywhere_in_params_starts_a_comment():
    t = parse_line("0 8 linear /dev/x 0   # the rest")
    assert t.params == "/dev/x 0   "
    assert parse_line("0 8 linear /dev/x#0").params == "/dev/x"
    assert parse_line("0 8 zero #").params == ""


def test_hash_in_the_type_is_part_of_the_type():
    # %s reads the type word before the comment strip, as dmsetup does
    assert parse_line("0 8 zero#c").target_type == "zero#c"


def test_params_keep_inner_whitespace():
    assert parse_line("0 8 t  a \t b").params == "a \t b"


def test_numbers_follow_sscanf():
    assert parse_line("-1 +8 zero") == TargetLine(ULLONG_MAX, 8, "zero", "")
    assert parse_line("00 010 zero") == TargetLine(0, 10, "zero", "")


@pytest.mark.parametrize("line", ["0 1024", "x 1024 linear /dev/loop7 0", "0 x zero",
                                  "0", "0x10 8 zero", "1.5 2 zero", "- 2 zero"])
def test_invalid_format(line):
    with pytest.raises(TableError) as ei:
        parse_line(line, "", 1)
    assert ei.value.lines == ["Invalid format on line 1 of table ."]


def test_invalid_format_names_the_source_and_line():
    with pytest.raises(TableError) as ei:
        parse_table("0 8 zero\n\n# c\nbad\n", "on stdin")
    assert ei.value.lines == ["Invalid format on line 4 of table on stdin."]
    with pytest.raises(TableError) as ei:
        parse_table("0 8 zero\n8 8", "/tmp/t.txt")
    assert ei.value.lines == ["Invalid format on line 2 of table /tmp/t.txt."]


def test_type_name_length_limit():
    assert parse_line("0 8 " + "a" * 15).target_type == "a" * 15
    with pytest.raises(TableError) as ei:
        parse_line("0 8 " + "a" * 16 + " x")
    assert ei.value.lines == ["Target type name %s is too long." % ("a" * 16)]


def test_nul_ends_a_line():
    assert parse_line("0 8 linear /dev/x 0\0garbage") == TargetLine(0, 8, "linear",
                                                                   "/dev/x 0")


def test_multiline_table():
    text = "0 1024 linear /dev/loop7 0\n1024 1024 zero\n2048 1024 error\n"
    assert parse_table(text) == [TargetLine(0, 1024, "linear", "/dev/loop7 0"),
                                 TargetLine(1024, 1024, "zero", ""),
                                 TargetLine(2048, 1024, "error", "")]
    assert parse_table("") == []
    assert parse_table("# only a comment\n\n") == []


def test_crlf_lines():
    assert parse_table("0 8 zero\r\n8 8 error\r\n") == [TargetLine(0, 8, "zero", ""),
                                                        TargetLine(8, 8, "error", "")]


def test_backslashes_are_doubled_for_the_ioctl():
    assert ioctl_params(r"a\b \\c") == r"a\\b \\\\c"
    lines = to_ioctl([TargetLine(0, 8, "t", "x\\y")])
    assert lines == [TargetLine(0, 8, "t", "x\\\\y")]
    # the kernel's dm_split_args undoes it
    from dmctl.sim.targets.base import split_args
    assert split_args(lines[0].params) == ["x\\y"]


def test_format_table_round_trip():
    lines = parse_table("0 8 zero\n8 8 linear /dev/x 0\n")
    assert format_table(lines) == "0 8 zero \n8 8 linear /dev/x 0\n"
    assert parse_table(format_table(lines)) == lines


# ------------------------------------------------------------------ concise

def test_concise_usage_example():
    devs = list(parse_concise("dev1,,,,0 100 linear 253:1 0,100 100 error;"
                              "dev2,,,ro,0 1 error"))
    assert [(d.name, d.uuid, d.minor, d.read_only) for d in devs] == [
        ("dev1", None, None, False), ("dev2", None, None, True)]
    assert devs[0].lines() == [TargetLine(0, 100, "linear", "253:1 0"),
                               TargetLine(100, 100, "error", "")]
    assert devs[1].lines() == [TargetLine(0, 1, "error", "")]


def test_concise_all_fields_and_whitespace_skipping():
    (d,) = parse_concise("dev1, UUID-1, 7, rw, 0 8 zero, 8 8 error")
    assert (d.name, d.uuid, d.minor, d.read_only) == ("dev1", "UUID-1", 7, False)
    # whitespace after a table-line comma is kept (the line parser trims it)
    assert d.table == "0 8 zero\n 8 8 error"
    assert d.lines() == [TargetLine(0, 8, "zero", ""), TargetLine(8, 8, "error", "")]
    devs = list(parse_concise("a,,,,0 1 zero;  \n b,,,,0 1 zero;"))
    assert [x.name for x in devs] == ["a", "b"]


def test_concise_minor_is_atoi():
    (d,) = parse_concise("a,,12x,,0 1 zero")
    assert d.minor == 12
    (d,) = parse_concise("a,,junk,,0 1 zero")
    assert d.minor == 0


def test_concise_backslash_escapes():
    (d,) = parse_concise(r"a\,b,u\;v,,,0 1 linear x\\y 0")
    assert d.name == "a,b" and d.uuid == "u;v"
    assert d.table == "0 1 linear x\\y 0"


def test_concise_trailing_newline_from_stdin():
    (d,) = parse_concise("dev1,,,,0 100 zero\n")
    assert d.lines() == [TargetLine(0, 100, "zero", "")]


def test_concise_empty_is_nothing():
    assert list(parse_concise("")) == []
    assert list(parse_concise("a,,,,0 1 zero;")) and len(list(parse_concise("a,,,,0 1 zero;"))) == 1


def _concise_error(spec):
    with pytest.raises(TableError) as ei:
        list(parse_concise(spec))
    return ei.value.lines


def test_concise_five_fields_required():
    assert _concise_error("abc") == [
        "Five comma-separated fields are required for each device",
        "Parsed 1 fields: name: abc uuid: (null) minor: (null) flags: (null) table: (null)"]
    assert _concise_error("a,b;x,,,,0 1 zero") == [
        "Five comma-separated fields are required for each device",
        "Parsed 2 fields: name: a uuid: b minor: (null) flags: (null) table: (null)"]


def test_concise_incomplete_entry():
    assert _concise_error("a,,,,0 1 zero,") == [
        "Incomplete entry: five comma-separated fields are required for each device",
        "Parsed 5 fields: name: a uuid:  minor:  flags:  table: 0 1 zero\n"]
    assert _concise_error("a,,,,0 1 zer\\o")[0].startswith("Incomplete entry")
    assert _concise_error("a,")[1] == ("Parsed 2 fields: name: a uuid:  minor: (null) "
                                       "flags: (null) table: (null)")


def test_concise_backslash_at_end():
    assert _concise_error("abc\\") == [
        "Backslash must be followed by another character at end of string.",
        "Parsed 1 fields: name: abc uuid: (null) minor: (null) flags: (null) table: (null)"]


def test_concise_bad_flags():
    assert _concise_error("a,,,x,0 1 zero") == [
        "Invalid flags parameter 'x' must be 'ro' or 'rw' or empty."]
    assert _concise_error("a,,,RO,0 1 zero") == [
        "Invalid flags parameter 'RO' must be 'ro' or 'rw' or empty."]


def test_concise_devices_before_an_error_are_yielded():
    g = parse_concise("a,,,,0 1 zero;b,,,bad,0 1 zero")
    assert next(g).name == "a"
    with pytest.raises(TableError):
        next(g)


def test_concise_output_quoting_and_round_trip():
    assert quote_concise("a,b;c\\d") == "a\\,b\\;c\\\\d"
    lines = [TargetLine(0, 8, "linear", "/dev/x 0"), TargetLine(8, 8, "error", "")]
    s = format_concise_device("n,1", "U;1", 3, True, lines)
    assert s == "n\\,1,U\\;1,3,ro,0 8 linear /dev/x 0,8 8 error "
    (d,) = parse_concise(s)
    assert (d.name, d.uuid, d.minor, d.read_only) == ("n,1", "U;1", 3, True)
    assert d.lines() == lines
    two = format_concise([("a", "", 0, False, [TargetLine(0, 1, "zero", "")]),
                          ("b", "", 1, False, [])])
    assert two == "a,,0,rw,0 1 zero ;b,,1,rw"
