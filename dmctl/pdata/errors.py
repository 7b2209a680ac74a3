"""Errors of the persistent-data layer: an errno plus the kernel's text."""

import errno as _errno

from dmctl.errors import DmctlError


class PDataError(DmctlError):
    """A persistent-data operation failed the way the kernel's would (``-errno``)."""

    def __init__(self, err, text):
        self.errno = err
        self.text = text
        super().__init__(text)


def nodata(text="no data"):
    return PDataError(_errno.ENODATA, text)


def nospc(text="no free metadata blocks"):
    return PDataError(_errno.ENOSPC, text)
