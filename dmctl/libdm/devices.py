"""A user's device argument -> the device a request names: the one place that does it.

dmsetup's ``_set_task_device`` with libdm's ``dm_task_set_name``, ``dm_task_set_uuid``
and ``dm_task_set_major``/``_minor`` (1.02.185):

* an explicit argument first: a dm name (mangled to the kernel's form), or a path
  (anything containing ``/``): ``/dev/mapper/NAME``, ``/dev/dm-N``, any block device
  node, or ``vg/lv`` (relative, exactly one ``/``: ``$DM_DEV_DIR/vg/lv``).  A path is
  ``stat()``-ed and mapped back to the dm name through the entry of
  ``$DM_DEV_DIR/mapper`` with the same ``st_rdev`` (device number);
* else ``-u UUID`` (mangled);
* else ``-j MAJOR -m MINOR``.

Library code: nothing here prints.  A bad argument raises DeviceArgError whose text is
libdm's message; the caller prints it.
"""

import os

from dmctl.constants import DM_NAME_LEN
from dmctl.libdm import names
from dmctl.records import DevId
from dmctl.errors import DmctlError


class DeviceArgError(DmctlError):
    """A device argument names no device; ``str(e)`` is libdm's message."""


def _kernel_form(s, mode, what):
    """A user-supplied name/uuid in the kernel's (mangled) form for mangling ``mode``
    (``none``/``auto``/``hex``)."""
    try:
        return names.kernel_form(s, mode, what)
    except names.ManglingError as e:
        raise DeviceArgError(str(e))


def name_from_path(path, dev_dir="/dev/", nodeless=None):
    """libdm's ``_dm_task_set_name_from_path``: the dm name of the device node at
    ``path``.  ``nodeless()`` (called only when needed) says the backend has no device
    nodes (the simulator): ``$DM_DEV_DIR/mapper/NAME`` then names NAME."""
    base = path.rsplit("/", 1)[1]
    mapper_dir = dev_dir + "mapper"
    not_found = "Device %s not found" % path
    try:
        st1 = os.stat(path)
    except OSError:
        if (os.path.dirname(os.path.normpath(path)) == os.path.normpath(mapper_dir)
                and nodeless is not None and nodeless()):
            return base
        if len(path) < 3 or path.startswith("/") or path.count("/") != 1:
            raise DeviceArgError(not_found)
        try:
            st1 = os.stat(os.path.join(mapper_dir, "..", path))
        except OSError:
            raise DeviceArgError(not_found)
    else:
        try:
            if os.stat(os.path.join(mapper_dir, base)).st_rdev == st1.st_rdev:
                return base
        except OSError:
            pass
    try:
        entries = os.listdir(mapper_dir)
    except OSError:
        entries = []
    for entry in entries:
        try:
            if os.stat(os.path.join(mapper_dir, entry)).st_rdev == st1.st_rdev:
                return entry
        except OSError:
            continue
    raise DeviceArgError(not_found)


def _check_length(name):
    if len(name.encode("utf-8", "surrogateescape")) >= DM_NAME_LEN:
        raise DeviceArgError('Name "%s" too long.' % name)


def set_name(arg, mode="auto", dev_dir="/dev/", creating=False, nodeless=None):
    """``dm_task_set_name``: a name or a path -> the kernel (mangled) name."""
    if "/" in arg:
        if creating:
            raise DeviceArgError('Name "%s" invalid. It contains "/".' % arg)
        name = name_from_path(arg, dev_dir, nodeless)
        _check_length(name)
        return name
    _check_length(arg)
    return _kernel_form(arg, mode, "name")


def set_uuid(uuid, mode="auto"):
    """``dm_task_set_uuid`` (no length check: the kernel keeps 128 bytes)."""
    return _kernel_form(uuid, mode, "UUID")


def resolve(name=None, uuid=None, major=None, minor=None, mode="auto", dev_dir="/dev/",
            nodeless=None):
    """dmsetup's ``_set_task_device``: the device named by an argument (``name``), else
    by ``-u`` (``uuid``), else by ``-j``/``-m`` (``major``, ``minor``).  Returns a DevId
    (name and uuid in kernel form), or None when nothing names a device; raises
    DeviceArgError."""
    if name is not None:
        return DevId(name=set_name(name, mode, dev_dir, nodeless=nodeless))
    if uuid is not None:
        return DevId(uuid=set_uuid(uuid, mode))
    if major is not None and minor is not None:
        return DevId(major=major, minor=minor)
    return None


def device_arg(arg, dm_major, dev_dir="/dev/", nodeless=None):
    """dmctl's own commands (``dmctl io``): a device argument as dmsetup takes it (a
    name or a path, through ``set_name``) or ``MAJ:MIN`` (any block device the backend
    knows, e.g. a simulated disk ``7:N``) -> DevId.  On a backend without device nodes
    (``nodeless()`` true) ``$DM_DEV_DIR/dm-N`` names minor N of ``dm_major``."""
    dev = DevId.from_devno_or_node(arg, dm_major, dev_dir)
    if dev is not None and (dev.major is not None and dev.name is None and
                            arg.startswith(dev_dir)):
        if nodeless is not None and nodeless():
            return dev              # /dev/dm-N of a backend without nodes
        dev = None                  # a real node: stat() it, as dmsetup does
    if dev is not None and dev.name is None:
        return dev                  # MAJ:MIN
    return DevId(name=set_name(arg, dev_dir=dev_dir, nodeless=nodeless))
