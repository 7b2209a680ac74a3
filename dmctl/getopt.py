"""A GNU getopt_long work-alike, because dmsetup's argument habits are glibc's.

Options may appear anywhere (argument permutation), ``--`` ends option parsing, long
options may be abbreviated to any unique prefix (or a prefix shared only by entries
that mean the same thing), ``--opt=value`` and ``--opt value`` both work, short options
cluster (``-vvv``, ``-ofoo``).  Errors are glibc's messages, prefixed by the program
name, so that scripts that grep them keep working.
"""

NO_ARG = 0
REQUIRED = 1
OPTIONAL = 2


class GetoptError(Exception):
    pass


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


def getopt_long(prog, argv, shortopts, longopts):
    """Parse ``argv`` (without argv[0]).

    ``shortopts`` is a dict char -> NO_ARG/REQUIRED/OPTIONAL.
    ``longopts`` is a list of (name, has_arg, key): ``key`` identifies what the option
    means (two long names with the same key and has_arg are not ambiguous).
    Returns (opts, args): opts is a list of (key_or_char, value_or_None) in order,
    args the non-option words in order.
    """
    opts = []
    args = []
    i = 0
    n = len(argv)
    while i < n:
        a = argv[i]
        if a == "--":
            args.extend(argv[i + 1:])
            break
        if a.startswith("--"):
            body = a[2:]
            if "=" in body:
                name, value = body.split("=", 1)
                has_value = True
            else:
                name, value, has_value = body, None, False
            exact = [o for o in longopts if o[0] == name]
            if exact:
                match = exact[0]
            else:
                cands = [o for o in longopts if o[0].startswith(name)]
                if not cands:
                    raise GetoptError("%s: unrecognized option '--%s'" % (prog, name))
                first = cands[0]
                if any(c[1] != first[1] or c[2] != first[2] for c in cands[1:]):
                    raise GetoptError("%s: option '--%s' is ambiguous; possibilities:%s" % (
                        prog, name, "".join(" '--%s'" % c[0] for c in cands)))
                match = first
            lname, has_arg, key = match
            if has_arg == NO_ARG:
                if has_value:
                    raise GetoptError("%s: option '--%s' doesn't allow an argument" % (prog, lname))
                opts.append((key, None))
            elif has_arg == REQUIRED:
                if not has_value:
                    if i + 1 >= n:
                        raise GetoptError("%s: option '--%s' requires an argument" % (prog, lname))
                    i += 1
                    value = argv[i]
                opts.append((key, value))
            else:
                opts.append((key, value))
            i += 1
            continue
        if a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                ch = a[j]
                kind = shortopts.get(ch)
                if kind is None:
                    raise GetoptError("%s: invalid option -- '%s'" % (prog, ch))
                if kind == NO_ARG:
                    opts.append((ch, None))
                    j += 1
                    continue
                rest = a[j + 1:]
                if rest:
                    opts.append((ch, rest))
                elif kind == OPTIONAL:
                    opts.append((ch, None))
                else:
                    if i + 1 >= n:
                        raise GetoptError("%s: option requires an argument -- '%s'" % (prog, ch))
                    i += 1
                    opts.append((ch, argv[i]))
                break
            i += 1
            continue
        args.append(a)
        i += 1
    return opts, args
