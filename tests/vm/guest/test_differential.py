"""Differential tests: dmctl against the real dmsetup, on the same real kernel.

Each case is data: setup steps (run with the real dmsetup), then one command line that is
run twice from an identical, freshly rebuilt state -- once as ``dmsetup ARGS`` and once
as ``python3 -m dmctl --backend kernel ARGS`` -- and the two must give the same stdout,
stderr and exit status.  Between the runs every ``*-dmctl-vm`` device is removed and the
metadata loop devices are zeroed (see dmvm.Differ), so both see the same minors, event
numbers and on-disk metadata.

Documented exceptions: the kernel-reason lines dmctl adds under a failed ioctl (checked
against the kernel log, then left out), and per case EXCEPTIONS (case id -> why,
normaliser); nothing else.

The module skips while dmctl/backend/kernel.py does not exist.  To check the cases
themselves (that they are deterministic), run them with dmsetup on both sides:
``DMCTL_VM_DIFF_AGAINST=dmsetup tests/vm/run tests/vm/guest/test_differential.py``.
"""

import difflib
import os
import re

import pytest

from dmvm import REPO, dev, dmsetup, dmctl

AGAINST_DMSETUP = os.environ.get("DMCTL_VM_DIFF_AGAINST") == "dmsetup"
if not AGAINST_DMSETUP and not os.path.exists(os.path.join(REPO, "dmctl", "backend", "kernel.py")):
    pytest.skip("dmctl/backend/kernel.py does not exist yet: the differential tests start "
                "running when the kernel backend lands", allow_module_level=True)

# --------------------------------------------------------------------------- devices

LIN, LIN2, ZERO, ERR = dev("lin"), dev("lin2"), dev("zero"), dev("err")
ERA, LW, MIR, MIRD = dev("era"), dev("lw"), dev("mirror"), dev("mirrord")
MULTI, EMPTY, STACK, RO = dev("multi"), dev("empty"), dev("stack"), dev("ro")
NOSUCH = dev("nosuch")
UUID = "LIN-UUID-DMCTL-VM"

T_LIN = "0 32768 linear {lin} 0"
T_ZERO = "0 1024 zero"
T_ERR = "0 1024 error"
T_ERA = "0 131072 era {era_meta} {era_origin} 128"
T_LW = "0 32768 log-writes {lw_data} {lw_log}"
T_MIR = "0 16384 mirror core 1 1024 2 {leg1} 0 {leg2} 0"
T_MIRD = "0 16384 mirror disk 2 {mlog} 1024 2 {leg1} 0 {leg2} 0"
T_MULTI = "0 1024 linear {lin} 0\n1024 1024 zero\n2048 1024 error\n"


def C(name, table, *opts):
    """A ``create`` command line."""
    return ["create", name, *opts, "--table", table]


def hold(name):
    """A setup step that keeps /dev/mapper/NAME open until the run is torn down."""
    def step(differ):
        differ.holder.open("/dev/mapper/" + name)
    step.__name__ = "hold(%s)" % name
    return step


S_LIN = [C(LIN, T_LIN, "-u", UUID)]
S_MIR = [C(MIR, T_MIR), ["wait", MIR, "0"]]         # the resync event has happened
S_MIRD = [C(MIRD, T_MIRD), ["wait", MIRD, "0"]]
S_ERA = [C(ERA, T_ERA, "-u", "ERA-UUID-DMCTL-VM")]
S_LW = [C(LW, T_LW)]
S_NOTABLE = [["create", EMPTY, "--notable"]]
S_INACTIVE = S_NOTABLE + [["load", EMPTY, "--table", T_ZERO]]
S_LIN_LOAD = S_LIN + [["load", LIN, "--table", "0 16384 linear {lin} 0"]]
S_SUSP = S_LIN + [["suspend", LIN]]
S_STACK = S_LIN + [C(STACK, "0 16384 linear /dev/mapper/" + LIN + " 0")]
S_MANY = S_LIN + [C(ZERO, T_ZERO), C(ERR, T_ERR), {"args": ["create", MULTI], "stdin": T_MULTI}]
S_DEFERRED = S_LIN + [hold(LIN), ["remove", "--deferred", LIN]]


def case(id, args, setup=(), stdin=None, timeout=None):
    return pytest.param(args, list(setup), stdin, timeout, id=id)


CASES = [
    # ---- global, no devices
    case("version", ["version"]),
    case("targets", ["targets"]),
    case("target-version", ["target-version", "era", "log-writes", "mirror", "linear",
                            "striped", "error", "zero"]),
    case("target-version-unknown", ["target-version", "nosuch"]),
    case("ls-empty", ["ls"]),
    case("info-empty", ["info"]),
    case("table-empty", ["table"]),
    case("status-empty", ["status"]),
    # ---- linear
    case("create-linear", C(LIN, T_LIN)),
    case("create-linear-uuid", C(LIN, T_LIN, "-u", UUID)),
    case("create-readonly", C(RO, T_ZERO, "-r")),
    case("create-multiline-stdin", ["create", MULTI], stdin=T_MULTI),
    case("create-duplicate-name", C(LIN, T_LIN), setup=S_LIN),
    case("create-duplicate-uuid", C(LIN2, T_LIN, "-u", UUID), setup=S_LIN),
    case("table-linear", ["table", LIN], S_LIN),
    case("status-linear", ["status", LIN], S_LIN),
    case("info-linear", ["info", LIN], S_LIN),
    case("info-c-linear", ["info", "-c", LIN], S_LIN),
    case("info-c-fields", ["info", "-c", "-o", "name,uuid,major,minor,attr,open,segments,"
                           "events,tables_loaded,suspended,readonly,devno"], S_MANY),
    case("info-by-uuid", ["info", "-u", UUID], S_LIN),
    case("info-by-devno", ["info", "-j", "254", "-m", "0"], S_LIN),
    case("table-by-uuid", ["table", "-u", UUID], S_LIN),
    case("deps-linear", ["deps", LIN], S_LIN),
    case("readonly-info", ["info", RO], [C(RO, T_ZERO, "-r")]),
    case("ls-many", ["ls"], S_MANY),
    case("info-many", ["info"], S_MANY),
    case("info-c-many", ["info", "-c"], S_MANY),
    case("table-many", ["table"], S_MANY),
    case("status-many", ["status"], S_MANY),
    case("deps-many", ["deps"], S_MANY),
    case("ls-target-linear", ["ls", "--target", "linear"], S_MANY),
    case("status-target-linear", ["status", "--target", "linear"], S_MANY),
    case("status-target-none", ["status", "--target", "era"], S_MANY),
    case("table-multiline", ["table", MULTI], S_MANY),
    case("status-multiline", ["status", MULTI], S_MANY),
    case("message-linear", ["message", LIN, "0", "hello"], S_LIN),
    # ---- stacked
    case("deps-stacked", ["deps", STACK], S_STACK),
    case("ls-tree", ["ls", "--tree"], S_STACK),
    case("info-open-count", ["info", LIN], S_STACK),
    case("remove-busy", ["remove", LIN], S_STACK),
    # ---- zero, error
    case("create-zero", C(ZERO, T_ZERO)),
    case("create-error", C(ERR, T_ERR)),
    case("table-zero", ["table", ZERO], [C(ZERO, T_ZERO)]),
    case("status-zero", ["status", ZERO], [C(ZERO, T_ZERO)]),
    case("table-error", ["table", ERR], [C(ERR, T_ERR)]),
    case("status-error", ["status", ERR], [C(ERR, T_ERR)]),
    # ---- era (never `status` while suspended: the kernel blocks until resume)
    case("create-era", C(ERA, T_ERA)),
    case("status-era", ["status", ERA], S_ERA),
    case("table-era", ["table", ERA], S_ERA),
    case("info-era", ["info", ERA], S_ERA),
    case("message-era-checkpoint", ["message", ERA, "0", "checkpoint"], S_ERA),
    case("status-era-after-checkpoint", ["status", ERA],
         S_ERA + [["message", ERA, "0", "checkpoint"]]),
    case("message-era-take-snap", ["message", ERA, "0", "take_metadata_snap"], S_ERA),
    case("status-era-with-snap", ["status", ERA],
         S_ERA + [["message", ERA, "0", "take_metadata_snap"]]),
    case("message-era-take-snap-twice", ["message", ERA, "0", "take_metadata_snap"],
         S_ERA + [["message", ERA, "0", "take_metadata_snap"]]),
    case("message-era-drop-no-snap", ["message", ERA, "0", "drop_metadata_snap"], S_ERA),
    case("message-era-unknown", ["message", ERA, "0", "frobnicate"], S_ERA),
    case("message-era-extra-arg", ["message", ERA, "0", "checkpoint", "now"], S_ERA),
    case("status-era-recreated", ["status", ERA],
         S_ERA + [["remove", ERA], C(ERA, T_ERA)]),
    # ---- log-writes
    case("create-log-writes", C(LW, T_LW)),
    case("status-log-writes", ["status", LW], S_LW),
    case("table-log-writes", ["table", LW], S_LW),
    case("message-lw-mark", ["message", LW, "0", "mark", "mymark"], S_LW),
    case("status-lw-after-mark", ["status", LW], S_LW + [["message", LW, "0", "mark", "m1"]]),
    case("message-lw-bad", ["message", LW, "0", "mark"], S_LW),
    case("message-lw-unknown", ["message", LW, "0", "frob", "x"], S_LW),
    case("create-lw-extra-args", C(LW, T_LW + " extra")),
    # ---- mirror
    case("create-mirror-core", C(MIR, T_MIR)),
    case("create-mirror-disk", C(MIRD, T_MIRD)),
    case("create-mirror-nosync", C(MIR, "0 16384 mirror core 2 1024 nosync 2 {leg1} 0 {leg2} 0")),
    case("status-mirror-core", ["status", MIR], S_MIR),
    case("table-mirror-core", ["table", MIR], S_MIR),
    case("status-mirror-disk", ["status", MIRD], S_MIRD),
    case("table-mirror-disk", ["table", MIRD], S_MIRD),
    case("info-mirror", ["info", MIR], S_MIR),
    case("deps-mirror-disk", ["deps", MIRD], S_MIRD),
    case("message-mirror", ["message", MIR, "0", "hello"], S_MIR),
    case("create-mirror-keep-log-without-handle-errors",
         C(MIR, "0 16384 mirror disk 3 {mlog} 1024 nosync 2 {leg1} 0 {leg2} 0 1 keep_log")),
    # ---- suspended devices
    case("suspend", ["suspend", LIN], S_LIN),
    case("suspend-noflush-nolockfs", ["suspend", "--noflush", "--nolockfs", LIN], S_LIN),
    case("suspend-again", ["suspend", LIN], S_SUSP),
    case("resume", ["resume", LIN], S_SUSP),
    case("info-suspended", ["info", LIN], S_SUSP),
    case("info-c-suspended", ["info", "-c", LIN], S_SUSP),
    case("status-suspended-linear", ["status", LIN], S_SUSP),
    case("table-suspended", ["table", LIN], S_SUSP),
    case("status-suspended-mirror", ["status", MIR], S_MIR + [["suspend", MIR]]),
    case("status-suspended-lw", ["status", LW], S_LW + [["suspend", LW]]),
    # ---- inactive tables
    case("create-notable", ["create", EMPTY, "--notable"]),
    case("info-notable", ["info", EMPTY], S_NOTABLE),
    case("table-notable", ["table", EMPTY], S_NOTABLE),
    case("status-notable", ["status", EMPTY], S_NOTABLE),
    case("load-into-notable", ["load", EMPTY, "--table", T_ZERO], S_NOTABLE),
    case("info-inactive-only", ["info", EMPTY], S_INACTIVE),
    case("table-inactive-only", ["table", "--inactive", EMPTY], S_INACTIVE),
    case("status-inactive-only", ["status", "--inactive", EMPTY], S_INACTIVE),
    case("resume-inactive-only", ["resume", EMPTY], S_INACTIVE),
    case("info-live-and-inactive", ["info", LIN], S_LIN_LOAD),
    case("info-c-live-and-inactive", ["info", "-c", LIN], S_LIN_LOAD),
    case("table-live-with-inactive", ["table", LIN], S_LIN_LOAD),
    case("table-inactive", ["table", "--inactive", LIN], S_LIN_LOAD),
    case("clear", ["clear", LIN], S_LIN_LOAD),
    case("info-after-clear", ["info", LIN], S_LIN_LOAD + [["clear", LIN]]),
    case("resume-swaps-table", ["resume", LIN], S_LIN_LOAD),
    case("table-after-swap", ["table", LIN], S_LIN_LOAD + [["resume", LIN]]),
    case("load-nonexistent", ["load", NOSUCH, "--table", T_ZERO]),
    case("load-bad-table", ["load", LIN, "--table", "0 1024 nosuchtarget"], S_LIN),
    # ---- renames and uuids
    case("rename", ["rename", LIN, LIN2], S_LIN),
    case("ls-after-rename", ["ls"], S_LIN + [["rename", LIN, LIN2]]),
    case("info-after-rename", ["info", LIN2], S_LIN + [["rename", LIN, LIN2]]),
    case("rename-to-existing", ["rename", LIN, EMPTY], S_LIN + S_NOTABLE),
    case("rename-nonexistent", ["rename", NOSUCH, LIN2]),
    case("rename-setuuid", ["rename", EMPTY, "--setuuid", "EMPTY-UUID-DMCTL-VM"], S_NOTABLE),
    case("info-after-setuuid", ["info", "-u", "EMPTY-UUID-DMCTL-VM"],
         S_NOTABLE + [["rename", EMPTY, "--setuuid", "EMPTY-UUID-DMCTL-VM"]]),
    case("rename-setuuid-already-set", ["rename", LIN, "--setuuid", "NEW-UUID"], S_LIN),
    case("info-uuid-nonexistent", ["info", "-u", "NO-SUCH-UUID-DMCTL-VM"]),
    # ---- removal, deferred removal
    case("remove", ["remove", LIN], S_LIN),
    case("remove-by-uuid", ["remove", "-u", UUID], S_LIN),
    case("remove-all", ["remove_all"], S_MANY + S_NOTABLE),
    case("remove-all-empty", ["remove_all"]),
    case("remove-open", ["remove", LIN], S_LIN + [hold(LIN)]),
    case("remove-deferred-open", ["remove", "--deferred", LIN], S_LIN + [hold(LIN)]),
    case("remove-deferred-closed", ["remove", "--deferred", LIN], S_LIN),
    case("info-deferred", ["info", LIN], S_DEFERRED),
    case("info-c-deferred", ["info", "-c", LIN], S_DEFERRED),
    case("ls-deferred", ["ls"], S_DEFERRED),
    case("remove-deferred-again", ["remove", "--deferred", LIN], S_DEFERRED),
    # ---- wait on events
    case("wait-event-already-happened", ["wait", MIR, "0"], S_MIR),
    case("wait-for-resync-event", ["wait", MIR, "0"], [C(MIR, T_MIR)]),
    case("wait-blocks-without-event", ["wait", LIN, "0"], S_LIN, timeout=5),
    case("wait-past-event-nr", ["wait", LIN, "1"], S_LIN),
    case("wait-nonexistent", ["wait", NOSUCH]),
    # ---- bad tables
    case("bad-target-type", C(LIN, "0 1024 nosuchtarget foo")),
    case("bad-table-syntax", C(LIN, "0 1024")),
    case("bad-table-nonnumeric", C(LIN, "x 1024 linear {lin} 0")),
    case("bad-table-gap", C(LIN, "0 100 linear {lin} 0\n200 100 linear {lin} 0")),
    case("bad-linear-missing-device", C(LIN, "0 1024 linear /dev/nosuch-dmctl-vm 0")),
    case("bad-linear-too-long", C(LIN, "0 65536 linear {lin} 0")),
    case("bad-era-block-size", C(ERA, "0 131072 era {era_meta} {era_origin} 7")),
    case("bad-era-argc", C(ERA, "0 131072 era {era_meta} {era_origin}")),
    case("bad-lw-argc", C(LW, "0 32768 log-writes {lw_data}")),
    case("bad-mirror-missing-device", C(MIR, "0 16384 mirror core 1 1024 2 {leg1} 0 /dev/nosuch-dmctl-vm 0")),
    case("bad-mirror-too-long", C(MIR, "0 32768 mirror core 1 1024 2 {leg1} 0 {leg2} 0")),
    # ---- devices that do not exist
    case("info-nonexistent", ["info", NOSUCH]),
    case("table-nonexistent", ["table", NOSUCH]),
    case("status-nonexistent", ["status", NOSUCH]),
    case("remove-nonexistent", ["remove", NOSUCH]),
    case("suspend-nonexistent", ["suspend", NOSUCH]),
    case("resume-nonexistent", ["resume", NOSUCH]),
    case("message-nonexistent", ["message", NOSUCH, "0", "hello"]),
    case("deps-nonexistent", ["deps", NOSUCH]),
]

# ---------------------------------------------------------------- documented exceptions
#
# 1. Everywhere: after a failed ioctl dmctl adds the kernel's own reason, as the kernel
#    logged it, below dmsetup's "... ioctl on NAME failed: ERROR" line (README: "the
#    kernel's own reason under a failed ioctl").  Those lines are taken out of dmctl's
#    stderr before comparing -- but only lines right after such a failure line, and each
#    must be a line the kernel really logged during that dmctl run (checked against
#    dmesg), so an invented or misplaced reason still fails.  DMCTL_VM_DIFF_STRICT=1
#    compares without this.
# 2. Per case, EXCEPTIONS: case id -> (why, function applied to both stdouts and stderrs).

STRICT = os.environ.get("DMCTL_VM_DIFF_STRICT") == "1"
_FAILED_LINE = re.compile(r"^device-mapper: \S+ ioctl on .* failed: ")


def _library_version(text):
    return re.sub(r"(?m)^(Library version:).*$", r"\1   <version>", text)


EXCEPTIONS = {
    "version": ("dmctl reports its own library version, 1.02.185-dmctl-VERSION "
                "(dmctl/__init__.py LIBRARY_VERSION)", _library_version),
}


def strip_kernel_reasons(stderr, kmsg):
    """dmctl's stderr without the kernel-reason lines it adds after a failure line.
    -> (stripped stderr, [reason lines that the kernel did not log])."""
    logged = {re.sub(r"^\[[^]]*\] ?", "", line) for line in kmsg.splitlines()}
    out, invented, after_failure = [], [], False
    for line in stderr.splitlines(True):
        body = line.rstrip("\n")
        if _FAILED_LINE.match(body):
            after_failure = True
            out.append(line)
            continue
        if after_failure and body.startswith("device-mapper: "):
            if body not in logged:
                invented.append(body)
            continue
        after_failure = False
        out.append(line)
    return "".join(out), invented


# Commands that change nothing: both tools run on one build of the state.  Not `status`:
# era's metadata usage moves with its periodic commits (12/2048 -> 14/2048 -> 10/2048 on
# one device within seconds), so status is compared on two builds with the same timing.
READ_ONLY = {"info", "table", "ls", "deps", "version", "targets", "target-version"}


def _diff(label, a, b):
    if a == b:
        return ""
    return "--- %s: dmsetup\n+++ %s: dmctl\n%s" % (label, label, "".join(difflib.unified_diff(
        a.splitlines(True), b.splitlines(True), "dmsetup", "dmctl", n=2)))


@pytest.mark.parametrize("args,setup,stdin,timeout", CASES)
def test_same_as_dmsetup(request, differ, args, setup, stdin, timeout):
    cid = request.node.callspec.id
    second = dmsetup if AGAINST_DMSETUP else dmctl
    kw = {"timeout": timeout} if timeout else {}
    a, b = differ.both(args, setup=setup, stdin=stdin, runners=(dmsetup, second),
                       rebuild=args[0] not in READ_ONLY, **kw)
    if not STRICT and not AGAINST_DMSETUP:
        b.stderr, invented = strip_kernel_reasons(b.stderr, b.kmsg)
        assert not invented, ("dmctl printed kernel reasons the kernel did not log:\n%s\n"
                              "kernel log:\n%s" % ("\n".join(invented), b.kmsg))
    if cid in EXCEPTIONS:
        norm = EXCEPTIONS[cid][1]
        for r in (a, b):
            r.stdout, r.stderr = norm(r.stdout), norm(r.stderr)
    if a.triple() != b.triple():
        shown = " ".join(differ.fmt(x) for x in args)
        pytest.fail("dmctl differs from dmsetup for `%s`%s\n%s%s%s" % (
            shown, " (after %d setup steps)" % len(setup) if setup else "",
            "exit status: dmsetup %r, dmctl %r\n" % (a.rc, b.rc) if a.rc != b.rc else "",
            _diff("stdout", a.stdout, b.stdout), _diff("stderr", a.stderr, b.stderr)),
            pytrace=False)
