"""libdm's name mangling and LVM name splitting."""

import pytest

from dmctl.libdm import names as N


@pytest.mark.parametrize("raw,mangled", [
    ("plain-name_1.2:3=4@5#6+7", "plain-name_1.2:3=4@5#6+7"),
    ("a b", "a\\x20b"),
    ("x/y", "x\\x2fy"),
    ("caf\u00e9", "caf\\xc3\\xa9"),
])
def test_mangle_auto_roundtrip(raw, mangled):
    assert N.mangle(raw, "auto") == mangled
    assert N.unmangle(mangled) == raw


def test_auto_keeps_already_mangled():
    assert N.mangle("a\\x20b", "auto") == "a\\x20b"


def test_hex_mangles_backslash():
    assert N.mangle("a\\x20b", "hex") == "a\\x5cx20b"


def test_mixed_is_refused_in_auto():
    with pytest.raises(N.ManglingError) as e:
        N.mangle("a\\x20b c", "auto")
    assert str(e.value) == ('The name "a\\x20b c" contains mixed mangled and unmangled '
                            "characters or it's already mangled improperly.")
    with pytest.raises(N.ManglingError):
        N.mangle("a b\\x20c", "auto", "UUID")


def test_double_mangled_message():
    with pytest.raises(N.ManglingError) as e:
        N.check_multiple_mangled("a\\x5cx20b")
    assert "seems to be mangled more than once" in str(e.value)


def test_too_long():
    with pytest.raises(N.ManglingError) as e:
        N.mangle(" " * 40, "auto")
    assert str(e.value).startswith("Mangled form of the name too long for")


def test_unmangle_strict_blacklisted():
    with pytest.raises(N.ManglingError) as e:
        N.unmangle("a b\\x20", "auto")
    assert "should be mangled but it contains blacklisted characters" in str(e.value)
    assert N.unmangle("a b\\x20", "none") == "a b "


@pytest.mark.parametrize("name,parts", [
    ("vg-lv-layer", ("vg", "lv", "layer")),
    ("vg--a-lv--b-tpool", ("vg-a", "lv-b", "tpool")),
    ("vg1-test", ("vg1", "test", "")),
    ("vg", ("vg", "", "")),
    ("vg-", ("vg-", "", "")),
    ("a-b-c-d", ("a", "b", "c")),
    ("", ("", "", "")),
])
def test_split_lvm_name(name, parts):
    assert N.split_lvm_name(name) == parts


def test_split_name_subsystems():
    s = N.split_name("LVM-abc", "vg-lv", "-")
    assert (s.subsystem, s.vg_name, s.lv_name, s.lv_layer) == ("LVM", "vg", "lv", "")
    s = N.split_name("CRYPT-LUKS2-x", "vg-lv", "-")
    assert (s.subsystem, s.vg_name) == ("CRYPT", "")
    s = N.split_name("nodash", "vg-lv", "-")
    assert s.subsystem == ""
    s = N.split_name("LVM", "vg-lv-l", "")
    assert (s.subsystem, s.lv_layer) == ("LVM", "l")
    s = N.split_name("other", "vg-lv", "")
    assert (s.subsystem, s.vg_name) == ("other", "")


def test_check_name():
    assert N.check_name("a/b") == 'Name "a/b" invalid. It contains "/".'
    assert N.check_name("x" * 128) == 'Name "%s" too long.' % ("x" * 128)
    assert N.check_name("ok") is None
