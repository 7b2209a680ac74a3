"""ls --tree: deptree linking and dmsetup's drawing/truncation."""

import pytest

from dmctl.libdm import tree as T
from dmctl.backend.base import DeviceInfo, DM_ACTIVE_PRESENT_FLAG, DM_SUSPEND_FLAG, DM_READONLY_FLAG


def mktree(devs):
    """devs: {(maj, min): (name, uuid, flags, open, [deps])}, added in name order."""
    def lookup(maj, mnr):
        d = devs.get((maj, mnr))
        if d is None:
            return None
        name, uuid, flags, opn, deps = d
        return name, uuid, DeviceInfo(name, uuid, maj, mnr, flags, opn, 0, 1), deps
    t = T.DepTree(lookup)
    for k in sorted(devs, key=lambda k: devs[k][0]):
        t.add_dev(*k)
    return t


L = DM_ACTIVE_PRESENT_FLAG

LVM = {
    (253, 4): ("vg-thin", "", L, 0, [(253, 3)]),
    (253, 3): ("vg-pool-tpool", "", L, 1, [(253, 2), (253, 1)]),
    (253, 2): ("vg-pool_tdata", "", L, 1, [(8, 2)]),
    (253, 1): ("vg-pool_tmeta", "", L, 1, [(8, 2)]),
}


def draw(devs, spec="", width=80):
    return T.render(mktree(devs), T.parse_options(spec), width).decode()


def test_reference_example_utf():
    assert draw(LVM, "utf") == (
        "vg-thin (253:4)\n"
        " \u2514\u2500vg-pool-tpool (253:3)\n"
        "    \u251c\u2500vg-pool_tdata (253:2)\n"
        "    \u2502  \u2514\u2500 (8:2)\n"
        "    \u2514\u2500vg-pool_tmeta (253:1)\n"
        "       \u2514\u2500 (8:2)\n")


def test_inverted_ascii():
    assert draw(LVM, "ascii,inverted") == (
        " (8:2)\n"
        " |-vg-pool_tdata (253:2)\n"
        " |  `-vg-pool-tpool (253:3)\n"
        " |     `-vg-thin (253:4)\n"
        " `-vg-pool_tmeta (253:1)\n"
        "    `-vg-pool-tpool (253:3)\n"
        "       `-vg-thin (253:4)\n")


def test_nodevice_hides_unnamed():
    assert draw(LVM, "ascii,nodevice") == (
        "vg-thin\n `-vg-pool-tpool\n    |-vg-pool_tdata\n    `-vg-pool_tmeta\n")


def test_attributes():
    devs = {(253, 0): ("s", "U-1", L | DM_SUSPEND_FLAG | DM_READONLY_FLAG, 3, [])}
    assert draw(devs, "ascii,active,rw,open,uuid") == "s (253:0) [SUSPENDED, RO, 3, U-1]\n"
    assert draw(devs, "ascii,uuid,nodevice") == "s [U-1]\n"


def test_truncation_at_width():
    devs = {(253, 0): ("x" * 100, "", L, 0, [])}
    out = draw(devs, "ascii")
    assert out == "x" * 79 + "...\n"
    assert draw(devs, "ascii,notrunc") == "x" * 100 + " (253:0)\n"


def test_truncation_exactly_at_width_keeps_last_char():
    # a line of exactly `width` characters is printed whole (the held char is flushed)
    devs = {(253, 0): ("y" * 72, "", L, 0, [])}     # 72 + len(" (253:0)") = 80
    assert draw(devs, "ascii") == "y" * 72 + " (253:0)\n"
    devs = {(253, 0): ("y" * 73, "", L, 0, [])}
    assert draw(devs, "ascii") == "y" * 73 + " (253:...\n"


def test_compact_and_abbreviations():
    assert draw(LVM, "as,com") == (
        "vg-thin (253:4)---vg-pool-tpool (253:3)-+-vg-pool_tdata (253:2)--- (8:2)\n"
        # dmsetup indents by each level's width + 1 plus the 2-column glyph
        "                                           `-vg-pool_tmeta (253:1)--- (8:2)\n")


def test_first_abbreviation_wins():
    o = T.parse_options("a")
    assert o.active and o.symbols is T.ASCII


def test_bad_option():
    with pytest.raises(T.TreeOptionError) as e:
        T.parse_options("ascii,bogus,utf")
    assert str(e.value) == "Tree options not recognised: bogus,utf."


def test_vt100_glyphs():
    out = draw({(253, 1): ("a", "", L, 0, [(7, 0)])}, "vt100")
    assert out == "a (253:1)\n \033(0\017mq\033(B (7:0)\n"
