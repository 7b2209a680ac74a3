"""dmctl.backend.base repeats the DM_*_FLAG values (so that the CLI's start-up path
need not import the ioctl layer); they must equal the ABI's."""

import dmctl.backend.base as base
import dmctl.ioctl.abi as abi


def test_base_flags_equal_the_abi():
    names = [n for n in dir(base) if n.startswith("DM_") and (n.endswith("_FLAG") or n == "DM_DEFERRED_REMOVE")]
    assert len(names) >= 18
    for n in names:
        assert getattr(base, n) == getattr(abi, n), n
