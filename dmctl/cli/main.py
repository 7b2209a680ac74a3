"""dmctl's entry point: dmsetup's command line, dispatched lazily.

The dmsetup-compatible surface follows dmsetup's own control flow (libdm/dm-tools/
dmsetup.c, 1.02.185): GNU getopt_long switch processing, help/version switches,
command lookup, argument counts, then the command once per device argument.

This module is on every command's start-up path: it imports nothing heavy.  The command
table is ``dmctl.cli.commands`` (named records); implementations live in
``dmctl.cli.cmd_*`` and are imported only when run.  The arrows run one way: main ->
commands (cmd_*) -> ctx, common, report_cli -> dmctl.libdm; nothing imports main.
dmctl's own extension commands (``io``, ``sim``, ``era``, ``replay-log``, ``logd``)
are click commands, also imported only when run.
"""

import os
import sys

from dmctl import getopt as _g
from dmctl.cli import commands as _c
from dmctl.errors import StateError

# --------------------------------------------------------------------------------------
# Options: dmsetup 1.02.185's long option table (order matters for glibc's ambiguity
# report), the short option string, plus dmctl's own long options.
# --------------------------------------------------------------------------------------

SHORTOPTS = _g.parse_short_spec("cCfG:hj:m:M:no:O:rS:u:U:vy")

_N, _R = _g.NO_ARG, _g.REQUIRED
LONGOPTS = [_c.Option(row) for row in (
    ("readonly", _N), ("alias", _R), ("alldevices", _N), ("allprograms", _N),
    ("allregions", _N), ("area", _N), ("areas", _R), ("areasize", _R),
    ("bounds", _R), ("checks", _N), ("clear", _N), ("columns", _N),
    ("concise", _N), ("count", _R), ("deferred", _N), ("select", _R),
    ("exec", _R), ("filemap", _N), ("follow", _R), ("force", _N),
    ("foreground", _N), ("gid", _R), ("group", _N), ("groupid", _R), ("help", _N),
    ("histogram", _N), ("inactive", _N), ("interval", _R), ("length", _R),
    ("manglename", _R), ("major", _R), ("minor", _R), ("mode", _R),
    ("nameprefixes", _N), ("nogroup", _N), ("noflush", _N), ("noheadings", _N),
    ("nolockfs", _N), ("noopencount", _N), ("nosuffix", _N), ("notable", _N),
    ("notimesuffix", _N), ("udevcookie", _R), ("nomonitor", _N),
    ("noudevrules", _N), ("noudevsync", _N), ("options", _R), ("precise", _N),
    ("programid", _R), ("raw", _N), ("readahead", _R), ("region", _N),
    ("regions", _R), ("regionid", _R), ("relative", _N), ("retry", _N),
    ("rows", _N), ("segments", _N), ("separator", _R), ("setuuid", _N),
    ("showkeys", _N), ("sort", _R), ("start", _R), ("table", _R), ("target", _R),
    ("tree", _N), ("uid", _R), ("units", _R), ("uuid", _R), ("unbuffered", _N),
    ("unquoted", _N), ("userdata", _R),
    # dmsetup declares --verbose with a required argument (so `--verbose info` eats
    # "info"); -v is the flag everyone uses.  Kept exactly for drop-in behaviour.
    ("verbose", _R), ("verifyudev", _N), ("version", _N), ("yes", _N),
    ("addnodeonresume", _N), ("addnodeoncreate", _N),
    # dmctl's own
    ("backend", _R), ("json", _N), ("udevtimeout", _R),
)]
# getopt_long's (name, has_arg, key): each option is its own key
_LONG = [(o.name, o.has_arg, o.name) for o in LONGOPTS]

# switches whose values are numbers (dmctl.numbers parses them, imported only then)
_NUMERIC = frozenset(("major", "minor", "gid", "uid", "groupid", "regionid", "areas",
                      "count", "interval", "mode", "readahead"))

# short option -> switch key
_SHORT_KEY = {"c": "columns", "C": "columns", "f": "force", "G": "gid", "h": "help",
              "j": "major", "m": "minor", "M": "mode", "n": "notable", "o": "options",
              "O": "sort", "r": "readonly", "S": "select", "u": "uuid", "U": "uid",
              "v": "verbose", "y": "yes"}

# dmsetup's command table and dmctl's own commands (named records)
COMMANDS = _c.COMMANDS
EXTENSIONS = _c.EXTENSIONS
usage_text = _c.usage_text


def process_switches(prog, argv, ctx):
    """dmsetup's _process_switches. Returns (command or None, args) or raises Exit."""
    sw = ctx.sw
    try:
        opts, args = _g.getopt_long(prog, argv, SHORTOPTS, _LONG)
    except _g.GetoptError as e:
        ctx.err(str(e))
        return False, None, None
    for key, val in opts:
        key = _SHORT_KEY.get(key, key)
        if key in _NUMERIC:
            from dmctl.numbers import atoi, c_int, strtol
        if key in ("major", "minor", "gid", "uid", "groupid", "regionid", "areas"):
            sw.set(key, atoi(val))
        elif key == "count":
            sw.set(key, atoi(val))
            if atoi(val) < 0:
                ctx.err("Count must be zero or greater.")
                return False, None, None
        elif key == "interval":
            sw.set(key, atoi(val))
            if atoi(val) <= 0:
                ctx.err("Interval must be a positive integer.")
                return False, None, None
        elif key == "mode":
            # dmsetup: errno = 0; (int) strtol(optarg, &ptr, 8); errno, *ptr or 0 fail
            mode, end, erange = strtol(val, 8)
            mode = c_int(mode)
            if erange or end != len(val) or not mode:
                ctx.err("Invalid argument for --mode: %s. %s"
                        % (val, os.strerror(34) if erange else ""))
                return False, None, None
            sw.set(key, mode)
        elif key == "manglename":
            v = val.lower()
            if v not in ("none", "auto", "hex"):
                ctx.err("Unknown name mangling mode.")
                return False, None, None
            sw.set(key, v)
        elif key == "udevcookie":
            from dmctl.libdm.cookies import parse_cookie
            cookie = parse_cookie(val)
            if cookie is None:
                # dmsetup reports it and goes on without a cookie
                ctx.err("Incorrect cookie value.")
                continue
            sw.set(key, cookie)
        elif key == "readahead":
            v = val.lower()
            if v == "auto":
                sw.set(key, ("auto", 0))
            elif v == "none":
                sw.set(key, ("none", 0))
            else:
                n = atoi(val)
                if n < -1:
                    ctx.err("Negative read ahead value (%d) is not understood." % n)
                    return False, None, None
                sw.set(key, ("min" if val.lstrip().startswith("+") else "set", n))
        elif key == "backend":
            if val not in ("auto", "kernel", "sim"):
                ctx.err("Unknown backend '%s': use auto, kernel or sim." % val)
                return False, None, None
            sw.set(key, val)
        else:
            sw.set(key, val)

    if (sw["major"] and not sw["minor"]) or (sw["minor"] and not sw["major"]):
        ctx.err("Please specify both major number and minor number.")
        return False, None, None
    if sw["table"] and sw["notable"]:
        ctx.err("--table and --notable are incompatible.")
        return False, None, None
    if sw["addnodeonresume"] and sw["addnodeoncreate"]:
        ctx.err("--addnodeonresume and --addnodeoncreate are incompatible.")
        return False, None, None
    if not args:
        return True, None, []
    return True, args[0], args[1:]


def perform(ctx, cmd, args, multiple):
    """_perform_command_for_all_repeatable_args: run Command ``cmd``."""
    from dmctl.cli.ctx import BackendUnavailable
    fn = cmd.handler()
    repeatable = cmd.repeatable
    i = 0
    while True:
        try:
            ok = fn(ctx, args[i:], None, multiple)
        except BackendUnavailable:
            # libdm's messages about the driver were printed already
            ok = False
        if not ok:
            ctx.err("Command failed.")
            return False
        i += 1
        if not (repeatable and len(args) - i > 0):
            break
    return True


def _run_extension(name, argv):
    fn = EXTENSIONS[name].load()
    if name == "replay-log":
        return fn(argv)
    # click command
    try:
        rv = fn.main(args=argv, prog_name="dmctl " + name, standalone_mode=False)
    except SystemExit as e:  # pragma: no cover - click's own exits
        return e.code if isinstance(e.code, int) else 1
    except Exception as e:
        import click
        if isinstance(e, click.exceptions.Abort):
            sys.stderr.write("Aborted!\n")
            return 1
        if isinstance(e, click.ClickException):
            e.show()
            return 1 if e.exit_code == 2 else e.exit_code
        raise
    return rv if isinstance(rv, int) else 0


def main(argv=None, prog=None):
    if argv is None:
        argv = sys.argv[1:]
    if prog is None:
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "dmctl"
        if prog in ("__main__.py", "-c", ""):
            prog = "dmctl"

    # dmctl's own commands take their own options.
    if argv and argv[0] in EXTENSIONS:
        return _run_extension(argv[0], argv[1:])

    from dmctl.cli.ctx import Ctx
    ctx = Ctx(prog)
    try:
        return _main(ctx, argv)
    finally:
        ctx.finish()


def _main(ctx, argv):
    sw = ctx.sw
    dev_dir = os.environ.get("DM_DEV_DIR")
    if dev_dir:
        if not dev_dir.startswith("/"):
            ctx.err("Invalid DM_DEV_DIR environment variable value.")
            return 1
        ctx.dev_dir = dev_dir.rstrip("/") + "/"

    ok, command, args = process_switches(ctx.prog, argv, ctx)
    if not ok:
        ctx.err("Couldn't process command line.")
        return 1
    ctx.command = command

    if sw["help"]:
        cmd = _c.BY_NAME["help"]
        multiple = 0
        ctx.command = "help"
        r = perform(ctx, cmd, args, multiple)
        return 0
    if sw["version"]:
        cmd = _c.BY_NAME["version"]
        ctx.command = "version"
        perform(ctx, cmd, args, 0)
        return 0

    if command is None:
        sys.stderr.write(usage_text())
        return 1
    cmd = _c.BY_NAME.get(command)
    if cmd is None:
        ctx.err("Unknown command.")
        sys.stderr.write(usage_text())
        return 1
    if not cmd.arg_count_ok(len(args)):
        ctx.err("Incorrect number of arguments.")
        sys.stderr.write(usage_text())
        return 1

    if command == "splitname" and not sw["columns"]:
        sw.set("columns")
    if command == "mangle":
        ctx.mangling_override = "none"

    if command == "stats":
        ctx.err("dmctl does not implement 'stats' (use dmsetup stats / dmstats).")
        return 1

    # dmsetup's _process_options: a bad -o / tree option fails every command
    if (sw["options"] or sw["tree"]) and not sw["columns"]:
        from dmctl.cli.cmd_query import process_options
        try:
            process_options(ctx)
        except SystemExit:
            return 1

    # -S with a device command: run "info -c" with the selection and the real
    # command on each selected device (dmsetup's _selection_cmd).
    if sw["select"] and cmd.selectable and command != "info":
        ctx.selection_cmd = cmd
        sw.count["columns"] = 1
        cmd = _c.BY_NAME["info"]

    if sw["columns"]:
        from dmctl.cli import report_cli
        if not report_cli.report_init(ctx, cmd.name):
            return 1

    multiple = 1 if (cmd.repeatable and len(args) != 1 and
                     (args or (not sw["uuid"] and not sw["major"]))) else 0
    count = 1
    if sw["count"] and sw.get("count"):
        count = sw.get("count")
    elif sw["count"] or sw["interval"]:
        count = -1
    ret = 0
    while True:
        r = perform(ctx, cmd, args, multiple)
        if ctx.concise_output_produced:
            ctx.out("\n")
        if ctx.report is not None:
            from dmctl.cli import report_cli
            report_cli.report_output(ctx, count)
            if count != 1 and r:
                ctx.out("\n")
                import time
                time.sleep(sw.get("interval", 1) or 1)
        if not r:
            ret = 1
            break
        if count > 0:
            count -= 1
        if count == 0:
            break
    return ret


def entry():
    """console_scripts entry point."""
    try:
        rc = main()
    except KeyboardInterrupt:
        rc = 130
    except StateError as e:
        # the simulator's state dir cannot be used: one line, the file and what to do
        sys.stderr.write("dmctl: %s\n" % e)
        rc = 1
    except BrokenPipeError:
        try:
            sys.stdout = None
        except Exception:
            pass
        rc = 1
    sys.exit(rc)
