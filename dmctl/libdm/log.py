"""libdm's log levels and where its messages go (libdm/misc/dm-logging.h's ``_LOG_*``
levels, libdm-common.c's ``dm_log_with_errno``).

The library never prints.  Every message it has for the user (libdm's ``log_error``,
``log_warn``, ``log_verbose``, ``log_debug`` lines) is handed to a callback
``log(level, text)``: the CLI passes one that prints as dmsetup does (errors and
warnings on stderr, the others on stdout at ``-v``/``-vv``/``-vvv``); without one,
:func:`to_logging` hands them to Python's ``logging`` (logger ``dmctl``).
"""

LOG_ERR = 3         # log_error
LOG_WARN = 4        # log_warn
LOG_NOTICE = 5      # log_print
LOG_INFO = 6        # log_verbose
LOG_DEBUG = 7       # log_debug

# Python logging's levels (ERROR, WARNING, INFO, INFO, DEBUG): numbers, so that the
# logging module is imported only when a message is actually logged through it.
_PY_LEVEL = {LOG_ERR: 40, LOG_WARN: 30, LOG_NOTICE: 20, LOG_INFO: 20, LOG_DEBUG: 10}


def to_logging(level, msg):
    """The default callback: ``logging.getLogger("dmctl")``."""
    import logging
    logging.getLogger("dmctl").log(_PY_LEVEL.get(level, 10), msg)


def error(msg):
    """``log_error`` through :func:`to_logging` (the default ``err`` of libdm.cookie)."""
    to_logging(LOG_ERR, msg)
