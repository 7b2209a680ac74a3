"""dmctl.errors: one exception root above every error dmctl raises on purpose."""

import errno

import pytest

from dmctl.backend import KernelUnavailable
from dmctl.errors import DmctlError, DmError, IOFailure, TargetError, UsageError
from dmctl.formats import log_writes as lw
from dmctl.formats.era_meta import EraMetadataError
from dmctl.getopt import GetoptError
from dmctl.libdm.table import TableError
from dmctl.pdata.errors import PDataError, nodata, nospc
from dmctl.sim.targets.dirty_log.base import LogError
from dmctl.cli.ctx import BackendUnavailable
from dmctl.ioctl.codec import KernelError
from dmctl.libdm.cookie import SemError
from dmctl.libdm.devices import DeviceArgError
from dmctl.libdm.fields import ParseError
from dmctl.libdm.names import ManglingError
from dmctl.libdm.report import FieldError, ReportError
from dmctl.libdm.tree import TreeOptionError
from dmctl.logd.client import NotRunning
from dmctl.logd.daemon import StartError

CLASSES = [DmError, TargetError, IOFailure, UsageError, GetoptError, TableError,
           KernelUnavailable, PDataError, EraMetadataError, lw.LogFormatError, lw.BadMagic,
           lw.BadVersion, lw.ShortSuper, lw.Malformed, lw.Truncated, LogError,
           BackendUnavailable, KernelError, SemError, DeviceArgError, ParseError,
           ManglingError, FieldError, ReportError, TreeOptionError, NotRunning, StartError]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_each_error_is_a_dmctl_error(cls):
    assert issubclass(cls, DmctlError) and issubclass(DmctlError, Exception)


def test_subclassing_keeps_messages_and_errnos():
    e = DmError(errno.ENXIO, op="info", name="x")
    assert (str(e), e.errno) == ("info ioctl on x failed: No such device or address",
                                 errno.ENXIO)
    e = TargetError(errno.EINVAL, "Invalid block size")
    assert (str(e), e.errno, e.text) == ("Invalid block size", errno.EINVAL,
                                         "Invalid block size")
    assert str(TableError("a", "b")) == "a\nb" and TableError("a").lines == ["a"]
    e = KernelUnavailable("/dev/mapper/control", errno.ENOENT)
    assert str(e) == "/dev/mapper/control: No such file or directory"
    assert (nodata().errno, nospc().errno) == (errno.ENODATA, errno.ENOSPC)
    assert str(EraMetadataError(errno.EIO, "sb_check failed")) == "sb_check failed"
    assert str(lw.BadVersion(2)) == "Version mismatch, wanted 1, have 2"
    # still a ValueError, for callers that caught it as one
    assert isinstance(lw.BadMagic(), ValueError)
    e = LogError(errno.EINVAL, ["line 1", "line 2"])
    assert (str(e), e.errno) == ("line 1; line 2", errno.EINVAL)
    assert str(GetoptError("dmsetup: invalid option -- 'x'")) == \
        "dmsetup: invalid option -- 'x'"
    assert str(UsageError("bad", usage=True)) == "bad"


def test_catching_the_root_catches_them_all():
    for exc in (DmError(errno.EBUSY), TableError("x"), PDataError(errno.EIO, "io"),
                lw.Truncated("entry", 12)):
        with pytest.raises(DmctlError):
            raise exc
