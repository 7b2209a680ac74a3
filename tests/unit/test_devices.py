"""dmctl.libdm.devices: a user's device argument -> the device (dmsetup's
_set_task_device, libdm's dm_task_set_name), without a backend."""

import os

import pytest

from dmctl.libdm import devices as D
from dmctl.records import DevId


@pytest.fixture
def devdir(tmp_path):
    """A DM_DEV_DIR whose mapper/ holds "lv0" with /dev/null's device number (a
    symlink: stat() follows it, as it follows udev's /dev/mapper links)."""
    d = tmp_path / "dev"
    (d / "mapper").mkdir(parents=True)
    os.symlink("/dev/null", str(d / "mapper" / "lv0"))
    return str(d) + "/"


def _err(fn, *a, **kw):
    with pytest.raises(D.DeviceArgError) as e:
        fn(*a, **kw)
    return str(e.value)


def test_names_are_mangled_for_the_kernel():
    assert D.set_name("plain") == "plain"
    assert D.set_name("a b") == "a\\x20b"
    assert D.set_name("a b", "none") == "a b"
    assert D.set_name("a b", "hex") == "a\\x20b"
    assert D.set_uuid("U 1") == "U\\x201"
    assert _err(D.set_name, "a\\x20 b") == (
        'The name "a\\x20 b" contains mixed mangled and unmangled characters '
        "or it's already mangled improperly.")


def test_name_length_and_slash_rules():
    assert _err(D.set_name, "n" * 128) == 'Name "%s" too long.' % ("n" * 128)
    assert D.set_name("n" * 127) == "n" * 127
    assert _err(D.set_name, "/dev/mapper/x", creating=True) == \
        'Name "/dev/mapper/x" invalid. It contains "/".'


def test_paths_resolve_through_the_device_number(devdir, tmp_path):
    # the node itself, its name under mapper/, another node with the same number
    assert D.set_name(devdir + "mapper/lv0", dev_dir=devdir) == "lv0"
    other = str(tmp_path / "elsewhere")
    os.symlink("/dev/null", other)
    assert D.set_name(other, dev_dir=devdir) == "lv0"
    # vg/lv: relative, one "/", looked up below DM_DEV_DIR
    os.mkdir(devdir + "vg")
    os.symlink("/dev/null", devdir + "vg/lv")
    assert D.set_name("vg/lv", dev_dir=devdir) == "lv0"
    assert _err(D.set_name, "vg/none", dev_dir=devdir) == "Device vg/none not found"
    assert _err(D.set_name, "/no/such", dev_dir=devdir) == "Device /no/such not found"


def test_nodeless_backend_names_mapper_paths(devdir):
    calls = []

    def nodeless():
        calls.append(1)
        return True
    assert D.set_name(devdir + "mapper/sim0", dev_dir=devdir, nodeless=nodeless) == "sim0"
    assert _err(D.set_name, devdir + "mapper/sim0", dev_dir=devdir,
                nodeless=lambda: False) == "Device %smapper/sim0 not found" % devdir
    # only asked when the path does not exist
    calls.clear()
    assert D.set_name(devdir + "mapper/lv0", dev_dir=devdir, nodeless=nodeless) == "lv0"
    assert calls == []


def test_resolve_takes_the_argument_then_uuid_then_devno():
    assert D.resolve("a", uuid="U", major=254, minor=0) == DevId(name="a")
    assert D.resolve(uuid="U 1", major=254, minor=0) == DevId(uuid="U\\x201")
    assert D.resolve(major=254, minor=0) == DevId(major=254, minor=0)
    assert D.resolve() is None
    assert D.resolve(major=254) is None
