"""The ``userspace`` dirty log (dm-log-userspace-base.c): the log lives in a
userspace server reached through the kernel connector.

``userspace <#args> <uuid> [integrated_flush] <log type> <log type args...>``.

The simulator has no log server yet, so every constructor that gets past the
argument checks fails as the kernel's does when no server listens (-ESRCH).
"""

import errno

from dmctl.targets.dirty_log.base import DirtyLog, LogError

PREFIX = "device-mapper: dm-log-userspace: "
DM_UUID_LEN = 129
DM_ULOG_CTR = 1


class UserspaceLog(DirtyLog):
    name = "userspace"

    @classmethod
    def ctr(cls, ms, argv):
        if len(argv) < 3:
            raise LogError(errno.EINVAL, [PREFIX + "Too few arguments to userspace dirty log"])
        if len(argv[0].encode()) >= DM_UUID_LEN:
            raise LogError(errno.EINVAL, [PREFIX + "UUID argument too long."])
        # dm_consult_userspace(DM_ULOG_CTR): no listener on the connector
        r = -errno.ESRCH
        lines = [PREFIX + "Unable to send log request [%u] to userspace: %d" % (DM_ULOG_CTR, r),
                 PREFIX + "Userspace log server not found"]
        raise LogError(errno.ESRCH, lines)
