"""Helpers shared by the host tests (a module of its own: several test directories have
a conftest.py, so `from conftest import ...` would be ambiguous)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")


def golden(name):
    """Contents of a golden capture, or None when it does not exist (for captures that
    are optional, e.g. a command's stderr; see golden_path for required ones)."""
    p = os.path.join(GOLDEN, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read()


def golden_path(name):
    """Path of a golden capture in tests/golden that a test needs: a missing capture
    fails the test (never a skip: the captures are part of the repository)."""
    p = os.path.join(GOLDEN, name)
    assert os.path.isfile(p), "golden capture %s is missing from %s" % (name, GOLDEN)
    return p


def need_golden(name, binary=False):
    """Contents of a golden capture that must exist (see golden_path)."""
    with open(golden_path(name), "rb" if binary else "r") as f:
        return f.read()


# dmsetup query commands captured on the golden "generic" state (empty1, lin1, multi, ro1,
# stack1): (golden file, argv).  Shared by the report tests and the CLI tests.
GENERIC_QUERIES = [
    ("generic-info-all.txt", ["info"]),
    ("generic-info-c-all.txt", ["info", "-c"]),
    ("generic-info-C-all.txt", ["info", "-C"]),
    ("generic-info-c-noheadings.txt", ["info", "-c", "--noheadings"]),
    ("generic-info-c-fields.txt", ["info", "-c", "-o",
                                   "name,uuid,major,minor,attr,open,segments,events,"
                                   "tables_loaded,suspended,readonly,devno,blkdevname"]),
    ("generic-info-c-separator.txt", ["info", "-c", "--separator", ",", "-o", "name,attr,devno"]),
    ("generic-info-c-nameprefixes.txt", ["info", "-c", "--nameprefixes", "--noheadings",
                                         "-o", "name,attr"]),
    ("generic-info-c-sort.txt", ["info", "-c", "-O", "-name"]),
    ("generic-info-c-select.txt", ["info", "-c", "-S", "name=~lin"]),
    ("generic-info-c-deps.txt", ["info", "-c", "-o",
                                 "name,devnos_used,blkdevs_used,names_using_dev,device_ref_count"]),
    ("generic-deps-all.txt", ["deps"]),
    ("generic-deps-devname.txt", ["deps", "-o", "devname"]),
    ("generic-table-all.txt", ["table"]),
    ("generic-table-concise.txt", ["table", "--concise"]),
    ("generic-table-showkeys.txt", ["table", "--showkeys"]),
    ("generic-status-all.txt", ["status"]),
    ("generic-status-target-linear.txt", ["status", "--target", "linear"]),
    ("generic-status-target-none.txt", ["status", "--target", "era"]),
    ("generic-ls.txt", ["ls"]),
    ("generic-ls-devno.txt", ["ls", "-o", "devno"]),
    ("generic-ls-devname.txt", ["ls", "-o", "devname"]),
    ("generic-ls-blkdevname.txt", ["ls", "-o", "blkdevname"]),
    ("generic-ls-tree.txt", ["ls", "--tree", "-o", "utf"]),
    ("generic-ls-tree-ascii.txt", ["ls", "--tree", "-o", "ascii"]),
    ("generic-ls-tree-ascii-blkdevname.txt", ["ls", "--tree", "-o", "ascii,blkdevname"]),
]
