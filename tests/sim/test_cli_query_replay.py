"""Replay the captured dmsetup sessions (golden INDEX-<section>.tsv) in the simulator
and compare every query command's stdout, stderr and exit code with the capture
(other commands: their exit code).

Loop devices become backing files registered in the captured order (loop0..loop7);
``dd ... oflag=direct`` becomes simulator I/O (one write per block, then a flush);
strace/env-wrapped dmsetup runs are replayed unchecked.  Commands the simulator
cannot replay (shell pipelines holding a device open, guarded writes to a failing
mirror) are skipped; after one of those changed device state, the section's later
status outputs are not compared.
"""

import shlex

import pytest

from test_cli_query import Sim, golden
from testlib import golden_path

QUERY = {"info", "ls", "deps", "status", "table", "targets", "target-version", "splitname"}
SIZES = [64, 8, 16, 32, 8, 8, 1, 16]     # MiB of loop0..loop7 (DEVICES-*.txt)

# outputs that depend on things outside the device-mapper state
SKIP_COMPARE = {
    "generic-info-notable",      # stderr: libdm's BLKRAGET on a missing /dev node
}


def _rows(section):
    rows = []
    with open(golden_path("INDEX-%s.tsv" % section)) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#") or line.startswith("name\t"):
                continue
            name, rc, cmd = line.split("\t", 2)
            rows.append((name, int(rc), cmd))
    return rows


def _command_word(argv):
    from dmctl import getopt as g
    from dmctl.cli.main import SHORTOPTS, _LONG
    try:
        _opts, args = g.getopt_long("dmsetup", list(argv), SHORTOPTS, _LONG)
    except g.GetoptError:
        return None
    return args[0] if args else None


def _size(v):
    mult = {"k": 1024, "K": 1024, "M": 1 << 20}
    return int(v[:-1]) * mult[v[-1]] if v[-1] in mult else int(v)


def _dd(sim, args):
    """``dd ... of=/dev/mapper/X bs= count= seek= oflag=direct conv=fsync`` as one
    direct write per block then a flush (what the kernel saw)."""
    kv = dict(a.split("=", 1) for a in args if "=" in a)
    of = kv.get("of", "")
    if not of.startswith("/dev/mapper/") or "direct" not in kv.get("oflag", ""):
        return False
    dev = of[len("/dev/mapper/"):]
    bs = _size(kv.get("bs", "512"))
    count = int(kv.get("count", "1"))
    seek = int(kv.get("seek", "0"))
    for i in range(count):
        rc, _o, _e = sim("io", "write", dev, str((seek + i) * bs // 512), "--pattern", "0x5a",
                         "--sectors", str(bs // 512))
        if rc:
            return False
    if "fsync" in kv.get("conv", ""):
        rc, _o, _e = sim("io", "flush", dev)
        if rc:
            return False
    return True


def replay(sim, section):
    rows = _rows(section)
    loops = [sim.file("loop%d.img" % i, mib << 20) for i, mib in enumerate(SIZES)]
    sim.ok("create", "pad", input="".join("%d 8 linear %s 0\n" % (i * 8, p)
                                          for i, p in enumerate(loops)))
    sim.ok("remove", "pad")

    def subst(word):
        for i in range(8):
            word = word.replace("/dev/loop%d" % i, loops[i])
        return word

    diverged = False
    bad = []
    compared = 0
    for name, want_rc, cmd in rows:
        if cmd.startswith("$") or "$'" in cmd:
            continue
        try:
            words = shlex.split(cmd)
        except ValueError:
            continue
        if words[:1] == ["sh_"] and "| dd " in " ".join(words[1:]):
            inner = " ".join(words[1:])
            if not _dd(sim, inner.split("| dd ", 1)[1].split()):
                diverged = True
            continue
        if words[:1] == ["sh_"]:
            inner = " ".join(words[1:])
            if name.endswith("-ACCEPTED"):
                # the capture showed table+status of a bad table that was accepted,
                # then removed the device again
                dev = inner.split(";")[0].split()[-1]
                sim("remove", dev)
            elif "| dmsetup create multi" in inner:
                sim.ok("create", "multi", input="0 1024 linear %s 0\n1024 1024 zero\n"
                       "2048 1024 error\n" % loops[7])
            elif "dd " in inner or "printf" in inner:
                diverged = True
            continue
        if words[0] in ("strace", "env") and "dmsetup" in words:
            # traced/env-wrapped runs change state too: replay them, unchecked
            argv = [subst(w) for w in words[words.index("dmsetup") + 1:]]
            sim(*argv)
            continue
        if words[0] == "dd":
            if not _dd(sim, words[1:]):
                diverged = True
            continue
        if words[0] == "status_suspended":
            # the capture's wrapper: status on a suspended device, with its rc
            rc, out, err = sim("status", words[1])
            if section == "era" or diverged:
                continue        # era's INFO status blocks in the kernel until resume
            compared += 1
            got = "dmsetup status rc=%d; its output:\n%s%s" % (rc, err, out)
            if got != golden(name + ".txt"):
                bad.append("%s: got %r; capture %r" % (name, got, golden(name + ".txt")))
            continue
        if words[:1] == ["sh_"] or words[0] != "dmsetup":
            if words[0] == "write_guarded":
                diverged = True
            continue
        argv = [subst(w) for w in words[1:]]
        rc, out, err = sim(*argv)
        word = _command_word(argv)
        if word not in QUERY or name in SKIP_COMPARE:
            if rc != want_rc:
                bad.append("%s: rc %d, capture %d (%s)" % (name, rc, want_rc, err.strip()))
            continue
        if diverged and word == "status":
            continue
        compared += 1
        want_out = golden(name + ".txt") or ""
        want_err = golden(name + ".stderr.txt") or ""
        if (rc, out, err) != (want_rc, want_out, want_err):
            bad.append("%s: got rc=%d out=%r err=%r; capture rc=%d out=%r err=%r"
                       % (name, rc, out, err, want_rc, want_out, want_err))
    return compared, bad


@pytest.mark.parametrize("section", ["generic", "era", "lw", "mirror", "env"])
def test_replay_section(tmp_path, section):
    sim = Sim(tmp_path)
    compared, bad = replay(sim, section)
    assert compared > 0
    assert not bad, "\n".join(bad)
