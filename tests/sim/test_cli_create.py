"""``dmctl create`` / ``load`` on the simulator: dmsetup 1.02.185's output, error
text and exit codes, and create's all-or-nothing behaviour (a failed create leaves
the simulated kernel exactly as it was)."""

import re

import pytest

from tests.conftest import golden

# Lines the simulator adds under libdm's line: the kernel's own log (dmctl shows it,
# dmsetup leaves it in dmesg).
_KLOG = re.compile(r"^device-mapper: ")
_LIBDM = re.compile(r"^device-mapper: [a-z_-]+ ioctl on ")


def split_err(err):
    """-> (dmsetup's stderr, the kernel-log lines dmctl added)."""
    plain, klog = [], []
    for line in err.splitlines(True):
        if _KLOG.match(line) and not _LIBDM.match(line):
            klog.append(line)
        else:
            plain.append(line)
    return "".join(plain), "".join(klog)


def state(mapper):
    """Everything a command could change, for before/after comparisons."""
    out = []
    for e in mapper.list_devices(uuid=True):
        info = mapper.info(e.name)
        live = mapper.table(e.name)[1] if info.live_table else None
        inactive = mapper.table(e.name, inactive=True)[1] if info.inactive_table else None
        out.append((e.name, e.uuid, e.minor, info.flags, info.event_nr, live, inactive))
    return out


def names(mapper):
    return [e.name for e in mapper.list_devices()]


@pytest.fixture
def disk(backing):
    """A 16 MiB backing file (32768 sectors), like the golden runs' /dev/loop7."""
    return backing("loop7.img", 16 << 20)


def check_golden(r, name, disk=None, klog=True):
    """stdout, stderr (minus the kernel-log lines) and, where captured, those lines
    against the golden dmesg."""
    exp_err = golden(name + ".stderr.txt") or ""
    exp_out = golden(name + ".txt") or ""
    plain, extra = split_err(r.err)
    assert plain == exp_err
    assert r.out == exp_out
    dm = golden(name + ".dmesg.txt")
    if klog and dm is not None:
        assert extra == dm


def fails_without_change(dmctl, mapper, *args, **kw):
    before = state(mapper)
    r = dmctl(*args, **kw)
    assert r.rc == 1, r
    assert r.out == ""
    assert state(mapper) == before
    return r


# ------------------------------------------------------------------ golden sequence

def test_golden_bad_tables_then_good_creates(dmctl, mapper, disk):
    """INDEX-generic.tsv from the start, with /dev/loop7 replaced by a backing file."""
    r = fails_without_change(dmctl, mapper, "create", "gbad", "--table",
                             "0 1024 nosuchtarget foo")
    check_golden(r, "generic-bad-target-type")
    r = fails_without_change(dmctl, mapper, "create", "gbad", "--table", "0 1024")
    check_golden(r, "generic-bad-table-syntax")
    r = fails_without_change(dmctl, mapper, "create", "gbad", "--table",
                             "x 1024 linear %s 0" % disk)
    check_golden(r, "generic-bad-table-nonnum")
    r = fails_without_change(dmctl, mapper, "create", "gbad", "--table",
                             "0 100 linear %s 0\n200 100 linear %s 0" % (disk, disk))
    check_golden(r, "generic-bad-table-gap")
    assert names(mapper) == []

    table = "0 1024 linear %s 0\n1024 1024 zero\n2048 1024 error\n" % disk
    r = dmctl("create", "multi", input=table)
    assert (r.rc, r.out, r.err) == (0, "", "")
    info, lines = mapper.table("multi")
    assert [(t.start, t.length, t.target_type) for t in lines] == [
        (0, 1024, "linear"), (1024, 1024, "zero"), (2048, 1024, "error")]
    assert (info.major, info.minor, info.live_table, info.suspended) == (254, 0, True, False)

    r = dmctl("create", "lin1", "-u", "LIN-UUID-0001", "--table",
              "0 32768 linear %s 0" % disk)
    assert (r.rc, r.out, r.err) == (0, "", "")
    assert mapper.info("lin1").uuid == "LIN-UUID-0001"

    r = fails_without_change(dmctl, mapper, "create", "lin1", "--table",
                             "0 32768 linear %s 0" % disk)
    assert r.rc == 1
    check_golden(r, "generic-create-duplicate")
    r = fails_without_change(dmctl, mapper, "create", "lin9", "-u", "LIN-UUID-0001",
                             "--table", "0 32768 linear %s 0" % disk)
    check_golden(r, "generic-create-duplicate-uuid")

    r = dmctl("create", "empty1", "--notable")
    assert (r.rc, r.out, r.err) == (0, "", "")
    info = mapper.info("empty1")
    assert not info.live_table and not info.inactive_table

    r = dmctl("load", "empty1", "--table", "0 1024 zero")
    assert (r.rc, r.out, r.err) == (0, "", "")
    info = mapper.info("empty1")
    assert (info.live_table, info.inactive_table) == (False, True)

    r = dmctl("create", "ro1", "-r", "--table", "0 1024 zero")
    assert (r.rc, r.out, r.err) == (0, "", "")
    assert mapper.info("ro1").read_only


# ------------------------------------------------------------------ table sources

def test_table_from_file_and_stdin(dmctl, mapper, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("# a comment\n\n0 8 zero   # trailing comment\n8 8 error\n")
    assert dmctl("create", "a", str(f)).rc == 0
    assert [t.target_type for t in mapper.table("a")[1]] == ["zero", "error"]
    assert dmctl("create", "b", input="0 16 zero\n").rc == 0
    assert mapper.info("b").live_table


def test_table_option_wins_over_file(dmctl, mapper):
    r = dmctl("create", "a", "/nonexistent/file", "--table", "0 8 zero")
    assert (r.rc, r.err) == (0, "")
    assert mapper.table("a")[1][0].target_type == "zero"


@pytest.mark.parametrize("source", ["stdin", "comments", "notable", "directory"])
def test_empty_table_creates_a_device_without_table(dmctl, mapper, tmp_path, source):
    if source == "stdin":
        r = dmctl("create", "e", input="")
    elif source == "comments":
        r = dmctl("create", "e", input="# nothing\n\n   \n")
    elif source == "notable":
        r = dmctl("create", "e", "-n")
    else:   # fopen() of a directory succeeds, reading it fails: an empty table
        r = dmctl("create", "e", str(tmp_path))
    assert (r.rc, r.out, r.err) == (0, "", "")
    info = mapper.info("e")
    assert not info.live_table and not info.inactive_table


def test_bad_line_in_file_names_file_and_line(dmctl, mapper, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("0 8 zero\n\n8 8\n")
    r = fails_without_change(dmctl, mapper, "create", "a", str(f))
    assert r.err == "Invalid format on line 3 of table %s.\nCommand failed.\n" % f


def test_bad_line_on_stdin(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", input="0 8 zero\nbad\n")
    assert r.err == "Invalid format on line 2 of table on stdin.\nCommand failed.\n"


def test_bad_line_in_multiline_table_option(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "--table", "0 8 zero\n8 x zero")
    assert r.err == "Invalid format on line 2 of table .\nCommand failed.\n"


def test_missing_table_file(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "/nonexistent/t.txt")
    assert r.err == "Couldn't open '/nonexistent/t.txt' for reading.\nCommand failed.\n"


def test_target_type_name_too_long(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "--table",
                             "0 8 abcdefghijklmnop x")
    assert r.err == "Target type name abcdefghijklmnop is too long.\nCommand failed.\n"


def test_backslashes_reach_the_target_intact(dmctl, mapper, backing):
    # libdm doubles the backslash and the kernel's arg splitter undoes it: the
    # target opens the file whose name really contains the backslash.
    p = backing("we\\ird.img", 1 << 20)
    r = dmctl("create", "bs", "--table", "0 8 linear %s 0" % p)
    assert (r.rc, r.err) == (0, "")
    r = fails_without_change(dmctl, mapper, "create", "bs2", "--table",
                             "0 8 linear %s 0" % p.replace("\\", ""))
    assert "Device lookup failed" in r.err


# ------------------------------------------------------------------ kernel rejections

def _kernel_rejects(dmctl, mapper, table):
    r = fails_without_change(dmctl, mapper, "create", "bad", "--table", table)
    plain, klog = split_err(r.err)
    assert re.match(r"device-mapper: reload ioctl on bad \(254:\d+\) failed: ", plain)
    assert plain.endswith("\nCommand failed.\n")
    assert klog
    return plain, klog


def test_unknown_target(dmctl, mapper):
    plain, klog = _kernel_rejects(dmctl, mapper, "0 8 nosuch")
    assert "Invalid argument" in plain and "unknown target type" in klog


def test_missing_backing_file(dmctl, mapper, tmp_path):
    _kernel_rejects(dmctl, mapper, "0 8 linear %s 0" % (tmp_path / "nosuch.img"))


def test_backing_file_too_small(dmctl, mapper, backing):
    p = backing("small.img", 1 << 20)
    plain, klog = _kernel_rejects(dmctl, mapper, "0 4096 linear %s 0" % p)
    assert "too small for target" in klog


@pytest.mark.parametrize("table", [
    "0 100 zero\n50 100 zero",            # overlap
    "0 100 zero\n200 100 zero",           # gap
    "8 8 zero",                           # not starting at 0
    "0 0 zero",                           # zero length
    "0 8 linear",                         # missing params
])
def test_bad_table_layouts(dmctl, mapper, table):
    _kernel_rejects(dmctl, mapper, table)


def test_revert_keeps_other_devices(dmctl, mapper):
    assert dmctl("create", "keep", "--table", "0 8 zero").rc == 0
    before = state(mapper)
    r = dmctl("create", "bad", "--table", "0 8 nosuch")
    assert r.rc == 1
    assert state(mapper) == before
    # the minor of the reverted device is free again
    assert dmctl("create", "next", "--table", "0 8 zero").rc == 0
    assert mapper.info("next").minor == 1


# ------------------------------------------------------------------ names, uuids, options

def test_name_with_slash(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a/b", "--notable")
    assert r.err == 'Name "a/b" invalid. It contains "/".\nCommand failed.\n'


def test_name_too_long(dmctl, mapper):
    long_name = "n" * 128
    r = fails_without_change(dmctl, mapper, "create", long_name, "--notable")
    assert r.err == 'Name "%s" too long.\nCommand failed.\n' % long_name
    assert dmctl("create", "n" * 127, "--notable").rc == 0


@pytest.mark.parametrize("name", ["control", ".", ".."])
def test_reserved_names(dmctl, mapper, name):
    r = fails_without_change(dmctl, mapper, "create", name, "--table", "0 8 zero")
    assert r.err.startswith("device-mapper: create ioctl on %s  failed: Invalid argument\n"
                            % name)


def test_mangled_name(dmctl, mapper):
    assert dmctl("create", "a b", "--notable").rc == 0
    assert names(mapper) == ["a\\x20b"]


def test_long_uuid_is_truncated_by_the_kernel(dmctl, mapper):
    u = "U" * 140
    assert dmctl("create", "a", "-u", u, "--notable").rc == 0
    assert mapper.info("a").uuid == "U" * 128


def test_no_name(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create")
    assert r.err == "Please provide a name for the new device.\nCommand failed.\n"


def test_too_many_arguments(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "b", "c")
    assert r.err.startswith("Incorrect number of arguments.\nUsage:\n")


def test_table_and_notable(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "--table", "0 8 zero", "-n")
    assert r.err == "--table and --notable are incompatible.\nCouldn't process command line.\n"


def test_major_without_minor(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "-j", "254", "--notable")
    assert r.err == ("Please specify both major number and minor number.\n"
                     "Couldn't process command line.\n")


def test_unknown_option(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "--bogus")
    assert r.err.endswith("Couldn't process command line.\n")


def test_persistent_minor(dmctl, mapper):
    assert dmctl("create", "p", "-j", "254", "-m", "7", "--table", "0 8 zero").rc == 0
    info = mapper.info("p")
    assert (info.major, info.minor, info.live_table) == (254, 7, True)
    assert dmctl("create", "q", "-j", "254", "-m", "9", "--notable").rc == 0
    assert mapper.info("q").minor == 9
    r = fails_without_change(dmctl, mapper, "create", "r", "-j", "254", "-m", "7",
                             "--table", "0 8 zero")
    assert r.err == ("device-mapper: create ioctl on r (254:7) failed: Device or resource "
                     "busy\nCommand failed.\n")


def test_persistent_minor_needs_a_major(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "a", "-j", "0", "-m", "3", "-n")
    assert r.err == ("Missing major number for persistent device.\n"
                     "Couldn't create ioctl argument.\nCommand failed.\n")


def test_verbose_prints_the_info_block(dmctl, mapper):
    r = dmctl("create", "v", "-u", "V-1", "-v", "--table", "0 8 zero")
    assert r.rc == 0
    assert r.out == ("Name:              v\n"
                     "State:             ACTIVE\n"
                     "Read Ahead:        256\n"
                     "Tables present:    LIVE\n"
                     "Open count:        0\n"
                     "Event number:      0\n"
                     "Major, minor:      254, 0\n"
                     "Number of targets: 1\n"
                     "UUID: V-1\n\n")


def test_readahead_after_create(dmctl, mapper):
    assert dmctl("create", "ra", "--readahead", "512", "--table", "0 8 zero").rc == 0
    assert mapper.read_ahead(mapper.info("ra")) == 512
    assert dmctl("create", "rb", "--readahead", "+16", "--table", "0 8 zero").rc == 0
    assert mapper.read_ahead(mapper.info("rb")) == 256


# ------------------------------------------------------------------ concise

def test_concise(dmctl, mapper):
    r = dmctl("create", "--concise",
              "dev1,,,,0 100 zero,100 100 error;dev2,U-2,5,ro,0 1 error")
    assert (r.rc, r.out, r.err) == (0, "", "")
    assert [t.target_type for t in mapper.table("dev1")[1]] == ["zero", "error"]
    info = mapper.info("dev2")
    assert (info.uuid, info.minor, info.read_only) == ("U-2", 5, True)


def test_concise_from_stdin(dmctl, mapper):
    r = dmctl("create", "--concise", input="c1,,,,0 8 zero;c2,,,rw,0 8 zero\n")
    assert r.rc == 0
    assert names(mapper) == ["c1", "c2"]


def test_concise_stops_at_the_first_bad_device(dmctl, mapper):
    r = dmctl("create", "--concise", "c1,,,,0 8 zero;c2,,,x,0 8 zero;c3,,,,0 8 zero")
    assert r.rc == 1
    assert r.err == ("Invalid flags parameter 'x' must be 'ro' or 'rw' or empty.\n"
                     "Command failed.\n")
    assert names(mapper) == ["c1"]
    r = dmctl("create", "--concise", "c4,,,,0 8 zero;c1,,,,0 8 zero;c5,,,,0 8 zero")
    assert r.rc == 1
    assert r.err == ("device-mapper: create ioctl on c1  failed: Device or resource busy\n"
                     "Command failed.\n")
    assert names(mapper) == ["c1", "c4"]


@pytest.mark.parametrize("spec,err", [
    ("abc", "Five comma-separated fields are required for each device\n"
            "Parsed 1 fields: name: abc uuid: (null) minor: (null) flags: (null) table: (null)\n"),
    ("a,,,,0 8 zero,", "Incomplete entry: five comma-separated fields are required for "
                       "each device\nParsed 5 fields: name: a uuid:  minor:  flags:  "
                       "table: 0 8 zero\n\n"),
    ("a,,,,0 8 zero\\", "Backslash must be followed by another character at end of "
                        "string.\nParsed 5 fields: name: a uuid:  minor:  flags:  "
                        "table: 0 8 zero\n"),
    ("a,,,,0 8", "Invalid format on line 1 of table .\n"),
])
def test_concise_errors(dmctl, mapper, spec, err):
    r = fails_without_change(dmctl, mapper, "create", "--concise", spec)
    assert r.err == err + "Command failed.\n"


@pytest.mark.parametrize("opt", [["--table", "0 8 zero"], ["-n"], ["-u", "U"],
                                 ["-j", "254", "-m", "3"], ["--inactive"]])
def test_concise_incompatible_options(dmctl, mapper, opt):
    r = fails_without_change(dmctl, mapper, "create", "--concise", "a,,,,0 8 zero", *opt)
    assert r.err == ("--concise is incompatible with --[no]table, --minor, --uuid and "
                     "--inactive.\nCommand failed.\n")


def test_concise_takes_one_argument(dmctl, mapper):
    r = fails_without_change(dmctl, mapper, "create", "--concise", "a,,,,0 8 zero", "x")
    assert r.err == "dmsetup create --concise takes at most one argument\nCommand failed.\n"


def test_concise_readonly_applies_to_the_first_device_only(dmctl, mapper):
    assert dmctl("create", "-r", "--concise", "a,,,,0 8 zero;b,,,,0 8 zero").rc == 0
    assert mapper.info("a").read_only and not mapper.info("b").read_only


# ------------------------------------------------------------------ load / reload

@pytest.mark.parametrize("cmd", ["load", "reload"])
def test_load_into_inactive_slot(dmctl, mapper, cmd):
    assert dmctl("create", "l", "--table", "0 8 zero").rc == 0
    r = dmctl(cmd, "l", "--table", "0 16 error")
    assert (r.rc, r.out, r.err) == (0, "", "")
    info = mapper.info("l")
    assert (info.live_table, info.inactive_table) == (True, True)
    assert mapper.table("l", inactive=True)[1][0].target_type == "error"
    assert mapper.table("l")[1][0].target_type == "zero"


def test_load_by_uuid_and_devno(dmctl, mapper, tmp_path):
    assert dmctl("create", "l", "-u", "L-1", "--notable").rc == 0
    f = tmp_path / "t"
    f.write_text("0 8 zero\n")
    assert dmctl("load", "-u", "L-1", str(f)).rc == 0
    assert mapper.info("l").inactive_table
    assert dmctl("clear", "l").rc == 0
    assert dmctl("load", "-j", "254", "-m", "0", input="0 8 zero\n").rc == 0
    assert mapper.info("l").inactive_table


def test_load_errors(dmctl, mapper):
    assert dmctl("create", "l", "--table", "0 8 zero").rc == 0
    r = fails_without_change(dmctl, mapper, "load", "nosuch", "--table", "0 8 zero")
    assert r.err == ("device-mapper: reload ioctl on nosuch  failed: No such device or "
                     "address\nCommand failed.\n")
    r = fails_without_change(dmctl, mapper, "load", "l", "--table", "0 8 nosuch")
    plain, klog = split_err(r.err)
    assert plain == ("device-mapper: reload ioctl on l  failed: Invalid argument\n"
                     "Command failed.\n")
    r = fails_without_change(dmctl, mapper, "load", "l", "-n")
    assert r.err == "--notable only available when creating new device.\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "load")
    assert r.err == "Please specify device.\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "load", "-u", "X", "a", "b")
    assert r.err == "Too many command line arguments.\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "load", "l", "--table", "0 8")
    assert r.err == "Invalid format on line 1 of table .\nCommand failed.\n"
    r = fails_without_change(dmctl, mapper, "load", "-u", "NOSUCH", "--table", "0 8 zero")
    assert r.err == ("device-mapper: reload ioctl on  NOSUCH failed: No such device or "
                     "address\nCommand failed.\n")


def test_load_verbose(dmctl, mapper):
    assert dmctl("create", "l", "--notable").rc == 0
    r = dmctl("load", "-v", "l", "--table", "0 8 zero")
    assert r.rc == 0
    assert "Tables present:    INACTIVE\n" in r.out


def test_verbose_with_columns_prints_a_report_row(dmctl, mapper):
    r = dmctl("create", "v", "-v", "-c", "--noheadings", "-o", "name,attr,segments",
              "--table", "0 8 zero")
    assert (r.rc, r.out, r.err) == (0, "v:L--w:1\n", "")


def test_table_concise_output_recreates_the_devices(dmctl, mapper, disk):
    ok = dmctl("create", "--concise",
               "a\\,1,U\\;1,4,ro,0 8 zero,8 8 error;b,,,,0 64 linear %s 0" % disk)
    assert ok.rc == 0, ok
    before = state(mapper)
    r = dmctl("table", "--concise")
    assert r.rc == 0 and r.out.endswith("\n")
    assert dmctl("remove_all").rc == 0
    assert names(mapper) == []
    r2 = dmctl("create", "--concise", r.out)
    assert (r2.rc, r2.err) == (0, "")
    assert state(mapper) == before
