"""pytest glue for dmctl's VM test tier (tests/vm), on the host and in the guest.

- Registers the ``vm`` marker (tests that boot a VM).
- ``vm`` tests run only when asked for: ``pytest -m vm`` (or any -m expression naming vm),
  or DMCTL_VM=1; otherwise they are skipped, so that a plain ``pytest`` stays fast.
- tests/vm/guest/ holds tests that need the real kernel: they run inside the guest booted
  by tests/vm/run (which sets DMCTL_VM_GUEST=1); on the host they are not collected
  (skipped, if named explicitly).
"""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_DIR = os.path.join(HERE, "guest")
IN_GUEST = os.environ.get("DMCTL_VM_GUEST") == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vm: boots a QEMU VM with a real Linux kernel (tests/vm/run); "
                   "selected with -m vm or DMCTL_VM=1")


def _vm_requested(config):
    if os.environ.get("DMCTL_VM") == "1":
        return True
    expr = config.getoption("markexpr", "") or ""
    return "vm" in expr.replace("not vm", "")


def pytest_ignore_collect(collection_path, config):
    """On the host, a run over tests/ (or tests/vm) leaves the guest-only tests out
    altogether instead of listing ~160 skips; naming tests/vm/guest explicitly still
    collects them (and skips them, with the reason)."""
    if IN_GUEST or str(collection_path) != GUEST_DIR:
        return None
    for arg in config.args:
        a = os.path.abspath(str(arg).split("::")[0])
        if a == GUEST_DIR or a.startswith(GUEST_DIR + os.sep):
            return None
    return True


def pytest_collection_modifyitems(config, items):
    skip_guest = pytest.mark.skip(
        reason="needs the real kernel: runs only inside the VM tier (tests/vm/run)")
    skip_vm = pytest.mark.skip(reason="boots a VM: select with -m vm (or DMCTL_VM=1)")
    want_vm = _vm_requested(config)
    for item in items:
        path = str(item.path)
        if not IN_GUEST and path.startswith(GUEST_DIR + os.sep):
            item.add_marker(skip_guest)
        elif item.get_closest_marker("vm") and not want_vm:
            item.add_marker(skip_vm)
