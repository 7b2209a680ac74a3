"""The era, log-writes, mirror and generic golden sections replayed in order on one
simulator per section: every row that runs one of the table-reading or lifecycle
commands (create, load, message, suspend, resume, clear, rename, remove, remove_all)
must give the captured exit code, stdout, stderr and, when it failed, the captured
kernel-log lines.  Rows of other commands (queries, writes, tools) are skipped."""

import os
import re
import shlex

import pytest

from tests.conftest import GOLDEN, golden
from tests.sim.test_cli_create import split_err
from tests.sim.test_cli_create_golden import LOOPS, _translate

MINE = {"create", "load", "reload", "message", "suspend", "resume", "clear", "rename",
        "remove", "remove_all", "wipe_table", "mangle", "wait", "mknodes"}


# Rows where the simulator's targets differ from Linux 6.1 (not the CLI's doing):
# name -> reason.  None at present.
KNOWN = {}


def _ansi_c(m):
    """bash's $'...' quoting (printf %q output) -> plain text, shell-quoted again."""
    body = m.group(1).encode("latin-1", "backslashreplace").decode("unicode_escape")
    return shlex.quote(body)


def _words(cmd):
    return shlex.split(re.sub(r"\$'((?:[^'\\]|\\.)*)'", _ansi_c, cmd))


_PIPE = re.compile(r"^printf '(.*)' \| dmsetup create (\S+)$", re.S)


def _rows(section):
    rows = []
    with open(os.path.join(GOLDEN, "INDEX-%s.tsv" % section)) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if line.startswith("#") or len(parts) != 3 or parts[0] == "name":
                continue
            name, rc, cmd = parts
            words = _words(cmd)
            if words[0] == "sh_" and len(words) == 2 and _PIPE.match(words[1]):
                text, dev = _PIPE.match(words[1]).groups()
                text = text.replace("\\n", "\n")
                rows.append((name, int(rc), ["create", dev], text))
            elif words[0] == "dmsetup" and len(words) > 1 and words[1] in MINE:
                rows.append((name, int(rc), words[1:], None))
    return rows


@pytest.mark.parametrize("section", ["era", "lw", "mirror", "generic"])
def test_golden_section_in_order(dmctl, mapper, backing, section):
    paths = [backing("loop%d.img" % i, size << 20) for i, size in enumerate(LOOPS)]
    table = "".join("%d 8 linear %s 0\n" % (8 * i, p) for i, p in enumerate(paths))
    assert dmctl("create", "register", "--table", table).rc == 0
    assert dmctl("remove", "register").rc == 0
    rows = _rows(section)
    assert rows
    failures = []
    for name, rc, argv, stdin in rows:
        if name in KNOWN:
            continue
        if stdin is not None:
            stdin = _translate([stdin], paths)[0]
        r = dmctl(*_translate(argv, paths), input=stdin)
        if "-bad-" in name and rc == 0:
            # the capture removed a wrongly accepted "bad" device again
            assert dmctl("remove", argv[1]).rc == 0
        plain, klog = split_err(r.err)
        got = (r.rc, r.out, plain)
        exp = (rc, golden(name + ".txt") or "", golden(name + ".stderr.txt") or "")
        if got != exp:
            failures.append((name, exp, got))
            continue
        dm = golden(name + ".dmesg.txt")
        if rc != 0 and dm is not None and klog != dm:
            failures.append((name, dm, klog))
    assert failures == []
