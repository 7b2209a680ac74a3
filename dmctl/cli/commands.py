"""dmsetup's command table (1.02.185's ``_dm_commands``) and dmctl's own commands, as
named records (with the record of a long option), and dmsetup's usage text.

Shared by the entry point (``dmctl.cli.main``: look-up, argument counts) and the
commands (``help`` prints the usage; ``-S`` runs the selected command per device).
On every command's start-up path: imports nothing; a command's module is imported
only when it runs (``Command.handler``).
"""


class Command(tuple):
    """One dmsetup command: ``name``; its implementation ``module``
    (``dmctl.cli.<module>``) and ``function`` (``fn(ctx, args, entry, multiple) ->
    bool``); ``usage`` (the text after the name in the usage); ``min_args`` and
    ``max_args`` (-1: no limit); ``repeatable``: 0 runs once, 1 once per device
    argument, 2 also accepts ``-S`` (dmsetup's ``repeatable_cmd``).

    A tuple with named fields, made from the row tuple (no collections/dataclasses
    import, no Python-level constructor: this table is built on every start-up)."""
    __slots__ = ()

    name = property(lambda self: self[0])
    module = property(lambda self: self[1])
    function = property(lambda self: self[2])
    usage = property(lambda self: self[3])
    min_args = property(lambda self: self[4])
    max_args = property(lambda self: self[5])
    repeatable = property(lambda self: self[6])

    @property
    def selectable(self):
        """Runs on each device that ``-S`` selects (dmsetup's ``_selection_cmd``)."""
        return self.repeatable == 2

    def arg_count_ok(self, n):
        return n >= self.min_args and (self.max_args < 0 or n <= self.max_args)

    def handler(self):
        """The command's function (its module imported now)."""
        return getattr(_import("dmctl.cli." + self.module), self.function)


class Option(tuple):
    """One long option of dmsetup's table: ``name`` and ``has_arg`` (getopt's NO_ARG,
    REQUIRED), made from the row ``(name, has_arg)``."""
    __slots__ = ()

    name = property(lambda self: self[0])
    has_arg = property(lambda self: self[1])


class Extension(tuple):
    """One of dmctl's own commands (click, or replay-log's getopt): ``target``
    (``"module:attr"``) and ``summary``, made from the row ``(target, summary)``."""
    __slots__ = ()

    target = property(lambda self: self[0])
    summary = property(lambda self: self[1])

    def load(self):
        modname, attr = self.target.split(":")
        return getattr(_import(modname), attr)


def _import(modname):
    """The module ``modname``, imported now: ``importlib.import_module`` without
    importing ``importlib`` (whose ``__init__`` imports ``warnings``) at start-up."""
    import sys
    __import__(modname)
    return sys.modules[modname]


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

COMMANDS = [Command(row) for row in (
    ("help", "cmd_query", "help", "[-c|-C|--columns]", 0, 0, 0),
    ("create", "cmd_create", "create", _CREATE_USAGE, 0, 2, 0),
    ("remove", "cmd_lifecycle", "remove",
     "[--deferred] [-f|--force] [--retry] <device>...", 0, -1, 2),
    ("remove_all", "cmd_lifecycle", "remove_all", "[-f|--force]", 0, 0, 0),
    ("suspend", "cmd_lifecycle", "suspend", "[--noflush] [--nolockfs] <device>...", 0, -1, 2),
    ("resume", "cmd_lifecycle", "resume", _RESUME_USAGE, 0, -1, 2),
    ("load", "cmd_create", "load", "<device> [<table>|<table_file>]", 0, 2, 0),
    ("clear", "cmd_lifecycle", "clear", "<device>", 0, -1, 2),
    ("reload", "cmd_create", "load", "<device> [<table>|<table_file>]", 0, 2, 0),
    ("wipe_table", "cmd_lifecycle", "wipe_table",
     "[-f|--force] [--noflush] [--nolockfs] <device>...", 0, -1, 2),
    ("rename", "cmd_lifecycle", "rename", "<device> [--setuuid] <new_name_or_uuid>", 1, 2, 0),
    ("measure", "cmd_query", "status", "[<device>...]", 0, -1, 2),
    ("message", "cmd_lifecycle", "message", "<device> <sector> <message>", 2, -1, 0),
    ("ls", "cmd_query", "ls",
     "[--target <target_type>] [--exec <command>] [-o <options>] [--tree]", 0, 0, 0),
    ("info", "cmd_query", "info", "[<device>...]", 0, -1, 1),
    ("deps", "cmd_query", "deps", "[-o <options>] [<device>...]", 0, -1, 2),
    ("stats", "cmd_query", "stats", "<command> [<options>] [<device>...]", 1, -1, 1),
    ("status", "cmd_query", "status",
     "[<device>...] [--noflush] [--target <target_type>]", 0, -1, 2),
    ("table", "cmd_query", "status",
     "[<device>...] [--concise] [--target <target_type>] [--showkeys]", 0, -1, 2),
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
    ("setgeometry", "cmd_lifecycle", "setgeometry",
     "<device> <cyl> <head> <sect> <start>", 5, 5, 0),
    ("splitname", "cmd_query", "splitname", "<device> [<subsystem>]", 1, 2, 0),
)]
BY_NAME = {c.name: c for c in COMMANDS}

# dmctl's own commands, dispatched before dmsetup's option parsing because they have
# their own options.
EXTENSIONS = {name: Extension(row) for name, row in (
    ("io", ("dmctl.cli.ext_io:io",
            "Submit I/O to a simulated device (write, read, discard, flush, script, copy)")),
    ("sim", ("dmctl.cli.ext_sim:sim",
             "Control the simulator (crash, settle, fail, heal, reset, status)")),
    ("era", ("dmctl.cli.ext_era:era", "Read era metadata (changed-since, dump)")),
    ("replay-log", ("dmctl.tools.replay_log:main",
                    "Replay a dm-log-writes log (xfstests' replay-log)")),
    ("logd", ("dmctl.cli.ext_logd:logd",
              "Userspace dirty-log server (clustered-core, clustered-disk)")),
)}

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
    """dmsetup's _usage."""
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
        out.append("\t%s %s\n" % (c.name, c.usage))
    out.append(USAGE_TAIL)
    return "".join(out)
