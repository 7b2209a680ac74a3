"""dmsetup's report (``-c``/``-C``/``--columns``) layer: its field table, report
set-up from the command line switches, per-device report objects and output.

Imported only when report mode is used (or ``help -c``); the engine is
``dmctl.libdm.report``.
"""

from dmctl.libdm import report as R

# Object types (dmsetup's DR_*)
TASK, INFO, DEPS, TREE, NAME, STATS, STATS_META = 1, 2, 4, 8, 16, 32, 64

TYPES = [
    R.ObjType(TASK, "Mapped Device Name", "name_"),
    R.ObjType(INFO, "Mapped Device Information", "info_"),
    R.ObjType(DEPS, "Mapped Device Relationship Information", "deps_"),
    R.ObjType(TREE, "Mapped Device Relationship Information", "tree_"),
    R.ObjType(NAME, "Mapped Device Name Components", "splitname_"),
    R.ObjType(STATS, "Mapped Device Statistics", "stats_"),
    R.ObjType(STATS_META, "Mapped Device Statistics Region Information", "region_"),
]

DEFAULT_OPTIONS = "name,major,minor,attr,open,segments,events,uuid"
SPLITNAME_OPTIONS = "vg_name,lv_name,lv_layer"


class FieldFailed(Exception):
    """A field could not be computed; the message was printed."""


# ---------------------------------------------------------------- field functions

def _attr(o):
    i = o.info
    return "%s%s%s%s" % ("L" if i.live_table else "-", "I" if i.inactive_table else "-",
                         "s" if i.suspended else "-", "r" if i.read_only else "w")


def _tables(o):
    i = o.info
    if i.live_table:
        return "Both" if i.inactive_table else "Live"
    return "Inactive" if i.inactive_table else "None"


def _blkdevname(o):
    n = o.ctx.device_name(o.info.major, o.info.minor, True)
    if n is None:
        o.ctx.err("Could not resolve block device name for %d:%d."
                  % (o.info.major, o.info.minor))
        raise R.FieldError()
    return n


def _deps_list(o, blk):
    out = []
    for maj, mnr in o.deps:
        if blk:
            n = o.ctx.device_name(maj, mnr, True)
            if n is None:
                o.ctx.err("Could not resolve block device name for %d:%d." % (maj, mnr))
                raise R.FieldError()
            out.append(n)
        else:
            out.append("%d:%d" % (maj, mnr))
    return ",".join(out)


def _tree_names(o, inverted):
    node = o.tree_node
    return ",".join(c.name for c in node.children(inverted) if c.name)


def _tree_parent_devs(o):
    node = o.tree_node
    return ",".join("%d:%d" % (c.major, c.minor) for c in node.children(True)
                    if c.major or c.minor)


def _mangled(o, s, what):
    from dmctl.libdm import names
    try:
        return names.mangle(s, o.ctx.mangling, what)
    except names.ManglingError as e:
        o.ctx.err(str(e))
        o.ctx.err('Failed to mangle device %s "%s".' % ("name" if what == "name" else "uuid", s))
        raise R.FieldError()


def _unmangled(o, kernel_s, shown, what):
    if o.ctx.mangling != "none":
        return shown
    from dmctl.libdm import names
    return names.unmangle(kernel_s, "none", what)


def _stats_none(o):
    return 0


F = R.Field
S, N, Z = R.STR, R.NUM, R.SIZ

FIELDS = [
    F(TASK, S, "Name", 16, "name", "Name of mapped device.", lambda o: o.name),
    F(TASK, S, "MangledName", 16, "mangled_name", "Mangled name of mapped device.",
      lambda o: _mangled(o, o.name, "name")),
    F(TASK, S, "UnmangledName", 16, "unmangled_name", "Unmangled name of mapped device.",
      lambda o: _unmangled(o, o.kname, o.name, "name")),
    F(TASK, S, "UUID", 32, "uuid", "Unique (optional) identifier for mapped device.",
      lambda o: o.uuid),
    F(TASK, S, "MangledUUID", 32, "mangled_uuid",
      "Mangled unique (optional) identifier for mapped device.",
      lambda o: _mangled(o, o.uuid, "UUID")),
    F(TASK, S, "UnmangledUUID", 32, "unmangled_uuid",
      "Unmangled unique (optional) identifier for mapped device.",
      lambda o: _unmangled(o, o.kuuid, o.uuid, "UUID")),
    F(TASK, N, "RAhead", 6, "read_ahead", "Read ahead value.", lambda o: o.read_ahead),
    F(INFO, S, "BlkDevName", 16, "blkdevname", "Name of block device.", _blkdevname),
    F(INFO, S, "Stat", 4, "attr", "(L)ive, (I)nactive, (s)uspended, (r)ead-only, read-(w)rite.",
      _attr),
    F(INFO, S, "Tables", 6, "tables_loaded",
      "Which of the live and inactive table slots are filled.", _tables),
    F(INFO, S, "Suspended", 9, "suspended", "Whether the device is suspended.",
      lambda o: "Suspended" if o.info.suspended else "Active"),
    F(INFO, S, "Read-only", 9, "readonly", "Whether the device is read-only or writeable.",
      lambda o: "Read-only" if o.info.read_only else "Writeable"),
    F(INFO, S, "DevNo", 5, "devno", "Device major and minor numbers",
      lambda o: "%d:%d" % (o.info.major, o.info.minor)),
    F(INFO, N, "Maj", 3, "major", "Block device major number.", lambda o: o.info.major),
    F(INFO, N, "Min", 3, "minor", "Block device minor number.", lambda o: o.info.minor),
    F(INFO, N, "Open", 4, "open", "Number of references to open device, if requested.",
      lambda o: o.info.open_count),
    F(INFO, N, "Targ", 4, "segments", "Number of segments in live table, if present.",
      lambda o: o.info.target_count),
    F(INFO, N, "Event", 6, "events", "Number of most recent event.",
      lambda o: (str(o.info.event_nr & 0xFFFFFFFF), o.info.event_nr & 0xFFFFFFFF)),
    F(DEPS, N, "#Devs", 5, "device_count", "Number of devices used by this one.",
      lambda o: len(o.deps)),
    F(TREE, S, "DevNamesUsed", 16, "devs_used",
      "List of names of mapped devices used by this one.", lambda o: _tree_names(o, False)),
    F(DEPS, S, "DevNosUsed", 16, "devnos_used",
      "List of device numbers of devices used by this one.", lambda o: _deps_list(o, False)),
    F(DEPS, S, "BlkDevNamesUsed", 16, "blkdevs_used",
      "List of names of block devices used by this one.", lambda o: _deps_list(o, True)),
    F(TREE, N, "#Refs", 5, "device_ref_count", "Number of mapped devices referencing this one.",
      lambda o: o.tree_node.num_children(True)),
    F(TREE, S, "RefNames", 8, "names_using_dev",
      "List of names of mapped devices using this one.", lambda o: _tree_names(o, True)),
    F(TREE, S, "RefDevNos", 9, "devnos_using_dev",
      "List of device numbers of mapped devices using this one.", _tree_parent_devs),
    F(NAME, S, "Subsys", 6, "subsystem", "Userspace subsystem responsible for this device.",
      lambda o: o.split.subsystem),
    F(NAME, S, "VG", 4, "vg_name", "LVM Volume Group name.", lambda o: o.split.vg_name),
    F(NAME, S, "LV", 4, "lv_name", "LVM Logical Volume name.", lambda o: o.split.lv_name),
    F(NAME, S, "LVLayer", 7, "lv_layer", "LVM device layer.", lambda o: o.split.lv_layer),
]

# dmstats' fields: listed by help, selectable, never produce rows (dmctl keeps no
# statistics regions).
_STATS = [
    (STATS, N, "#Reads", 6, "read_count", "Count of reads completed."),
    (STATS, N, "#RdMrgs", 7, "reads_merged_count", "Count of read requests merged."),
    (STATS, N, "#RdSectors", 10, "read_sector_count", "Count of sectors read."),
    (STATS, N, "AccRdTime", 11, "read_time", "Accumulated duration of all read requests (ns)."),
    (STATS, N, "#Writes", 7, "write_count", "Count of writes completed."),
    (STATS, N, "#WrMrgs", 7, "writes_merged_count", "Count of write requests merged."),
    (STATS, N, "#WrSectors", 10, "write_sector_count", "Count of sectors written."),
    (STATS, N, "AccWrTime", 11, "write_time", "Accumulated duration of all writes (ns)."),
    (STATS, N, "#InProg", 7, "in_progress_count", "Count of requests currently in progress."),
    (STATS, N, "IoTicks", 7, "io_ticks", "Nanoseconds spent servicing requests."),
    (STATS, N, "QueueTicks", 10, "queue_ticks", "Total nanoseconds spent in queue."),
    (STATS, N, "RdTicks", 7, "read_ticks", "Nanoseconds spent servicing reads."),
    (STATS, N, "WrTicks", 7, "write_ticks", "Nanoseconds spent servicing writes."),
    (STATS, N, "RMrg/s", 6, "reads_merged_per_sec", "Read requests merged per second."),
    (STATS, N, "WMrg/s", 6, "writes_merged_per_sec", "Write requests merged per second."),
    (STATS, N, "R/s", 3, "reads_per_sec", "Reads per second."),
    (STATS, N, "W/s", 3, "writes_per_sec", "Writes per second."),
    (STATS, N, "RSz/s", 5, "read_size_per_sec", "Size of data read per second."),
    (STATS, N, "WSz/s", 5, "write_size_per_sec", "Size of data written per second."),
    (STATS, N, "AvgRqSz", 7, "avg_request_size", "Average request size."),
    (STATS, N, "QSize", 5, "queue_size", "Average queue size."),
    (STATS, N, "AWait", 5, "await", "Averate wait time."),
    (STATS, N, "RdAWait", 7, "read_await", "Averate read wait time."),
    (STATS, N, "WrAWait", 7, "write_await", "Averate write wait time."),
    (STATS, N, "Throughput", 10, "throughput", "Throughput."),
    (STATS, N, "SvcTm", 5, "service_time", "Service time."),
    (STATS, N, "Util%", 5, "util", "Utilization."),
    (STATS, S, "Histogram Counts", 16, "hist_count", "Latency histogram counts."),
    (STATS, S, "Histogram Counts", 16, "hist_count_bounds",
     "Latency histogram counts with bin boundaries."),
    (STATS, S, "Histogram Counts", 16, "hist_count_ranges",
     "Latency histogram counts with bin ranges."),
    (STATS, S, "Histogram%", 10, "hist_percent", "Relative latency histogram."),
    (STATS, S, "Histogram%", 10, "hist_percent_bounds",
     "Relative latency histogram with bin boundaries."),
    (STATS, S, "Histogram%", 10, "hist_percent_ranges",
     "Relative latency histogram with bin ranges."),
    (STATS, N, "IntervalNs", 10, "interval_ns", "Sampling interval in nanoseconds."),
    (STATS, N, "Interval", 8, "interval", "Sampling interval."),
    (STATS_META, N, "RgID", 4, "region_id", "Region ID."),
    (STATS_META, Z, "RgStart", 7, "region_start", "Region start."),
    (STATS_META, Z, "RgSize", 6, "region_len", "Region length."),
    (STATS_META, N, "ArID", 4, "area_id", "Area ID."),
    (STATS_META, Z, "ArStart", 7, "area_start", "Area offset from start of device."),
    (STATS_META, Z, "ArSize", 6, "area_len", "Area length."),
    (STATS_META, Z, "ArOff", 5, "area_offset", "Area offset from start of region."),
    (STATS_META, N, "#Areas", 6, "area_count", "Area count."),
    (STATS_META, N, "GrpID", 5, "group_id", "Group ID."),
    (STATS_META, S, "ProgID", 6, "program_id", "Program ID."),
    (STATS_META, S, "UserData", 8, "user_data", "Auxiliary data."),
    (STATS_META, S, "Precise", 7, "precise", "Set if nanosecond precision counters are enabled."),
    (STATS_META, S, "#Bins", 9, "hist_bins", "The number of histogram bins configured."),
    (STATS_META, S, "Histogram Bounds", 16, "hist_bounds", "Latency histogram bin boundaries."),
    (STATS_META, S, "Histogram Ranges", 16, "hist_ranges", "Latency histogram bin ranges."),
    (STATS_META, S, "Name", 16, "stats_name", "Stats name of current object."),
    (STATS_META, S, "ObjType", 7, "obj_type", "Type of stats object being reported."),
]
FIELDS += [F(t, k, h, w, i, d, _stats_none) for (t, k, h, w, i, d) in _STATS]

FIELD_IDS = [f.id for f in FIELDS]


# ---------------------------------------------------------------- report objects

class DevObj:
    """What dmsetup's report functions see for one device (task, info, deps, tree
    node, split name), computed lazily."""

    def __init__(self, ctx, info, state):
        self.ctx = ctx
        self.info = info
        self.state = state
        self.kname = info.name
        self.kuuid = info.uuid or ""
        self.name = ctx.display_name(info.name)
        self.uuid = ctx.display_name(self.kuuid) if self.kuuid else ""
        self._deps = None
        self._split = None

    @property
    def read_ahead(self):
        try:
            ra = self.ctx.mapper().read_ahead(self.info)
        except Exception:
            ra = None
        return 0 if ra is None else ra

    @property
    def deps(self):
        if self._deps is None:
            from dmctl.records import DevId
            from dmctl.errors import DmError
            try:
                _i, deps = self.ctx.mapper().deps(
                    DevId(major=self.info.major, minor=self.info.minor),
                    inactive=bool(self.ctx.sw["inactive"]))
            except DmError:
                self.ctx.err("Cannot get deps for %d:%d." % (self.info.major, self.info.minor))
                raise FieldFailed()
            self._deps = list(deps)
        return self._deps

    @property
    def tree_node(self):
        t = self.state.tree
        node = t.find(self.info.major, self.info.minor) if t is not None else None
        if node is None:
            self.ctx.err("Cannot find node %d:%d." % (self.info.major, self.info.minor))
            raise FieldFailed()
        return node

    @property
    def split(self):
        if self._split is None:
            from dmctl.libdm import names
            self._split = names.split_name(self.uuid, self.name, "-")
        return self._split


class SplitObj:
    def __init__(self, split):
        self.split = split


class ReportState:
    """ctx.report: the engine plus what dmsetup keeps beside it."""

    def __init__(self, rep, types):
        self.rep = rep
        self.types = types
        self.tree = None
        self.json_rows = None


# ---------------------------------------------------------------- set-up / output

def _warn(ctx):
    def w(msg):
        ctx.err(msg)
    return w


def report_init(ctx, cmdname, help_only=False):
    """dmsetup's _report_init: build ctx.report from the switches.  False on error
    (messages printed)."""
    sw = ctx.sw
    options = DEFAULT_OPTIONS
    report_types = 0
    if cmdname == "splitname":
        options = SPLITNAME_OPTIONS
        report_types |= NAME
    separator = " "
    flags = R.ALIGNED | R.BUFFERED | R.HEADINGS
    if sw["noheadings"]:
        separator = ":"
        flags &= ~(R.ALIGNED | R.HEADINGS)
    if sw["unbuffered"]:
        flags &= ~R.BUFFERED
    if sw["rows"]:
        flags |= R.COLUMNS_AS_ROWS
    if sw["unquoted"]:
        flags |= R.UNQUOTED
    prefixes = False
    if sw["nameprefixes"]:
        flags &= ~R.ALIGNED
        flags |= R.FIELD_NAME_PREFIX
        prefixes = True
    opt = sw.get("options") if sw["options"] else None
    if help_only:
        opt = "help"
    if opt:
        if "help" in opt:
            # count & interval forbidden for help
            sw.clear("count")
            sw.clear("interval")
            flags &= ~R.HEADINGS
        if not opt.startswith("+"):
            options = opt
        else:
            options = options + "," + opt[1:]
    keys = ""
    if sw["sort"] and sw.get("sort") and not help_only:
        keys = sw.get("sort")
        flags |= R.BUFFERED
        if cmdname in ("status", "table"):
            ctx.err("--sort is not yet supported with status and table.")
            return False
    if sw["separator"] and sw.get("separator") is not None:
        separator = sw.get("separator")
        flags &= ~R.ALIGNED
    selection = sw.get("select") if sw["select"] and not help_only else None
    try:
        rep = R.Report(TYPES, FIELDS, options, separator, flags, keys, selection,
                       report_types=report_types, warn=_warn(ctx), error=_warn(ctx),
                       field_name_prefix="dm_" if prefixes else "")
    except R.ReportError:
        return False
    state = ReportState(rep, rep.report_types)
    ctx.report = state
    if help_only:
        return True
    if rep.report_types & TREE and not rep.already_reported:
        try:
            from dmctl.libdm import tree
            state.tree, _ = tree.build(ctx.mapper(), ctx.display_name)
        except Exception as e:
            from dmctl.errors import DmError
            if isinstance(e, DmError):
                ctx.ioctl_error(e, op="names")
                ctx.err("Internal device dependency tree creation failed.")
                return False
            raise
    if ctx.json:
        state.json_rows = []
    return True


def add_device(ctx, info):
    """_display_info_cols for one device: add a row, or (with -S on another
    command) run that command on the device when it is selected."""
    state = ctx.report
    rep = state.rep
    if rep.already_reported:
        return True
    if rep.report_types & (STATS | STATS_META):
        return True     # no statistics regions: nothing to report
    obj = DevObj(ctx, info, state)
    sel_cmd = ctx.selection_cmd
    try:
        selected = rep.add(lambda t: obj, do_output=sel_cmd is None)
    except (FieldFailed, R.FieldError):
        return False
    if sel_cmd is None and not rep.flags & R.BUFFERED and not ctx.json:
        _print(ctx, rep.output())       # --unbuffered: each row as it comes
    if sel_cmd is not None and selected:
        return sel_cmd.handler()(ctx, [obj.name], None, 1)
    return True


def add_split(ctx, split):
    state = ctx.report
    try:
        state.rep.add(lambda t: SplitObj(split))
    except (FieldFailed, R.FieldError):
        return False
    return True


def report_output(ctx, count):
    state = ctx.report
    if state is None:
        return
    if getattr(state, "is_json", False):
        state.flush(ctx)
        return
    rep = state.rep
    if ctx.json:
        import json
        rows = rep.rows_as_dicts()
        ctx.out(json.dumps(rows, indent=2) + "\n")
        return
    lines = []
    if (ctx.sw.get("count") or 0) != 1 and not rep.is_empty():
        lines.extend(rep.headings())
    lines.extend(rep.output())
    _print(ctx, lines)


def _print(ctx, lines):
    if lines:
        ctx.out("".join(l + "\n" for l in lines))


def print_field_help(ctx, cmdname=""):
    """``help -c``/``-o help``: the field list on stderr."""
    sw = ctx.sw
    sw.set("options", "help")
    sw.clear("sort")
    report_init(ctx, cmdname, help_only=True)
    ctx.report = None
