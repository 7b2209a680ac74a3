"""dmsetup's udev cookie commands (dmsetup.c 1.02.185: _udevcreatecookie,
_udevreleasecookie, _udevflags, _udevcomplete, _udevcomplete_all, _udevcookies).

udev's rules run ``dmsetup udevflags $env{DM_COOKIE}`` and
``dmsetup udevcomplete $env{DM_COOKIE}`` for every dm uevent, so these must be fast
and exact: they touch neither the device-mapper driver nor pyudev.

Differences from dmsetup (deliberate):
* dmsetup asks the kernel driver for its version before using semaphores (and so does
  nothing but print errors on a host without device-mapper); dmctl does not need the
  driver for cookies.
* ``udevreleasecookie`` waits at most ``--udevtimeout`` seconds (default 30, or
  ``DMCTL_UDEV_TIMEOUT``), then explains what is still pending, removes the semaphore
  and succeeds.
"""

import os
import sys

from dmctl.libdm import cookie as _ck
from dmctl.libdm.cookies import parse_cookie
from dmctl.numbers import sscanf_u


def _get_cookie_value(ctx, s):
    v = parse_cookie(s)
    if v is None:
        ctx.err("Incorrect cookie value.")
        return 0
    return v


def udevcreatecookie(ctx, args, entry, multiple):
    from dmctl.libdm import udev
    policy = ctx.udev_policy()
    if not udev.sync_support(policy):
        return True
    cookie, _semid = _ck.create(policy.err, policy.debug)
    if not cookie:
        return False
    ctx.out("0x%08X\n" % cookie)
    return True


def udevreleasecookie(ctx, args, entry, multiple):
    from dmctl.libdm import udev
    policy = ctx.udev_policy()
    cookie = 0
    if args:
        cookie = _get_cookie_value(ctx, args[0])
        if not cookie:
            return False
    else:
        cookie = udev.external_cookie(policy)
    if not cookie:
        ctx.err("No udev transaction cookie given.")
        return False
    try:
        timeout = udev.get_timeout(policy)
    except ValueError as e:
        ctx.err(str(e))
        return False
    if not udev.sync_support(policy):
        return True
    res = _ck.wait(cookie, timeout, policy.err, policy.debug)
    if res.timed_out:
        ctx.err("Udev cookie 0x%x (semid %s) was not completed within %g s: %d "
                "uevent(s) of this transaction were not acknowledged by udev "
                "(\"dmsetup udevcomplete\" from 95-dm-notify.rules). The semaphore was "
                "removed; continuing." % (cookie, res.semid, timeout, max(res.pending, 0)))
        ctx.err("Use --udevtimeout SECS or %s to wait longer." % udev.TIMEOUT_ENV)
    return bool(res)


def udevflags(ctx, args, entry, multiple):
    cookie = _get_cookie_value(ctx, args[0])
    if not cookie:
        return False
    lines = _ck.udevflags_lines(cookie)
    if lines:
        ctx.out("\n".join(lines) + "\n")
    return True


def udevcomplete(ctx, args, entry, multiple):
    cookie = _get_cookie_value(ctx, args[0])
    if not cookie:
        return False
    ctx.out("DM_COOKIE_COMPLETED=0x%-10x\n" % cookie)
    # Flags-only cookie (base 0): nothing to signal.
    if not cookie & 0xFFFF:
        return True
    from dmctl.libdm import udev
    policy = ctx.udev_policy()
    if not udev.sync_support(policy):
        return True
    return _ck.complete(_ck.cookie_key(cookie), policy.err, policy.debug)


def _yes_no_prompt(ctx, prompt):
    """dmsetup's _yes_no_prompt: prompt on stdout, read a line, y/n (last one wins);
    EOF means n."""
    c = ""
    ret = ""
    stdin = sys.stdin
    while True:
        if c in ("\n", ""):
            ctx.out(prompt)
            try:
                ctx._stdout.flush()
            except Exception:
                pass
        ch = stdin.read(1) if stdin is not None else ""
        if ch == "":
            ret = "n"
            c = None
            break
        c = ch.lower()
        if c in ("y", "n"):
            ret = c
        if ret and c == "\n":
            break
    if c != "\n":
        ctx.out("\n")
    return ret


def udevcomplete_all(ctx, args, entry, multiple):
    age = 0
    if len(args) == 1:
        age = sscanf_u(args[0])[0]          # sscanf(argv[1], "%u", &age) != 1
        if age is None:
            ctx.err("Failed to read age_in_minutes parameter.")
            return False
    if not ctx.sw["yes"]:
        sage = age - (1 << 32) if age & 0x80000000 else age     # "%.0d" of an unsigned
        ctx.err("WARNING: This operation will destroy all semaphores %s%s%swith keys "
                "that have a prefix %d (0x%x)."
                % ("older than " if age else "", str(sage) if age else "",
                   " minutes " if age else "", _ck.DM_COOKIE_MAGIC, _ck.DM_COOKIE_MAGIC))
        if _yes_no_prompt(ctx, "Do you really want to continue? [y/n]: ") == "n":
            ctx.out("Semaphores with keys prefixed by %d (0x%x) NOT destroyed.\n"
                    % (_ck.DM_COOKIE_MAGIC, _ck.DM_COOKIE_MAGIC))
            return True
    try:
        _ck.sem_info()
    except OSError as e:
        ctx.err("SEM_INFO: semctl failed: %s" % os.strerror(e.errno))
        return False
    # age * 60 in C's unsigned int arithmetic
    destroyed, skipped = _ck.complete_all_raw((age * 60) & 0xFFFFFFFF, ctx.err)
    ctx.out("%d semaphores with keys prefixed by %d (0x%x) destroyed. %d skipped.\n"
            % (destroyed, _ck.DM_COOKIE_MAGIC, _ck.DM_COOKIE_MAGIC, skipped))
    return True


def udevcookies(ctx, args, entry, multiple):
    try:
        _ck.sem_info()
    except OSError as e:
        ctx.err("SEM_INFO: sem_ctl failed: %s" % os.strerror(e.errno))
        return False
    rows = ["Cookie       Semid      Value      Last semop time           Last change time\n"]
    for c in _ck.list_cookies(ctx.err):
        rows.append("0x%-10x %-10d %-10d %s  %s\n" % (
            c.cookie, c.semid, c.value, _ck.ctime_str(c.otime), _ck.ctime_str(c.ctime)))
    ctx.out("".join(rows))
    return True
