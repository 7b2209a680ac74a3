"""Cookie values on the command line (dmsetup.c's ``_get_cookie_value``; libdm's
cookie protocol itself is dmctl.libdm.cookie, its use around tasks dmctl.libdm.nodes).

Kept tiny: main.py imports it while parsing ``--udevcookie`` and udev runs
``dmsetup udevcomplete $env{DM_COOKIE}`` for every dm uevent.
"""

from dmctl.numbers import UINT_MAX as UINT32_MAX, strtoull


def parse_cookie(s):
    """A cookie as dmsetup accepts it, or None for what dmsetup rejects with
    ``Incorrect cookie value.``: 0, trailing junk, overflow or > UINT32_MAX."""
    if s is None:
        return None
    value, end, erange = strtoull(s, 0)        # dmsetup: strtoul(s, &end, 0)
    if erange or not value or end != len(s) or value > UINT32_MAX:
        return None
    return value
