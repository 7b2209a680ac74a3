"""Progress bars for long work (``dmctl io copy``, ``dmctl sim settle``, ``dmctl
replay-log --replay``), drawn with tqdm on a terminal's stderr only.

:func:`bar` returns None when nothing is to be drawn (quiet, or the stream is not a
terminal) *before* importing tqdm, so a command that draws no bar pays nothing for it:
its output, and its start-up, are those of a build without progress bars.
"""

import sys


def is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def bar(total, unit, desc, stream=None, quiet=False, unit_scale=False):
    """A tqdm bar of ``total`` ``unit`` (None: unknown) on ``stream`` (stderr), or None
    when ``quiet`` or the stream is not a terminal.  The bar is erased when closed
    (``leave=False``): it shows work in progress, the command's own output is its
    result.  Use it as a context manager or call ``close()``."""
    if stream is None:
        stream = sys.stderr
    if quiet or not is_terminal(stream):
        return None
    import os
    try:
        cols, rows = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        cols = rows = 0
    # a terminal whose size is not set (a fresh pty: 0x0) would make tqdm draw nothing
    shape = {"dynamic_ncols": True} if cols and rows else {"ncols": cols or 80,
                                                             "nrows": rows or 24}
    from tqdm import tqdm
    tqdm.monitor_interval = 0   # no monitor thread: updates come often enough
    return tqdm(total=total, unit=unit, desc=desc, file=stream, leave=False,
                unit_scale=unit_scale, unit_divisor=1024 if unit_scale else 1000,
                mininterval=0.1, **shape)


def advance_to(b, n):
    """Move ``b`` (a bar or None) to position ``n``."""
    if b is not None and n > b.n:
        b.update(n - b.n)
