"""Query commands on era, log-writes and mirror devices in the simulator, against the
golden captures (loop numbers reproduced by using the backing files in the captured
order: DEVICES-*.txt)."""

import json

import pytest

from test_cli_query import Sim, golden

SIZES = [("orig", 64), ("meta", 8), ("lwdata", 16), ("lwlog", 32), ("leg1", 8), ("leg2", 8),
         ("mlog", 1), ("lin", 16)]


def _loops(sim):
    """Backing files numbered like the capture's loop0..loop7."""
    paths = [sim.file("%s.img" % n, mib << 20) for n, mib in SIZES]
    sim.ok("create", "pad", input="".join("%d 8 linear %s 0\n" % (i * 8, p)
                                          for i, p in enumerate(paths)))
    sim.ok("remove", "pad")
    return dict(zip([n for n, _ in SIZES], paths))


@pytest.fixture(scope="module")
def era(tmp_path_factory):
    sim = Sim(tmp_path_factory.mktemp("era"))
    f = _loops(sim)
    rc, out, err = sim("create", "era1", "-u", "ERA-UUID-0001", "--table",
                       "0 131072 era %s %s 128" % (f["meta"], f["orig"]))
    assert rc == 0, "simulator cannot create era: %s" % err
    return sim


ERA = [
    ("era-status.txt", ["status", "era1"]),
    ("era-table.txt", ["table", "era1"]),
    ("era-table-showkeys.txt", ["table", "--showkeys", "era1"]),
    ("era-info.txt", ["info", "era1"]),
    ("era-info-c.txt", ["info", "-c", "era1"]),
    ("era-status-target.txt", ["status", "--target", "era"]),
    ("era-table-target.txt", ["table", "--target", "era"]),
    ("era-ls-target.txt", ["ls", "--target", "era"]),
    ("era-deps.txt", ["deps", "era1"]),
    ("era-deps-devname.txt", ["deps", "-o", "devname", "era1"]),
    ("era-deps-blkdevname.txt", ["deps", "-o", "blkdevname", "era1"]),
]


@pytest.mark.parametrize("name,argv", ERA, ids=[e[0] for e in ERA])
def test_era(era, name, argv):
    rc, out, err = era(*argv)
    assert (rc, out) == (0, golden(name)), err


def test_era_json(era):
    st = json.loads(era.ok("status", "--json", "era1"))
    f = st[0]["targets"][0]["fields"]
    assert f["metadata_block_size"] == 8 and f["metadata_snap"] is None
    tb = json.loads(era.ok("table", "--json", "era1"))
    f = tb[0]["targets"][0]["fields"]
    assert f["metadata_dev"]["device"] == "7:1" and f["block_size"] == 128


@pytest.fixture(scope="module")
def lw(tmp_path_factory):
    sim = Sim(tmp_path_factory.mktemp("lw"))
    f = _loops(sim)
    rc, out, err = sim("create", "lw", "-u", "LW-UUID-0001", "--table",
                       "0 32768 log-writes %s %s" % (f["lwdata"], f["lwlog"]))
    assert rc == 0, "simulator cannot create log-writes: %s" % err
    return sim


LW = [
    ("lw-status-initial.txt", ["status", "lw"]),
    ("lw-table.txt", ["table", "lw"]),
    ("lw-info.txt", ["info", "lw"]),
    ("lw-deps.txt", ["deps", "lw"]),
]


@pytest.mark.parametrize("name,argv", LW, ids=[e[0] for e in LW])
def test_lw(lw, name, argv):
    rc, out, err = lw(*argv)
    assert (rc, out) == (0, golden(name)), err


def test_lw_json(lw):
    st = json.loads(lw.ok("status", "--json", "lw"))
    assert st[0]["targets"][0]["fields"] == {"logged_entries": 0,
                                             "highest_allocated_sector": 0,
                                             "logging_enabled": True}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    sim = Sim(tmp_path_factory.mktemp("mirror"))
    f = _loops(sim)
    rc, out, err = sim("create", "m2", "-u", "MIRROR-UUID-0002", "--table",
                       "0 16384 mirror disk 2 %s 1024 2 %s 0 %s 0"
                       % (f["mlog"], f["leg1"], f["leg2"]))
    assert rc == 0, "simulator cannot create mirror: %s" % err
    return sim


MIRROR = [
    ("mirror-disk-table.txt", ["table", "m2"]),
    ("mirror-disk-info-c.txt", ["info", "-c", "m2"]),
    ("mirror-disk-deps.txt", ["deps", "m2"]),
    ("mirror-disk-ls-tree-ascii.txt", ["ls", "--tree", "-o", "ascii"]),
    ("mirror-disk-ls-tree-utf.txt", ["ls", "--tree", "-o", "utf"]),
    ("mirror-disk-ls-tree-inverted.txt", ["ls", "--tree", "-o", "utf,inverted"]),
    ("mirror-disk-ls-tree-compact-ascii.txt", ["ls", "--tree", "-o", "ascii,compact"]),
    ("mirror-disk-ls-tree-full-ascii.txt", ["ls", "--tree", "-o",
                                            "ascii,device,active,open,rw,uuid"]),
]


@pytest.mark.parametrize("name,argv", MIRROR, ids=[e[0] for e in MIRROR])
def test_mirror(mirror, name, argv):
    rc, out, err = mirror(*argv)
    assert (rc, out) == (0, golden(name)), err


def test_mirror_json(mirror):
    st = json.loads(mirror.ok("status", "--json", "m2"))
    f = st[0]["targets"][0]["fields"]
    assert f["nr_mirrors"] == 2 and f["log"]["type"] == "disk"
    assert [leg["device"] for leg in f["legs"]] == ["7:4", "7:5"]
    tb = json.loads(mirror.ok("table", "--json", "m2"))
    f = tb[0]["targets"][0]["fields"]
    assert f["log"]["region_size"] == 1024 and f["log"]["device"]["device"] == "7:6"
    assert not f["handle_errors"]
