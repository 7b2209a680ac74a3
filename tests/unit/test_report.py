"""The report engine (dmctl.libdm.report) on its own: field matching, widths, alignment,
sorting, selection and its error messages, rows/prefix output."""

import pytest

from dmctl.libdm import report as R

T1, T2 = 1, 2
TYPES = [R.ObjType(T1, "Things", "thing_"), R.ObjType(T2, "Other Things", "other_")]
FIELDS = [
    R.Field(T1, R.STR, "Name", 6, "name", "Name.", lambda o: o["name"]),
    R.Field(T1, R.NUM, "Size", 4, "size", "Size.", lambda o: o["size"]),
    R.Field(T2, R.STR, "LongHeading", 3, "long_id", "Long.", lambda o: o["name"].upper()),
]
OBJS = [{"name": "bb", "size": 10}, {"name": "a", "size": 2}, {"name": "ccc", "size": 10}]


def make(fields="name,size", flags=R.ALIGNED | R.BUFFERED | R.HEADINGS, sep=" ", keys="",
         sel=None, msgs=None, **kw):
    msgs = msgs if msgs is not None else []
    r = R.Report(TYPES, FIELDS, fields, sep, flags, keys, sel, warn=msgs.append,
                 error=msgs.append, **kw)
    return r


def lines(r, objs=OBJS):
    for o in objs:
        r.add(lambda t, o=o: o)
    return r.output()


def test_aligned_widths_and_padding():
    assert lines(make()) == ["Name   Size", "bb       10", "a         2", "ccc      10"]


def test_heading_truncated_to_width():
    assert lines(make("long_id"))[0] == "LongHeading"[:3]


def test_unaligned_and_noheadings():
    assert lines(make(flags=R.BUFFERED, sep=":")) == ["bb:10", "a:2", "ccc:10"]


def test_field_name_matching():
    r = make("NAME,Si_ze")
    assert r.field_ids() == ["name", "size"]
    with pytest.raises(R.ReportError):
        make("thing_name", msgs=[])        # no report type given: no prefix
    r = make("thing_name,thingname,name", report_types=T1, msgs=[])
    assert r.field_ids() == ["name", "name", "name"]
    assert make("longid").field_ids() == ["long_id"]


def test_all_and_prefix_all():
    assert make("all").field_ids() == ["name", "size", "long_id"]
    assert make("thing_all").field_ids() == ["name", "size"]
    assert make("other_all").field_ids() == ["long_id"]


def test_plus_prefix_with_report_type():
    # with a report type the prefix is implied and "all" means that type
    r = make("all", report_types=T2)
    assert r.field_ids() == ["long_id"]


def test_unknown_field_lists_fields_then_error():
    msgs = []
    with pytest.raises(R.ReportError):
        make("name,bogus", msgs=msgs)
    assert msgs[-1] == "Unrecognised field: bogus"
    assert msgs[-2] == " "
    assert msgs[0] == "Things Fields"
    assert msgs[1] == "-------------"
    assert msgs[2] == "  thing_all - All fields in this section."


def test_unknown_sort_key():
    msgs = []
    with pytest.raises(R.ReportError):
        make(keys="nope", msgs=msgs)
    assert msgs[-1] == "dm_report: Unrecognised field: nope"


def test_sort_multi_keys_hidden_key():
    r = make("name", keys="-size,name")
    assert lines(r) == ["Name  ", "bb    ", "ccc   ", "a     "]


def test_duplicate_sort_key_warns():
    msgs = []
    make(keys="name,name", msgs=msgs)
    assert msgs == ["dm_report: Ignoring duplicate sort field: name."]


def test_rows_mode():
    r = make(flags=R.ALIGNED | R.BUFFERED | R.HEADINGS | R.COLUMNS_AS_ROWS)
    assert lines(r) == ["Name bb a ccc", "Size 10 2 10"]


def test_prefixes_and_unquoted():
    r = make(flags=R.BUFFERED | R.FIELD_NAME_PREFIX, sep=":", field_name_prefix="dm_")
    assert lines(r)[0] == "DM_NAME='bb':DM_SIZE='10'"
    r = make(flags=R.BUFFERED | R.FIELD_NAME_PREFIX | R.UNQUOTED, sep=":", field_name_prefix="dm_")
    assert lines(r)[0] == "DM_NAME=bb:DM_SIZE=10"


@pytest.mark.parametrize("sel,names", [
    ("name=a", ["a"]),
    ("name!=a", ["bb", "ccc"]),
    ("size>=10", ["bb", "ccc"]),
    ("size<10", ["a"]),
    ("name=~^c", ["ccc"]),
    ("name!~b", ["a", "ccc"]),
    ("name='bb' || name=\"a\"", ["bb", "a"]),
    ("size=10 && name=ccc", ["ccc"]),
    ("size=10,name=ccc", ["ccc"]),
    ("size=2#name=ccc", ["a", "ccc"]),
    ("!(size=10)", ["a"]),
    ("(name=a||name=bb)&&size=10", ["bb"]),
    ("long_id=BB", ["bb"]),
    ("all", ["bb", "a", "ccc"]),
])
def test_selection(sel, names):
    r = make("name", flags=R.BUFFERED, sel=sel)
    assert lines(r) == names


def test_selected_field_shows_all_rows():
    r = make("name,selected", flags=R.BUFFERED, sep=" ", sel="size=2")
    assert lines(r) == ["bb 0", "a 1", "ccc 0"]


@pytest.mark.parametrize("sel,tail", [
    ("nosuch=1", ["Unrecognised selection field: nosuch",
                  "Selection syntax error at 'nosuch=1'.",
                  "Use 'help' for selection to get more help."]),
    ("name<1", ["Operator can be used only with number, size, time or percent fields: name",
                "Selection syntax error at 'name<1'.",
                "Use 'help' for selection to get more help."]),
    ("name=a b", ["Expecting logical operator", "Selection syntax error at 'b'.",
                  "Use 'help' for selection to get more help."]),
    ("size=x", ["Failed to parse numeric value for selection field size.",
                "Selection syntax error at 'size=x'.",
                "Use 'help' for selection to get more help."]),
    ("size=5k", ["Found size unit specifier but numeric value expected for selection field size.",
                 "Selection syntax error at 'size=5k'.",
                 "Use 'help' for selection to get more help."]),
    ("size=~1", ["dm_report: incompatible comparison type for selection field size"]),
    ("name=\"a", ["Missing end quote.", "Failed to parse string value for selection field name.",
                  "Selection syntax error at 'name=\"a'.",
                  "Use 'help' for selection to get more help."]),
    ("!name=a", ["Syntax error: left parenthesis expected at 'name=a'"]),
    ("name", None),
    ("=a", ["Expecting field name", "Selection syntax error at '=a'.",
            "Use 'help' for selection to get more help."]),
    ("help=1", ["Selection field is uncomparable: help.", "Selection syntax error at 'help=1'.",
                "Use 'help' for selection to get more help."]),
])
def test_selection_errors(sel, tail):
    msgs = []
    with pytest.raises(R.ReportError):
        make(sel=sel, msgs=msgs)
    if tail is not None:
        assert msgs[-len(tail):] == tail
    else:
        assert msgs[-3].startswith("Unrecognised comparison operator")


def test_selection_help_and_field_help():
    msgs = []
    r = make(sel="help", msgs=msgs)
    assert r.already_reported
    assert "  name      - Name. [string]" in msgs
    assert "  help      - Show help. [unselectable number]" in msgs
    assert "Selection operators" in msgs
    assert "        =~  - Matching regular expression. [regex]" in msgs
    assert "      &&  - All fields must match" in msgs
    assert lines(r) == []


def test_help_field():
    msgs = []
    r = make("help", msgs=msgs)
    assert r.already_reported and msgs[-1] == " "
    assert msgs[-2] == "  ?         - Show help."


def test_numbers_negative_and_sorting_as_unsigned():
    f = [R.Field(T1, R.NUM, "N", 1, "n", "N.", lambda o: o)]
    r = R.Report(TYPES, f, "n", " ", R.BUFFERED, "n", None)
    for v in (5, -1, 3):
        r.add(lambda t, v=v: v)
    assert r.output() == ["3", "5", "-1"]
