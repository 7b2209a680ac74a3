"""``dmctl replay-log``: the outputs and exit codes of xfstests' replay-log.

Expected texts come from replay-log.c and from runs of the real tool recorded in
shared/reference/oracles.md §1.4 (the 7-entry example); none of this needs the C tool.
"""

import io
import json
import os
import random
import subprocess
import sys

import pytest

from dmctl.formats import log_writes as lw
from dmctl.tools import replay_log
from testlib import golden_path

S = 512
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ORACLE7 = [(0, 1, 0, b"A" * S), (2, 2, lw.FUA, b"B" * (2 * S)), (0, 0, lw.MARK, "m1"),
           (0, 0, lw.FLUSH, b""), (4, 2, lw.DISCARD, b""), (4, 1, 0, b"C" * S),
           (0, 0, lw.MARK, "dm-log-writes-end")]

USAGE_HEAD = "Usage: replay-log --log <logfile> [options]\n\t--replay <device> - replay onto a specific device\n"


def run(args):
    """main() in process: (exit status, stdout text, stderr text)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    rc = replay_log.main([str(a) for a in args], stdout=out, stderr=err)
    return rc, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()


@pytest.fixture
def log7(tmp_path):
    p = tmp_path / "log7"
    p.write_bytes(lw.pack_log(ORACLE7))
    return str(p)


def image(tmp_path, fill=b"\0", size=8 * S, name="img"):
    p = tmp_path / name
    p.write_bytes(fill * size)
    return str(p)


# --- oracles.md §1.4, row by row -------------------------------------------------

@pytest.mark.parametrize("args,out,err,rc", [
    ([], "Log version=1, sectorsize=512, entries=7\n", "", 0),
    (["--num-entries"], "7\n", "", 0),
    (["--find", "--end-mark", "m1"], "2@7\n", "", 0),
    (["--find", "--end-mark", "m"], "", "Couldn't find entry\n", 1),
    (["--find", "--end-mark", "nosuch"], "", "Couldn't find entry\n", 1),
    (["--find", "--next-fua", "--start-entry", "0"], "1@6\n", "", 0),
    (["--find", "--next-fua", "--start-entry", "2"], "", "Couldn't find entry\n", 1),
    (["--find", "--next-flush"], "3@8\n", "", 0),
    (["--find", "--end-mark", "dm-log-writes-end"], "6@12\n", "", 0),
])
def test_oracle7_table(log7, args, out, err, rc):
    assert run(["--log", log7] + args) == (rc, out, err)


def test_oracle7_replay_to_mark(log7, tmp_path):
    img = image(tmp_path)
    rc, out, err = run(["--log", log7, "--replay", img, "--end-mark", "m1", "-v"])
    assert (rc, err) == (0, "")
    assert out == ("replaying 0@2: sector 0, size 512, flags 0x0(NONE)\n"
                   "replaying 1@4: sector 2, size 1024, flags 0x2(FUA)\n"
                   "replaying 2@7: sector 0, size 0, flags 0x8(MARK)\n")
    with open(img, "rb") as f:
        assert f.read() == b"A" * S + bytes(S) + b"B" * (2 * S) + bytes(4 * S)


def test_oracle7_replay_whole_log_discard_becomes_zeros(log7, tmp_path):
    img = image(tmp_path, fill=b"\xaa")
    rc, out, err = run(["--log", log7, "--replay", img, "-v"])
    assert (rc, err) == (0, "")
    assert out.splitlines()[4:6] == [
        "replaying 4@9: sector 4, size 1024, flags 0x4(DISCARD)",
        "replay device doesn't support discard, switching to writing zeros"]
    with open(img, "rb") as f:
        got = f.read()
    assert got == (b"A" * S + b"\xaa" * S + b"B" * (2 * S) + b"C" * S + bytes(S)
                   + b"\xaa" * (2 * S))
    # without -v the same bytes and no message
    img2 = image(tmp_path, fill=b"\xaa", name="img2")
    assert run(["--log", log7, "--replay", img2]) == (0, "", "")
    with open(img2, "rb") as f:
        assert f.read() == got
    # --no-discard leaves the discarded range alone
    img3 = image(tmp_path, fill=b"\xaa", name="img3")
    assert run(["--log", log7, "--replay", img3, "--no-discard"])[0] == 0
    with open(img3, "rb") as f:
        assert f.read()[5 * S:6 * S] == b"\xaa" * S


def test_oracle7_fsck_errors_out(log7, tmp_path):
    img = image(tmp_path)
    assert run(["--log", log7, "--replay", img, "--check", "fua", "--fsck", "false"]) == (
        1, "", "Fsck errored out on entry 1\n")
    assert run(["--log", log7, "--replay", img, "--check", "fua", "--fsck", "true"]) == (0, "", "")
    marker = tmp_path / "count"
    rc, _, _ = run(["--log", log7, "--replay", img, "--check", "2",
                    "--fsck", "echo x >> %s" % marker])
    assert rc == 0 and marker.read_text() == "x\nx\nx\n"


def test_kernel_first_mark_is_0_at_2(tmp_path):
    p = tmp_path / "l"
    p.write_bytes(lw.pack_log([(0, 0, lw.MARK, "mkfs"), (1, 1, 0, b"z" * S)]))
    assert run(["--log", p, "--find", "--end-mark", "mkfs"]) == (0, "0@2\n", "")


# --- the C tool's quirks -------------------------------------------------------------

def test_usage_and_getopt_errors(log7):
    rc, out, err = run([])
    assert (rc, out) == (1, "") and err.startswith(USAGE_HEAD)
    assert err.endswith("\t-v or --verbose - print replayed ops\n\t-vv - print also skipped ops\n")
    assert len(err.splitlines()) == 17
    rc, _, err = run(["--foo=bar"])
    assert rc == 1 and err.startswith("replay-log: unrecognized option '--foo=bar'\nUsage:")
    rc, _, err = run(["--f"])
    assert err.startswith("replay-log: option '--f' is ambiguous; possibilities: '--find' '--fsck'\n")
    rc, _, err = run(["--fi=1"])
    assert err.startswith("replay-log: option '--find' doesn't allow an argument\n")
    rc, _, err = run(["--log"])
    assert err.startswith("replay-log: option '--log' requires an argument\n")
    rc, _, err = run(["-vx"])
    assert err.startswith("replay-log: invalid option -- 'x'\n")
    rc, _, err = run(["--help"])
    assert rc == 1 and err.startswith("replay-log: unrecognized option '--help'\n")


def test_prefixes_resolve_like_glibc(log7):
    # options sharing has_arg/flag/val are not ambiguous: the first in the table wins
    assert run(["--next", "--log", log7, "--find"]) == (0, "3@8\n", "")      # next-flush
    assert run(["--l=" + log7, "--e", "m1", "--fi"]) == (0, "2@7\n", "")     # log, end-mark
    assert run(["--st", "2", "--find", "--next-fl", "--log", log7]) == (0, "3@8\n", "")
    # options anywhere, stray words ignored, "--" ends the options
    assert run(["stray", "--log", log7, "--find", "--next-flush"]) == (0, "3@8\n", "")
    assert run(["--log", log7, "--", "--find"])[1].startswith("Log version=1")


def test_number_parsing_is_strtoull_base0(log7):
    assert run(["--log", log7, "--find", "--limit", "0x2"]) == (0, "1@6\n", "")
    assert run(["--log", log7, "--find", "--limit", "010"]) == (1, "", "Couldn't find entry\n")
    assert run(["--log", log7, "--find", "--limit", "03"]) == (0, "2@7\n", "")
    assert run(["--log", log7, "--find", "--limit", " 3"]) == (0, "2@7\n", "")
    assert run(["--log", log7, "--limit", "08"]) == (1, "", "Invalid entry number\n")
    assert run(["--log", log7, "--limit", "3 "]) == (1, "", "Invalid entry number\n")
    assert run(["--log", log7, "--start-entry", "abc"]) == (1, "", "Invalid entry number\n")
    assert run(["--log", log7, "--start-sector", "zz"]) == (1, "", "Invalid sector number\n")
    assert run(["--log", log7, "--check", "0"]) == (1, "", "Invalid entry number\n")
    # "" converts to 0 (no limit); "-1" wraps to 2**64-1
    assert run(["--log", log7, "--find", "--limit", "", "--next-fua"]) == (0, "1@6\n", "")
    assert run(["--log", log7, "--find", "--limit", "-1"]) == (1, "", "Couldn't find entry\n")


def test_fsck_check_pairing_is_checked_after_opening(log7, tmp_path):
    rc, _, err = run(["--log", log7, "--fsck", "true"])
    assert rc == 1 and err.startswith(USAGE_HEAD)
    rc, _, err = run(["--log", log7, "--check", "fua"])
    assert rc == 1 and err.startswith(USAGE_HEAD)
    # ... so a missing log is reported first
    assert run(["--log", tmp_path / "nope", "--fsck", "true"]) == (
        1, "", "Couldn't open log %s: 2\n" % (tmp_path / "nope"))


def test_open_and_super_errors(log7, tmp_path):
    assert run(["--log", log7, "--replay", tmp_path / "nope"]) == (
        1, "", "Couldn't open replay file %s: 2\n" % (tmp_path / "nope"))
    raw = lw.pack_log(ORACLE7)
    cases = {
        "short": (raw[:20], "Error reading super: 0\n"),
        "magic": (b"x" + raw[1:], "Magic doesn't match\n"),
        "version": (raw[:8] + (2).to_bytes(8, "little") + raw[16:],
                    "Version mismatch, wanted 1, have 2\n"),
        "version_wrap": (raw[:8] + ((1 << 32) + 5).to_bytes(8, "little") + raw[16:],
                         "Version mismatch, wanted 1, have 5\n"),
    }
    for name, (data, err) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        assert run(["--log", p]) == (1, "", err), name
    # a directory: read() fails, C compares -1 as unsigned and finds garbage
    assert run(["--log", tmp_path]) == (1, "", "Magic doesn't match\n")


def test_empty_log_is_invalid_entry_number(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(lw.pack_log([]))
    for extra in ([], ["--num-entries"], ["--find"]):
        assert run(["--log", p] + extra) == (1, "", "Invalid entry number\n")
    assert run(["--log", p, "--start-mark", "x"]) == (1, "", "Couldn't find starting mark\n")


def test_malformed_and_truncated_logs(tmp_path):
    raw = bytearray(lw.pack_log(ORACLE7))
    raw[3 * S + 32] = 1                        # entry 1's header is not zero padded
    p = tmp_path / "bad"
    p.write_bytes(bytes(raw))
    # find mode returns -1 from main(): exit status 255
    assert run(["--log", p, "--find", "--next-flush"]) == (255, "", "Malformed entry @3\n")
    assert run(["--log", p, "--start-entry", "3"]) == (1, "", "Malformed entry @3\n")
    img = image(tmp_path)
    assert run(["--log", p, "--replay", img, "-v"]) == (
        1, "replaying 0@2: sector 0, size 512, flags 0x0(NONE)\n", "Malformed entry @3\n")
    t = tmp_path / "trunc"
    t.write_bytes(lw.pack_log(ORACLE7)[:2 * S + 100])
    assert run(["--log", t, "--replay", img]) == (1, "", "Error reading data: 0\n")
    assert run(["--log", t, "--find"]) == (255, "", "Error reading entry: 0\n")


def test_verbose_seek_lines(log7):
    rc, out, _ = run(["-vv", "--log", log7, "--start-entry", "2", "--find", "--next-flush"])
    assert out == ("seek entry 0@1: 0, size 1, flags 0x0\n"
                   "seek entry 1@3: 2, size 2, flags 0x2\n"
                   "seek entry 2@7: 0, size 0, flags 0x8(MARK)\n"
                   "seek entry 3@8: 0, size 0, flags 0x1(FLUSH)\n"
                   "3@8\n")


def test_start_mark_and_sector_range(log7, tmp_path):
    img = image(tmp_path, fill=b"\xaa")
    rc, out, _ = run(["--log", log7, "--replay", img, "--start-mark", "m1", "-vv",
                      "--start-sector", "6"])
    assert rc == 0
    assert out == ("seek entry 0@2: 0, size 1, flags 0x0(NONE)\n"
                   "seek entry 1@4: 2, size 2, flags 0x2(FUA)\n"
                   "seek entry 2@7: 0, size 0, flags 0x8(MARK)\n"
                   "replaying 3@8: sector 0, size 0, flags 0x1(FLUSH)\n"
                   "skipping 4@9: sector 4, size 1024, flags 0x4(DISCARD)\n"
                   "replay device doesn't support discard, switching to writing zeros\n"
                   "skipping 5@10: sector 4, size 512, flags 0x0(NONE)\n"
                   "replaying 6@12: sector 0, size 0, flags 0x8(MARK)\n")
    with open(img, "rb") as f:
        got = f.read()
    # the discard is applied although it is outside the range ("skipping"); C is skipped
    assert got == b"\xaa" * (4 * S) + bytes(2 * S) + b"\xaa" * (2 * S)


def test_end_mark_with_next_fua_stops_at_the_mark_only(log7):
    assert run(["--log", log7, "--find", "--next-fua", "--end-mark", "m1"]) == (0, "2@7\n", "")


def test_stdout_is_block_buffered_like_glibc(log7, tmp_path):
    """-v lines stay in the buffer while --fsck commands print, as with the C tool."""
    img = image(tmp_path)
    out = tmp_path / "out"
    code = ("import sys; sys.path.insert(0, %r); from dmctl.tools.replay_log import main; "
            "sys.exit(main(sys.argv[1:]))" % REPO)
    with open(out, "wb") as f:
        rc = subprocess.call([sys.executable, "-c", code, "--log", log7, "--replay", img, "-v",
                              "--check", "fua", "--fsck", "echo FSCK"],
                             stdout=f, stderr=subprocess.STDOUT)
    assert rc == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "FSCK" and lines[1].startswith("replaying 0@2")
    assert len(lines) == 9


# --- additions: --json, progress ------------------------------------------------------

def test_json_listing_find_and_replay(log7, tmp_path):
    rc, out, err = run(["--log", log7, "--json"])
    objs = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(objs) == 7
    assert objs[2] == {"index": 2, "pos": 6, "end_pos": 7, "sector": 0, "nr_sectors": 0,
                       "size": 0, "flags": 8, "flag_names": ["MARK"], "mark": "m1",
                       "data_offset": 3584}
    assert objs[1]["flag_names"] == ["FUA"] and objs[1]["size"] == 1024
    rc, out, _ = run(["--log", log7, "--json", "--end-mark", "m1"])
    assert [json.loads(x)["index"] for x in out.splitlines()] == [0, 1, 2]
    rc, out, _ = run(["--log", log7, "--json", "--find", "--next-flush"])
    assert json.loads(out)["index"] == 3 and json.loads(out)["end_pos"] == 8
    img = image(tmp_path)
    rc, out, _ = run(["--log", log7, "--replay", img, "--json", "-v", "--end-sector", "1"])
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["skipped"] for o in objs] == [False, True, False, False, True, True, False]


def test_no_progress_bar_when_stderr_is_not_a_tty(tmp_path):
    entries = [(i % 64, 1, 0, bytes([i % 256]) * S) for i in range(3000)]
    p = tmp_path / "l"
    p.write_bytes(lw.pack_log(entries))
    img = image(tmp_path, size=64 * S)
    assert run(["--log", p, "--replay", img]) == (0, "", "")


def test_progress_bar_draws_and_clears(tmp_path):
    entries = [(i % 64, 1, 0, bytes([i % 256]) * S) for i in range(3000)]
    p = tmp_path / "l"
    p.write_bytes(lw.pack_log(entries))
    img = image(tmp_path, size=64 * S)
    master, slave = os.openpty()
    try:
        err = open(slave, "w", encoding="utf-8", closefd=True)
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
        assert replay_log.main(["--log", str(p), "--replay", img], stdout=out, stderr=err) == 0
        err.close()
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
    assert out.buffer.getvalue() == b""
    assert b"replay-log:" in drawn and b"/3000" in drawn and b"entry" in drawn, drawn
    assert drawn.split(b"\r")[-1] == b""      # erased: the cursor is back at column 0


# --- replayed bytes against a model ----------------------------------------------------

@pytest.mark.parametrize("sectorsize", [512, 4096])
def test_random_log_replays_like_a_model(tmp_path, sectorsize):
    rnd = random.Random(sectorsize)
    nsect = 256
    model = bytearray(b"\x55" * (nsect * sectorsize))
    entries = []
    for i in range(400):
        r = rnd.random()
        if r < 0.7:
            # runs of adjacent writes exercise the coalesced writes
            start = rnd.randrange(nsect - 8) if r < 0.5 or not entries else min(
                nsect - 8, entries[-1][0] + max(entries[-1][1], 1))
            n = rnd.randint(1, 8)
            data = bytes(rnd.getrandbits(8) for _ in range(16)) * (n * sectorsize // 16)
            entries.append((start, n, rnd.choice([0, lw.FUA, lw.METADATA]), data))
            model[start * sectorsize:(start + n) * sectorsize] = data
        elif r < 0.8:
            start, n = rnd.randrange(nsect - 8), rnd.randint(1, 8)
            entries.append((start, n, lw.DISCARD, b""))
            model[start * sectorsize:(start + n) * sectorsize] = bytes(n * sectorsize)
        elif r < 0.9:
            entries.append((0, 0, lw.FLUSH, b""))
        else:
            entries.append((0, 0, lw.MARK, "m%d" % i))
    p = tmp_path / "log"
    p.write_bytes(lw.pack_log(entries, sectorsize))
    img = tmp_path / "img"
    img.write_bytes(b"\x55" * (nsect * sectorsize))
    assert run(["--log", p, "--replay", img]) == (0, "", "")
    assert img.read_bytes() == bytes(model)


def test_golden_kernel_log_replays(tmp_path):
    path = golden_path("lw-log-first-64k.bin")
    img = image(tmp_path, fill=b"\xee", size=128 * S)
    assert run(["--log", path]) == (0, "Log version=1, sectorsize=512, entries=9\n", "")
    assert run(["--log", path, "--find", "--end-mark", "mymark"]) == (0, "2@12\n", "")
    assert run(["--log", path, "--find", "--end-mark", "second"]) == (0, "6@32\n", "")
    assert run(["--log", path, "--find", "--end-mark", "a" * 398]) == (0, "7@33\n", "")
    assert run(["--log", path, "--find", "--end-mark", "dm-log-writes-end"]) == (0, "8@34\n", "")
    rc, out, _ = run(["--log", path, "--replay", img, "-v"])
    assert rc == 0 and len(out.splitlines()) == 9
    data = open(img, "rb").read()
    assert data[:4096] == b"HELLO-LOG-WRITES-0001".ljust(4096, b"\0")
    assert data[64 * S:80 * S] == bytes(16 * S)
    assert data[4096:64 * S] == b"\xee" * (64 * S - 4096)


def test_module_entry_point(log7):
    out = subprocess.run([sys.executable, "-m", "dmctl.tools.replay_log", "--log", log7,
                          "--num-entries"], cwd=REPO, capture_output=True)
    assert (out.returncode, out.stdout, out.stderr) == (0, b"7\n", b"")


def test_write_error_reported_at_the_entry_c_would_stop_at(tmp_path, monkeypatch):
    """Coalesced writes fail as a batch; the error still names the right entry and the
    -v lines of later entries (never reached by the C tool) are not printed."""
    p = tmp_path / "log"
    p.write_bytes(lw.pack_log([(i, 1, 0, bytes([65 + i]) * S) for i in range(6)]))
    img = image(tmp_path)
    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):
        if offset <= 2 * S < offset + len(data):
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data, offset)

    def pwritev(fd, bufs, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "pwritev", pwritev)
    rc, out, err = run(["--log", p, "--replay", img, "-v"])
    assert (rc, err) == (1, "Error writing data: 28\n")
    assert out == "".join("replaying %d@%d: sector %d, size 512, flags 0x0(NONE)\n"
                          % (i, 2 + 2 * i, i) for i in range(3))
    with open(img, "rb") as f:
        assert f.read(3 * S) == b"A" * S + b"B" * S + bytes(S)


def test_seek_errors_from_absurd_sizes(tmp_path):
    raw = bytearray(lw.pack_log(ORACLE7))
    raw[S + 8:S + 16] = (1 << 54).to_bytes(8, "little")   # size 2**63: a negative off_t
    p = tmp_path / "l"
    p.write_bytes(bytes(raw))
    assert run(["--log", p, "--find", "--next-flush"]) == (255, "", "Error seeking in log: 22\n")
    assert run(["--log", p, "--start-entry", "1"]) == (1, "", "Error seeking in file: 22\n")
    img = image(tmp_path)
    assert run(["--log", p, "--replay", img, "--start-sector", str(1 << 60)]) == (
        1, "", "Error seeking in log: 22\n")


@pytest.mark.parametrize("window", [3 * S, 10 * S + 7, 1 << 16])
def test_small_read_windows_give_the_same_replay(tmp_path, monkeypatch, window):
    """The log is read through a reused window; refills must not corrupt headers (marks
    are compared after their data was read) nor batched writes."""
    monkeypatch.setattr(replay_log, "_WINDOW", window)
    rnd = random.Random(window)
    model = bytearray(64 * S)
    entries = []
    for i in range(120):
        n = rnd.randint(1, 12)
        start = rnd.randrange(64 - n)
        data = bytes([i % 251 + 1]) * (n * S)
        entries.append((start, n, 0, data))
        if i < 100:
            model[start * S:(start + n) * S] = data
        if i % 10 == 9:
            entries.append((0, 0, lw.MARK, "mark%d" % i))
    p = tmp_path / "log"
    p.write_bytes(lw.pack_log(entries))
    img = image(tmp_path, size=64 * S)
    rc, out, err = run(["--log", p, "--replay", img, "--end-mark", "mark99"])
    assert (rc, out, err) == (0, "", "")
    with open(img, "rb") as f:
        assert f.read() == bytes(model)
    rc, out, _ = run(["--log", p, "--replay", img, "--end-mark", "mark99", "-v"])
    assert out.splitlines()[-1].startswith("replaying 109@")
