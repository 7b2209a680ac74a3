"""End to end: `python -m dmctl --backend sim` query commands against golden captures
of dmsetup 1.02.185.

The golden "generic" section is rebuilt in the simulator with the same command
history (so minors, open counts and event numbers are the kernel's); seven dummy
backing files are used first so that the linear device's file becomes loop7 (7:7),
as /dev/loop7 was in the capture.
"""

import os
import subprocess
import sys

import pytest

from testlib import GENERIC_QUERIES, ROOT, golden, need_golden


class Sim:
    def __init__(self, d):
        self.dir = str(d)
        self.files = os.path.join(self.dir, "files")
        os.makedirs(self.files, exist_ok=True)

    def file(self, name, size=16 << 20):
        p = os.path.join(self.files, name)
        with open(p, "wb") as f:
            f.truncate(size)
        return p

    def __call__(self, *args, input=None, env=None):
        e = dict(os.environ)
        e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
        e["DMCTL_SIM_DIR"] = os.path.join(self.dir, "state")
        e["DMCTL_BACKEND"] = "sim"
        e.pop("DM_DEFAULT_NAME_MANGLING_MODE", None)
        if env:
            e.update(env)
        # dmctl's own commands (io, sim, ...) take no dmsetup options before them
        pre = [] if args and args[0] in ("io", "sim") else ["--backend", "sim"]
        p = subprocess.run([sys.executable, "-m", "dmctl"] + pre + list(args),
                           input=input, capture_output=True, text=True, env=e, cwd=ROOT)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, **kw):
        rc, out, err = self(*args, **kw)
        assert rc == 0, (args, out, err)
        return out


def _loop7(sim):
    """Use seven backing files so that the next one is loop7."""
    lines = "".join("%d 8 linear %s 0\n" % (i * 8, sim.file("pad%d.img" % i, 1 << 20))
                    for i in range(7))
    sim.ok("create", "pad", input=lines)
    sim.ok("remove", "pad")
    return sim.file("lin.img", 16 << 20)


@pytest.fixture(scope="module")
def generic(tmp_path_factory):
    sim = Sim(tmp_path_factory.mktemp("generic"))
    lin = _loop7(sim)
    sim.ok("create", "multi", input="0 1024 linear %s 0\n1024 1024 zero\n2048 1024 error\n" % lin)
    sim.ok("create", "lin1", "-u", "LIN-UUID-0001", "--table", "0 32768 linear %s 0" % lin)
    sim.ok("create", "empty1", "--notable")
    sim.ok("load", "empty1", "--table", "0 1024 zero")
    sim.ok("resume", "empty1")
    sim.ok("load", "lin1", "--table", "0 16384 linear %s 0" % lin)
    sim.ok("clear", "lin1")
    sim.ok("load", "lin1", "--table", "0 16384 linear %s 0" % lin)
    sim.ok("resume", "lin1")
    sim.ok("suspend", "lin1")
    sim.ok("resume", "lin1")
    sim.ok("suspend", "--noflush", "--nolockfs", "lin1")
    sim.ok("resume", "lin1")
    sim.ok("rename", "lin1", "lin1-renamed")
    sim.ok("rename", "lin1-renamed", "lin1")
    sim.ok("rename", "empty1", "--setuuid", "EMPTY-UUID-1")
    sim.ok("create", "ro1", "-r", "--table", "0 1024 zero")
    sim.ok("create", "stack1", "--table", "0 16384 linear /dev/mapper/lin1 0")
    return sim


GENERIC = GENERIC_QUERIES + [
    ("generic-splitname.txt", ["splitname", "vg-lv-layer", "LVM"]),
]


@pytest.mark.parametrize("name,argv", GENERIC, ids=[g[0] for g in GENERIC])
def test_generic(generic, name, argv):
    want = need_golden(name)
    rc, out, err = generic(*argv)
    assert (rc, out) == (0, want), err


def test_generic_default_tree_glyphs_follow_locale(generic):
    rc, out, _ = generic("ls", "--tree", env={"LC_ALL": "C.UTF-8"})
    assert out == golden("generic-ls-tree.txt")
    rc, out, _ = generic("ls", "--tree", env={"LC_ALL": "C"})
    assert out == golden("generic-ls-tree-ascii.txt")


def test_generic_info_by_devno_and_uuid(generic):
    maj = generic.ok("info", "-c", "--noheadings", "-o", "major", "lin1").strip()
    mnr = generic.ok("info", "-c", "--noheadings", "-o", "minor", "lin1").strip()
    assert (maj, mnr) == ("254", "1")
    out = generic.ok("info", "-j", maj, "-m", mnr)
    # captured before stack1 opened lin1
    want = golden("generic-info-by-devno.txt").replace("Open count:        0",
                                                       "Open count:        1")
    assert out == want
    out = generic.ok("info", "-u", "EMPTY-UUID-1")
    assert out == golden("generic-info-by-uuid.txt")


@pytest.mark.parametrize("cmd", ["info", "status", "table"])
def test_generic_nonexistent(generic, cmd):
    rc, out, err = generic(cmd, "nosuchdev")
    assert (rc, out, err) == (1, "", golden("generic-%s-nonexistent.stderr.txt" % cmd))


def test_udev_fallback_call(generic):
    out = generic.ok("info", "-j", "254", "-m", "1", "-c", "--nameprefixes", "--noheadings",
                     "--rows", "-o", "name,uuid,suspended")
    assert out == "DM_NAME='lin1'\nDM_UUID='LIN-UUID-0001'\nDM_SUSPENDED='Active'\n"


def test_udev_splitname_call(generic):
    out = generic.ok("splitname", "--nameprefixes", "--noheadings", "--rows", "vg1-test")
    assert out == "DM_VG_NAME='vg1'\nDM_LV_NAME='test'\nDM_LV_LAYER=''\n"


def test_ls_target_quirk_and_exec(generic, tmp_path):
    assert generic.ok("ls", "--target", "zero") == "empty1\t(254, 2)\nmulti\t(254, 0)\nro1\t(254, 3)\n"
    out = generic.ok("ls", "--target", "error", "--exec", "echo X")
    assert out == "X /dev/mapper/multi\n"


def test_select_runs_other_command(generic):
    assert generic.ok("table", "-S", "open>0") == "lin1: 0 16384 linear 7:7 0\n"
    assert generic.ok("status", "-S", "name=ro1||name=empty1") == \
        "empty1: 0 1024 zero \nro1: 0 1024 zero \n"


def test_verbose_table_and_deps(generic):
    out = generic.ok("table", "-v", "ro1")
    assert out == ("Name:              ro1\nState:             ACTIVE (READ-ONLY)\n"
                   "Read Ahead:        256\nTables present:    LIVE\nOpen count:        0\n"
                   "Event number:      0\nMajor, minor:      254, 3\nNumber of targets: 1\n\n"
                   "0 1024 zero \n")


def test_json_outputs(generic):
    import json
    info = json.loads(generic.ok("info", "--json", "lin1"))
    assert info[0]["name"] == "lin1" and info[0]["open_count"] == 1
    st = json.loads(generic.ok("status", "--json", "multi"))
    assert [t["target_type"] for t in st[0]["targets"]] == ["linear", "zero", "error"]
    assert st[0]["targets"][0]["fields"] == {}
    tb = json.loads(generic.ok("table", "--json", "lin1"))
    assert tb[0]["targets"][0]["fields"]["offset"] == 0
    assert tb[0]["targets"][0]["fields"]["major"] == 7
    ls = json.loads(generic.ok("ls", "--json"))
    assert [d["name"] for d in ls] == ["empty1", "lin1", "multi", "ro1", "stack1"]
    deps = json.loads(generic.ok("deps", "--json", "stack1"))
    assert deps == [{"name": "stack1", "deps": [{"major": 254, "minor": 1, "name": "lin1",
                                                 "blkdevname": "dm-1"}]}]
    tg = json.loads(generic.ok("targets", "--json"))
    assert {"name": "linear", "version": "1.4.0"} in tg
    rows = json.loads(generic.ok("info", "-c", "--json", "-o", "name,open"))
    assert rows[1] == {"name": "lin1", "open": 1}


def test_version_simulated(generic):
    from dmctl import LIBRARY_VERSION
    assert generic.ok("version") == ("Library version:   %s\nDriver version:    4.47.0 (simulated)\n"
                                     % LIBRARY_VERSION)


# What no query command's start-up may import (issue 13; the kernel path's list, with
# sqlite3 and the simulator, is tests/unit/test_kernel_backend.py's STARTUP_FORBIDDEN).
STARTUP_FORBIDDEN = ("re", "enum", "pickle", "datetime", "pathlib", "json", "click", "tqdm",
                     "pyudev", "ctypes", "subprocess", "dataclasses", "typing", "tabulate",
                     "importlib", "warnings", "sqlite3", "dmctl.libdm.report", "dmctl.libdm.tree")
# ...except what the simulator's own modules (dmctl/sim) still import today; shrink
# these as the simulator gets lazier:
# - sqlite3's package imports datetime (its default adapters);
# - tables are stored pickled (pickle imports re, re imports enum), and each command's
#   step of background work loads every device's table; loading a target class goes
#   through importlib.util (dmctl.sim.targets.base), whose package imports warnings.
SIM_STORE = ("sqlite3", "datetime")
SIM_TABLES = SIM_STORE + ("pickle", "re", "enum", "importlib", "warnings")
# `version` asks the simulator nothing it keeps: it opens no store, so no sqlite3 either
_SIM_STARTUP = [(["version"], ()), (["ls"], SIM_TABLES), (["info"], SIM_TABLES),
                (["info", "lin1"], SIM_TABLES), (["status"], SIM_TABLES),
                (["status", "multi"], SIM_TABLES), (["table"], SIM_TABLES),
                (["table", "lin1"], SIM_TABLES)]


@pytest.mark.parametrize("argv,sim_needs", _SIM_STARTUP, ids=[" ".join(a) for a, _ in
                                                              _SIM_STARTUP])
def test_no_heavy_imports(generic, argv, sim_needs):
    """`dmctl --backend sim version|ls|info|status|table` in a `python -S` child (no
    site: an editable install's .pth would import re and pathlib first and hide a
    regression) imports none of STARTUP_FORBIDDEN beyond what the simulator needs."""
    code = ("import sys; from dmctl.cli.main import main; rc = main(sys.argv[2:]);"
            "sys.stdout.flush(); sys.stderr.write('RC %d IMPORTED %s\\n' % (rc, ','.join("
            "m for m in sys.argv[1].split(',') if m in sys.modules)))")
    e = dict(os.environ, PYTHONPATH=ROOT, DMCTL_SIM_DIR=os.path.join(generic.dir, "state"))
    p = subprocess.run([sys.executable, "-S", "-c", code, ",".join(STARTUP_FORBIDDEN),
                        "--backend", "sim"] + argv, capture_output=True, text=True, env=e,
                       cwd=generic.dir)
    assert p.returncode == 0 and p.stdout, p.stderr
    assert p.stdout == generic.ok(*argv)
    rc, _, imported = p.stderr.rpartition("RC ")[2].partition(" IMPORTED ")
    assert rc == "0", p.stderr
    assert set(imported.split()[0].split(",") if imported.strip() else ()) <= set(sim_needs), \
        (argv, imported)


def test_name_mangling(tmp_path):
    sim = Sim(tmp_path)
    sim.ok("create", "a b", "-u", "U 1", "--table", "0 8 zero")
    assert sim.ok("ls") == "a b\t(254:0)\n"
    assert sim.ok("--manglename", "none", "ls") == "a\\x20b\t(254:0)\n"
    fields = ["info", "-c", "--noheadings", "-o",
              "name,mangled_name,unmangled_name,uuid,mangled_uuid,unmangled_uuid"]
    assert sim.ok(*fields) == "a b:a\\x20b:a b:U 1:U\\x201:U 1\n"
    assert sim.ok("--manglename", "none", *fields) == \
        "a\\x20b:a\\x20b:a b:U\\x201:U\\x201:U 1\n"
    assert sim.ok("--manglename", "hex", *fields) == "a b:a\\x20b:a b:U 1:U\\x201:U 1\n"
    assert sim.ok("info", "-c", "--noheadings", "-o", "name", "a\\x20b") == "a b\n"
    assert sim.ok("table", "a b") == "0 8 zero \n"
    rc, out, err = sim("table", "a\\x20b c")
    assert rc == 1 and "contains mixed mangled and unmangled characters" in err


def test_tree_glyphs_c_locale_despite_python_coercion(generic):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k != "LANG"}
    env.update(PYTHONPATH=ROOT, DMCTL_SIM_DIR=os.path.join(generic.dir, "state"))
    p = subprocess.run([sys.executable, "-m", "dmctl", "--backend", "sim", "ls", "--tree"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert p.stdout == golden("generic-ls-tree-ascii.txt")
    env["LANG"] = "C.UTF-8"
    p = subprocess.run([sys.executable, "-m", "dmctl", "--backend", "sim", "ls", "--tree"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert p.stdout == golden("generic-ls-tree.txt")
