"""dmctl's entry point: dmsetup's command line, dispatched lazily.

The dmsetup-compatible surface follows dmsetup's own control flow (libdm/dm-tools/
dmsetup.c, 1.02.185): GNU getopt_long switch processing, help/version switches,
command lookup, argument counts, then the command once per device argument.

This module is on every command's start-up path: it imports nothing heavy.  Command
implementations live in ``dmctl.cli.cmd_*`` and are imported only when run.
dmctl's own extension commands (``io``, ``sim``, ``era``, ``replay-log``, ``logd``)
are click commands, also imported only when run.
"""

import os
import sys

from dmctl import getopt as _g

# --------------------------------------------------------------------------------------
# Options: dmsetup 1.02.185's long option table (order matters for glibc's ambiguity
# report), the short option string, plus dmctl's own long options.
# --------------------------------------------------------------------------------------

SHORTOPTS = _g.parse_short_spec("cCfG:hj:m:M:no:O:rS:u:U:vy")

_N, _R = _g.NO_ARG, _g.REQUIRED
LONGOPTS = [
    ("readonly", _N), ("alias", _R), ("alldevices", _N), ("allprograms", _N),
    ("allregions", _N), ("area", _N), ("areas", _R), ("areasize", _R), ("bounds", _R),
    ("checks", _N), ("clear", _N), ("columns", _N), ("concise", _N), ("count", _R),
    ("deferred", _N), ("select", _R), ("exec", _R), ("filemap", _N), ("follow", _R),
    ("force", _N), ("foreground", _N), ("gid", _R), ("group", _N), ("groupid", _R),
    ("help", _N), ("histogram", _N), ("inactive", _N), ("interval", _R), ("length", _R),
    ("manglename", _R), ("major", _R), ("minor", _R), ("mode", _R),
    ("nameprefixes", _N), ("nogroup", _N), ("noflush", _N), ("noheadings", _N),
    ("nolockfs", _N), ("noopencount", _N), ("nosuffix", _N), ("notable", _N),
    ("notimesuffix", _N), ("udevcookie", _R), ("nomonitor", _N), ("noudevrules", _N),
    ("noudevsync", _N), ("options", _R), ("precise", _N), ("programid", _R), ("raw", _N),
    ("readahead", _R), ("region", _N), ("regions", _R), ("regionid", _R),
    ("relative", _N), ("retry", _N), ("rows", _N), ("segments", _N), ("separator", _R),
    ("setuuid", _N), ("showkeys", _N), ("sort", _R), ("start", _R), ("table", _R),
    ("target", _R), ("tree", _N), ("uid", _R), ("units", _R), ("uuid", _R),
    ("unbuffered", _N), ("unquoted", _N), ("userdata", _R),
    # dmsetup declares --verbose with a required argument (so `--verbose info` eats
    # "info"); -v is the flag everyone uses.  Kept exactly for drop-in behaviour.
    ("verbose", _R),
    ("verifyudev", _N), ("version", _N), ("yes", _N), ("addnodeonresume", _N),
    ("addnodeoncreate", _N),
    # dmctl's own
    ("backend", _R), ("json", _N), ("udevtimeout", _R),
]
_LONG = [(name, kind, name) for name, kind in LONGOPTS]

# short option -> switch key
_SHORT_KEY = {"c": "columns", "C": "columns", "f": "force", "G": "gid", "h": "help",
              "j": "major", "m": "minor", "M": "mode", "n": "notable", "o": "options",
              "O": "sort", "r": "readonly", "S": "select", "u": "uuid", "U": "uid",
              "v": "verbose", "y": "yes"}

# --------------------------------------------------------------------------------------
# Commands: name -> (module, function, usage, min_args, max_args, repeatable, subcmds)
# repeatable: 0 single, 1 once per device arg, 2 also accepts -S.
# --------------------------------------------------------------------------------------

_CREATE_USAGE = ("<dev_name>\n"
                 "\t    [-j|--major <major> -m|--minor <minor>]\n"
                 "\t    [-U|--uid <uid>] [-G|--gid <gid>] [-M|--mode <octal_mode>]\n"
                 "\t    [-u|--uuid <uuid>] [--addnodeonresume|--addnodeoncreate]\n"
                 "\t    [--readahead {[+]<sectors>|auto|none}]\n"
                 "\t    [-n|--notable|--table {<table>|<table_file>}]\n"
                 "\tcreate --concise [<concise_device_spec_list>]")
_RESUME_USAGE = ("[--noflush] [--nolockfs] <device>...\n"
                 "\t       [--addnodeonresume|--addnodeoncreate]\n"
                 "\t       [--readahead {[+]<sectors>|auto|none}]")

COMMANDS = [
    ("help", "cmd_query", "help", "[-c|-C|--columns]", 0, 0, 0),
    ("create", "cmd_create", "create", _CREATE_USAGE, 0, 2, 0),
    ("remove", "cmd_lifecycle", "remove", "[--deferred] [-f|--force] [--retry] <device>...", 0, -1, 2),
    ("remove_all", "cmd_lifecycle", "remove_all", "[-f|--force]", 0, 0, 0),
    ("suspend", "cmd_lifecycle", "suspend", "[--noflush] [--nolockfs] <device>...", 0, -1, 2),
    ("resume", "cmd_lifecycle", "resume", _RESUME_USAGE, 0, -1, 2),
    ("load", "cmd_create", "load", "<device> [<table>|<table_file>]", 0, 2, 0),
    ("clear", "cmd_lifecycle", "clear", "<device>", 0, -1, 2),
    ("reload", "cmd_create", "load", "<device> [<table>|<table_file>]", 0, 2, 0),
    ("wipe_table", "cmd_lifecycle", "wipe_table", "[-f|--force] [--noflush] [--nolockfs] <device>...", 0, -1, 2),
    ("rename", "cmd_lifecycle", "rename", "<device> [--setuuid] <new_name_or_uuid>", 1, 2, 0),
    ("measure", "cmd_query", "status", "[<device>...]", 0, -1, 2),
    ("message", "cmd_lifecycle", "message", "<device> <sector> <message>", 2, -1, 0),
    ("ls", "cmd_query", "ls", "[--target <target_type>] [--exec <command>] [-o <options>] [--tree]", 0, 0, 0),
    ("info", "cmd_query", "info", "[<device>...]", 0, -1, 1),
    ("deps", "cmd_query", "deps", "[-o <options>] [<device>...]", 0, -1, 2),
    ("stats", "cmd_query", "stats", "<command> [<options>] [<device>...]", 1, -1, 1),
    ("status", "cmd_query", "status", "[<device>...] [--noflush] [--target <target_type>]", 0, -1, 2),
    ("table", "cmd_query", "status", "[<device>...] [--concise] [--target <target_type>] [--showkeys]", 0, -1, 2),
    ("wait", "cmd_lifecycle", "wait", "<device> [<event_nr>] [--noflush]", 0, 2, 0),
    ("mknodes", "cmd_lifecycle", "mknodes", "[<device>...]", 0, -1, 1),
    ("mangle", "cmd_lifecycle", "mangle", "[<device>...]", 0, -1, 1),
    ("udevcreatecookie", "cmd_udev", "udevcreatecookie", "", 0, 0, 0),
    ("udevreleasecookie", "cmd_udev", "udevreleasecookie", "[<cookie>]", 0, 1, 0),
    ("udevflags", "cmd_udev", "udevflags", "<cookie>", 1, 1, 0),
    ("udevcomplete", "cmd_udev", "udevcomplete", "<cookie>", 1, 1, 0),
    ("udevcomplete_all", "cmd_udev", "udevcomplete_all", "[<age_in_minutes>]", 0, 1, 0),
    ("udevcookies", "cmd_udev", "udevcookies", "", 0, 0, 0),
    ("target-version", "cmd_query", "target_version", "[<target>...]", 1, -1, 1),
    ("targets", "cmd_query", "targets", "", 0, 0, 0),
    ("version", "cmd_query", "version", "", 0, 0, 0),
    ("setgeometry", "cmd_lifecycle", "setgeometry", "<device> <cyl> <head> <sect> <start>", 5, 5, 0),
    ("splitname", "cmd_query", "splitname", "<device> [<subsystem>]", 1, 2, 0),
]
_CMD_INDEX = {c[0]: c for c in COMMANDS}

# dmctl's own commands (click), dispatched before dmsetup's option parsing because
# they have their own options.  name -> ("module:attr", summary)
EXTENSIONS = {
    "io": ("dmctl.cli.ext_io:io", "Submit I/O to a simulated device (write, read, discard, flush, script, copy)"),
    "sim": ("dmctl.cli.ext_sim:sim", "Control the simulator (crash, settle, fail, heal, reset, status)"),
    "era": ("dmctl.cli.ext_era:era", "Read era metadata (changed-since, dump)"),
    "replay-log": ("dmctl.tools.replay_log:main", "Replay a dm-log-writes log (xfstests' replay-log)"),
    "logd": ("dmctl.cli.ext_logd:logd", "Userspace dirty-log server (clustered-core, clustered-disk)"),
}

USAGE_TAIL = (
    "\n<device> may be device name or (if only one) -u <uuid> or "
    "-j <major> -m <minor>\n"
    "<mangling_mode> is one of 'none', 'auto' and 'hex'.\n"
    "<fields> are comma-separated.  Use 'help -c' for list.\n"
    "<concise_device_specification> has single-device entries separated by semi-colons:\n"
    "    <name>,<uuid>,<minor>,<flags>,<table>\n"
    "        where <flags> is 'ro' or 'rw' (the default) and any of <uuid>, <minor>\n"
    "        and <flags> may be empty. Separate extra table lines with commas.\n"
    "    E.g.: dev1,,,,0 100 linear 253:1 0,100 100 error;dev2,,,ro,0 1 error\n"
    "Table_file contents may be supplied on stdin.\n"
    "Options are: devno, devname, blkdevname.\n"
    "Tree specific options are: ascii, utf, vt100; compact, inverted, notrunc;\n"
    "                           blkdevname, [no]device, active, open, rw and uuid.\n\n")


def usage_text():
    out = ["Usage:\n\n"
           "dmsetup\n"
           "        [--version] [-h|--help [-c|-C|--columns]]\n"
           "        [-v|--verbose [-v|--verbose ...]] [-f|--force]\n"
           "        [--checks] [--manglename {none|hex|auto}]\n"
           "        [-r|--readonly] [--noopencount] [--noflush] [--nolockfs] [--inactive]\n"
           "        [--udevcookie <cookie>] [--noudevrules] [--noudevsync] [--verifyudev]\n"
           "        [-y|--yes] [--readahead {[+]<sectors>|auto|none}] [--retry]\n"
           "        [-c|-C|--columns] [-o <fields>] [-O|--sort <sort_fields>]\n"
           "        [-S|--select <selection>] [--nameprefixes] [--noheadings]\n"
           "        [--separator <separator>]\n\n"]
    for c in COMMANDS:
        if c[0] == "stats":
            out.append("\tstats <command> [<options>] [<device>...]\n")
            continue
        out.append("\t%s %s\n" % (c[0], c[3]))
    out.append(USAGE_TAIL)
    return "".join(out)


class Switches:
    """dmsetup's _switches/_int_args/_string_args: counts and last values per option."""
    __slots__ = ("count", "value")

    def __init__(self):
        self.count = {}
        self.value = {}

    def __getitem__(self, key):
        return self.count.get(key, 0)

    def get(self, key, default=None):
        return self.value.get(key, default)

    def set(self, key, value=None):
        self.count[key] = self.count.get(key, 0) + 1
        if value is not None:
            self.value[key] = value

    def clear(self, key):
        self.count.pop(key, None)
        self.value.pop(key, None)


def _atoi(s):
    """C atoi: leading whitespace, optional sign, digits; garbage -> 0."""
    s = s.lstrip()
    i = 0
    if i < len(s) and s[i] in "+-":
        i += 1
    j = i
    while j < len(s) and s[j].isdigit():
        j += 1
    try:
        return int(s[:j]) if j > i else 0
    except ValueError:
        return 0


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
        if key in ("major", "minor", "gid", "uid", "groupid", "regionid", "areas"):
            sw.set(key, _atoi(val))
        elif key == "count":
            sw.set(key, _atoi(val))
            if _atoi(val) < 0:
                ctx.err("Count must be zero or greater.")
                return False, None, None
        elif key == "interval":
            sw.set(key, _atoi(val))
            if _atoi(val) <= 0:
                ctx.err("Interval must be a positive integer.")
                return False, None, None
        elif key == "mode":
            try:
                mode = int(val, 8) if val else 0
            except ValueError:
                mode = 0
            if not mode:
                ctx.err("Invalid argument for --mode: %s. " % val)
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
                n = _atoi(val)
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


def _load(modname, funcname):
    import importlib
    mod = importlib.import_module("dmctl.cli." + modname)
    return getattr(mod, funcname)


def perform(ctx, cmdrec, args, multiple):
    """_perform_command_for_all_repeatable_args."""
    from dmctl.cli.ctx import BackendUnavailable
    fn = _load(cmdrec[1], cmdrec[2])
    repeatable = cmdrec[6]
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
    import importlib
    target, _summary = EXTENSIONS[name]
    modname, attr = target.split(":")
    fn = getattr(importlib.import_module(modname), attr)
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
        cmd = _CMD_INDEX["help"]
        multiple = 0
        ctx.command = "help"
        r = perform(ctx, cmd, args, multiple)
        return 0
    if sw["version"]:
        cmd = _CMD_INDEX["version"]
        ctx.command = "version"
        perform(ctx, cmd, args, 0)
        return 0

    if command is None:
        sys.stderr.write(usage_text())
        return 1
    cmd = _CMD_INDEX.get(command)
    if cmd is None:
        ctx.err("Unknown command.")
        sys.stderr.write(usage_text())
        return 1
    if len(args) < cmd[4] or (cmd[5] >= 0 and len(args) > cmd[5]):
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
    if sw["select"] and cmd[6] == 2 and command != "info":
        ctx.selection_cmd = cmd
        sw.count["columns"] = 1
        cmd = _CMD_INDEX["info"]

    if sw["columns"]:
        from dmctl.cli import report_cli
        if not report_cli.report_init(ctx, cmd[0]):
            return 1

    multiple = 1 if (cmd[6] and len(args) != 1 and
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
            ctx.report_output(count)
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
    except BrokenPipeError:
        try:
            sys.stdout = None
        except Exception:
            pass
        rc = 1
    sys.exit(rc)
