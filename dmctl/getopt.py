"""A GNU getopt_long work-alike, because dmsetup's and replay-log's argument habits are
glibc's (both parse their command lines with it: dmctl.cli.main and
dmctl.tools.replay_log).

Options may appear anywhere (argument permutation; with ``posixly_correct``, as under
``POSIXLY_CORRECT``, the first non-option ends them), ``--`` ends option parsing, long
options may be abbreviated to any unique prefix (or a prefix shared only by entries
that mean the same thing: same ``has_arg``, ``flag`` and ``val``), ``--opt=value`` and
``--opt value`` both work, short options cluster (``-vvv``, ``-ofoo``).

Errors raise :class:`GetoptError` carrying glibc's message, prefixed by the program
name (what getopt prints to stderr before it returns ``'?'``), so that scripts that grep
them keep working; the caller prints it and goes on as its C original does.  Both
dmsetup and replay-log stop at the first error, so parsing stops there too;
:func:`iter_getopt_long` yields the options one by one, so that a caller that acts on
each option before the next is parsed reports its own errors in the C order.
"""

from dmctl.errors import DmctlError

NO_ARG = 0
REQUIRED = 1
OPTIONAL = 2


class GetoptError(DmctlError):
    """A bad option: ``str(e)`` is glibc's message, without the newline."""


def parse_short_spec(spec):
    """``"cCfG:h"`` -> {"c": NO_ARG, ..., "G": REQUIRED}."""
    out = {}
    i = 0
    while i < len(spec):
        ch = spec[i]
        kind = NO_ARG
        if i + 1 < len(spec) and spec[i + 1] == ":":
            kind = REQUIRED
            i += 1
            if i + 1 < len(spec) and spec[i + 1] == ":":
                kind = OPTIONAL
                i += 1
        out[ch] = kind
        i += 1
    return out


def _val(o):
    # C's flag/val pair: the optional 4th field, else the key
    return o[3] if len(o) > 3 else o[2]


def _long_option(prog, body, longopts):
    """glibc's process_long_option lookup of ``--body``: exact name, else the first
    prefix match unless a later one differs (ambiguous)."""
    name = body.split("=", 1)[0]
    for o in longopts:
        if o[0] == name:
            return o
    found = None
    ambiguous = []
    for o in longopts:
        if o[0].startswith(name):
            if found is None:
                found = o
                ambiguous = [o]
            elif o[1] != found[1] or _val(o) != _val(found):
                ambiguous.append(o)
    if found is None:
        raise GetoptError("%s: unrecognized option '--%s'" % (prog, body))
    if len(ambiguous) > 1:
        raise GetoptError("%s: option '--%s' is ambiguous; possibilities:%s" % (
            prog, body, "".join(" '--%s'" % o[0] for o in ambiguous)))
    return found


def iter_getopt_long(prog, argv, shortopts, longopts, args=None, posixly_correct=False):
    """Parse ``argv`` (without argv[0]) lazily: yield ``(key, value)`` per option.

    ``shortopts`` is a dict char -> NO_ARG/REQUIRED/OPTIONAL; a short option's key is
    its character.  ``longopts`` is a sequence of ``(name, has_arg, key)`` or
    ``(name, has_arg, key, val)``: ``key`` is what is yielded, ``val`` (default: the
    key) stands for C's ``flag``/``val`` pair, which decides ambiguity: two prefix
    matches with the same has_arg and val are one option and the first in the table
    wins.  ``value`` is the argument or None.  Non-option words are appended to the
    list ``args`` when one is given.  Raises GetoptError at the first bad option.
    """
    i = 0
    n = len(argv)
    while i < n:
        a = argv[i]
        if a == "--":
            if args is not None:
                args.extend(argv[i + 1:])
            return
        if a.startswith("--"):
            body = a[2:]
            has_value = "=" in body
            value = body.split("=", 1)[1] if has_value else None
            match = _long_option(prog, body, longopts)
            lname, has_arg, key = match[0], match[1], match[2]
            if has_arg == NO_ARG:
                if has_value:
                    raise GetoptError("%s: option '--%s' doesn't allow an argument"
                                      % (prog, lname))
            elif has_arg == REQUIRED and not has_value:
                if i + 1 >= n:
                    raise GetoptError("%s: option '--%s' requires an argument"
                                      % (prog, lname))
                i += 1
                value = argv[i]
            i += 1
            yield key, value
            continue
        if a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                ch = a[j]
                kind = shortopts.get(ch)
                if kind is None:
                    raise GetoptError("%s: invalid option -- '%s'" % (prog, ch))
                if kind == NO_ARG:
                    yield ch, None
                    j += 1
                    continue
                rest = a[j + 1:]
                if rest:
                    yield ch, rest
                elif kind == OPTIONAL:
                    yield ch, None
                else:
                    if i + 1 >= n:
                        raise GetoptError("%s: option requires an argument -- '%s'"
                                          % (prog, ch))
                    i += 1
                    yield ch, argv[i]
                break
            i += 1
            continue
        if posixly_correct:
            if args is not None:
                args.extend(argv[i:])
            return
        if args is not None:
            args.append(a)
        i += 1


def getopt_long(prog, argv, shortopts, longopts, posixly_correct=False):
    """Parse ``argv`` (without argv[0]) at once (see :func:`iter_getopt_long`).

    Returns ``(opts, args)``: opts is a list of (key_or_char, value_or_None) in order,
    args the non-option words in order.  Raises GetoptError at the first bad option.
    """
    args = []
    opts = list(iter_getopt_long(prog, argv, shortopts, longopts, args, posixly_correct))
    return opts, args
