"""dmctl with the real udev: Debian's systemd-udevd and the system's device-mapper rules
(55-dm.rules, 60-persistent-storage-dm.rules, 95-dm-notify.rules from the dmsetup
package) running in the guest, side by side with the real /usr/sbin/dmsetup.

A module-scoped fixture starts ``systemd-udevd --daemon`` (the guest's root is the
host's /, so the host's ``udev`` package provides it), triggers and settles the block
devices, and stops it again at the end of the module (``udevadm control --exit``, then
/run/udev is removed, since libdm and dmctl take /run/udev/control as "udev is
running"), so the other guest tests keep their udev-less setting.  In CI (CI=true) a
missing systemd-udevd or pyudev fails instead of skipping.

The commands here run WITHOUT DM_DISABLE_UDEV.  A rules file of the test's own,
/run/udev/rules.d/90-dmctl-vm-test.rules (between 55-dm and 95-dm-notify), makes
udev's work observable and breakable per device name:

* ``sync-*-dmctl-vm``: every dm uevent sleeps 1 s and then appends
  "ACTION DM_NAME DM_COOKIE" to a log *before* 95-dm-notify's ``dmsetup udevcomplete``
  runs, so the line is there when a command that waited for udev returns;
* ``hang-dmctl-vm``: DM_COOKIE is cleared, so 95-dm-notify never completes the cookie;
* ``nolink*-dmctl-vm``: udev makes no symlinks (``SYMLINK=""``), so /dev/mapper/NAME
  appears only through libdm's fallback (``--verifyudev``).

One test also puts dmctl in place of dmsetup in the system's rules (udevflags,
udevcomplete), as a drop-in would be.

Every comparison is against what the real dmsetup did in the same run, on the same
state (the dm minor is the lowest free one, so both tools get the same dm-N).
"""

import os
import re
import stat
import subprocess
import threading
import time

import pytest

from dmvm import DMSETUP, REPO, SUFFIX, dev, dmctl_argv, run

UDEVD = os.environ.get("DMCTL_VM_UDEVD", "/usr/lib/systemd/systemd-udevd")
UDEVADM = "/usr/bin/udevadm"
RUN_UDEV = "/run/udev"
CONTROL = RUN_UDEV + "/control"
RULES = RUN_UDEV + "/rules.d/90-dmctl-vm-test.rules"
LOG = "/run/dmctl-vm-udev.log"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SETTLE = 60

RULES_TEXT = r"""# dmctl's VM tier (tests/vm/guest/test_udev.py): after 55-dm.rules, before 95-dm-notify
SUBSYSTEM!="block", GOTO="dmctl_vm_end"
KERNEL!="dm-[0-9]*", GOTO="dmctl_vm_end"
ENV{DM_NAME}=="sync-*-dmctl-vm", RUN+="/bin/sh -c 'sleep 1; echo $env{ACTION} $env{DM_NAME} $env{DM_COOKIE} >> %s'"
ENV{DM_NAME}=="hang-dmctl-vm", ENV{DM_COOKIE}=""
ENV{DM_NAME}=="nolink*-dmctl-vm", SYMLINK=""
LABEL="dmctl_vm_end"
""" % LOG


def _env(**kw):
    e = dict(os.environ, LC_ALL="C", SYSTEMD_IGNORE_CHROOT="1")
    for v in ("DM_DISABLE_UDEV", "DM_UDEV_COOKIE", "DMCTL_UDEV_TIMEOUT", "DM_DEV_DIR"):
        e.pop(v, None)
    e["PYTHONPATH"] = REPO + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.update(kw)
    return e


UENV = _env()


def ds(*args, env=None, **kw):
    """The real dmsetup, udev enabled."""
    return run([DMSETUP, *args], env=env or UENV, **kw)


def dc(*args, env=None, **kw):
    """dmctl --backend kernel, udev enabled."""
    return run(dmctl_argv(*args), env=env or UENV, **kw)


TOOLS = {"dmsetup": ds, "dmctl": dc}


def fail_or_skip(msg):
    if IN_CI:
        pytest.fail(msg + " (CI: the udev tier must run)")
    pytest.skip(msg)


def settle():
    r = run([UDEVADM, "settle", "-t", str(SETTLE)], env=UENV)
    assert r.rc == 0, "udevadm settle: %r" % r


def sems():
    """SysV semaphore sets as (key, semid) from /proc/sysvipc/sem."""
    with open("/proc/sysvipc/sem") as f:
        return {tuple(line.split()[:2]) for line in list(f)[1:]}


def cookie_lines():
    """``dmsetup udevcookies`` without its header."""
    r = ds("udevcookies")
    assert r.rc == 0, r
    return r.stdout.splitlines()[1:]


def node_state():
    """The test's entries of /dev/mapper and /dev/disk/by-id: path -> description."""
    out = {}
    for d in ("/dev/mapper", "/dev/disk/by-id"):
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        for e in names:
            if SUFFIX not in e:
                continue
            p = os.path.join(d, e)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                out[p] = "-> " + os.readlink(p)
            elif stat.S_ISBLK(st.st_mode):
                out[p] = "block %d:%d %o %d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev),
                                                   stat.S_IMODE(st.st_mode), st.st_uid,
                                                   st.st_gid)
            else:
                out[p] = "other %o" % st.st_mode
    return out


def log_lines():
    try:
        with open(LOG) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def cookie_shape(value):
    """A DM_COOKIE as (flags, has a semaphore): the random base differs between runs."""
    c = int(value, 0)
    return (c >> 16, bool(c & 0xFFFF))


class Events:
    """udev's processed uevents of dm devices (pyudev monitor, source "udev")."""

    def __init__(self):
        import pyudev
        self.mon = pyudev.Monitor.from_netlink(pyudev.Context(), source="udev")
        self.mon.filter_by("block")
        self.mon.start()
        self.lock = threading.Lock()
        self.seen = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping.is_set():
            d = self.mon.poll(timeout=0.2)
            if d is None or not (d.sys_name or "").startswith("dm-"):
                continue
            with self.lock:
                self.seen.append((d.action, dict(d.properties)))

    def mark(self):
        with self.lock:
            return len(self.seen)

    def since(self, mark, name, count, timeout=10.0):
        """The events of DM_NAME ``name`` after ``mark``: waits for ``count`` of them."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                evs = [e for e in self.seen[mark:] if e[1].get("DM_NAME") == name]
            if len(evs) >= count or time.monotonic() > deadline:
                return evs
            time.sleep(0.1)

    def close(self):
        self.stopping.set()
        self.thread.join(5)


def event_summary(evs):
    """What must be equal between the tools: action, DM_NAME, DM_UUID, the DM_UDEV_*
    and DM_SUBSYSTEM_UDEV_* flags udev imported, the cookie's shape."""
    out = []
    for action, p in evs:
        flags = sorted((k, v) for k, v in p.items()
                       if k.startswith(("DM_UDEV_", "DM_SUBSYSTEM_UDEV_")))
        out.append((action, p.get("DM_NAME"), p.get("DM_UUID"), tuple(flags),
                    cookie_shape(p["DM_COOKIE"]) if p.get("DM_COOKIE") else None))
    return out


class Udevd:
    def __init__(self):
        self.running = False
        self.events = None

    def start(self):
        if os.path.exists(CONTROL):
            pytest.fail("%s exists before systemd-udevd was started" % CONTROL)
        os.makedirs(os.path.dirname(RULES), exist_ok=True)
        with open(RULES, "w") as f:
            f.write(RULES_TEXT)
        r = run([UDEVD, "--daemon"], env=UENV, timeout=60)
        assert r.rc == 0, "systemd-udevd --daemon: %r" % r
        self.running = True
        deadline = time.monotonic() + 30
        while not os.path.exists(CONTROL):
            assert time.monotonic() < deadline, "systemd-udevd made no %s" % CONTROL
            time.sleep(0.1)
        r = run([UDEVADM, "trigger", "--action=add", "--subsystem-match=block"], env=UENV)
        assert r.rc == 0, r
        settle()

    def pids(self):
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/comm" % p) as f:
                        if f.read().strip() in ("systemd-udevd", "(udev-worker)"):
                            out.append(int(p))
                except OSError:
                    pass
        return out

    def stop(self):
        if self.events is not None:
            self.events.close()
            self.events = None
        if not self.running:
            return
        self.running = False
        run([UDEVADM, "control", "--exit"], env=UENV, timeout=60)
        deadline = time.monotonic() + 20
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids():            # the daemon this fixture started
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        # udevd leaves its control socket behind; libdm (libudev's
        # udev_queue_get_udev_is_active) and dmctl take it for "udev is running"
        subprocess.run(["rm", "-rf", RUN_UDEV, LOG, LOG + ".complete"])


@pytest.fixture(scope="module")
def udevd(loops):
    if not os.access(UDEVD, os.X_OK):
        fail_or_skip("%s is missing: install Debian's udev package (scripts/vm-setup)"
                     % UDEVD)
    u = Udevd()
    try:
        u.start()
        try:
            u.events = Events()
        except ImportError:
            if IN_CI:
                raise
        yield u
    finally:
        u.stop()


@pytest.fixture
def events(udevd):
    if udevd.events is None:
        fail_or_skip("pyudev cannot be imported by the guest's python")
    return udevd.events


def table(loops):
    return "0 32768 linear %s 0" % loops["lin"]


def no_cookies(before):
    assert cookie_lines() == [], "cookies left: %r" % cookie_lines()
    assert sems() == before, "semaphores left: %r" % (sems() - before)


# --------------------------------------------------------------------------------------


def test_lifecycle_waits_for_udev_like_dmsetup(udevd, events, loops):
    """create/rename/suspend/resume/remove with udev sync: each command returns only
    after udev ran the device's rules (the rule's log line is there), /dev/mapper and
    /dev/disk/by-id are as udev made them for dmsetup, no cookie is left, and udev saw
    the same DM_NAME/DM_UUID/DM_UDEV_* properties and cookie flags."""
    a, b = dev("sync-a"), dev("sync-b")
    steps = [("create", a, "-u", "UDEV-" + a, "--table", table(loops)),
             ("rename", a, b), ("suspend", b), ("resume", b), ("remove", b)]
    # the uevents of each step that reach the rules with DM_NAME ("add" at DM_DEV_CREATE
    # carries no cookie, so 55-dm.rules skips it): "change" at create's resume
    uevents = {"create": ["change"], "rename": ["change"], "suspend": [],
               "resume": ["change"], "remove": ["remove"]}
    seen = {}
    for tool, fn in TOOLS.items():
        settle()
        before = sems()
        log = []
        for step in steps:
            mark, nlog = events.mark(), len(log_lines())
            r = fn(*step)
            state = node_state()
            new_log = log_lines()[nlog:]        # read right after the command returned
            name = b if step[0] != "create" else a
            n = len(uevents[step[0]])
            evs = events.since(mark, name, n) if n else []
            settle()
            log.append((step[0], r.triple(), state,
                        [" ".join(l.split()[:2]) for l in new_log],
                        event_summary(evs)))
            assert r.rc == 0, (tool, step, r)
            assert [l.split()[0] for l in new_log] == uevents[step[0]], \
                "%s %s returned before udev processed the device: %r" % (tool, step[0], new_log)
            for l in new_log:
                flags, sem = cookie_shape(l.split()[2])
                assert sem, "%s %s: no semaphore in the cookie: %r" % (tool, step[0], l)
        no_cookies(before)
        seen[tool] = log
    for x, y in zip(seen["dmsetup"], seen["dmctl"]):
        assert x == y
    # what udev made, checked once in absolute terms (both tools made the same)
    create = dict((s[0], s) for s in seen["dmctl"])
    st = create["create"][2]
    assert st["/dev/mapper/" + a].startswith("-> ../dm-"), st
    assert st["/dev/disk/by-id/dm-name-" + a] == "-> ../../" + st["/dev/mapper/" + a][6:]
    assert st["/dev/disk/by-id/dm-uuid-UDEV-" + a].startswith("-> ../../dm-"), st
    assert "/dev/mapper/" + b in create["rename"][2] and "/dev/mapper/" + a not in create["rename"][2]
    assert create["remove"][2] == {}
    ev = create["create"][4][-1]
    props = dict(ev[3])
    assert ev[:3] == ("change", a, "UDEV-" + a), ev
    assert props.get("DM_UDEV_RULES_VSN") == "2", props
    assert props.get("DM_UDEV_PRIMARY_SOURCE_FLAG") == "1", props
    assert props.get("DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG") == "1", props


UDEV_DEBUG = re.compile(r"Udev cookie|NODE_|[Uu]dev")


def udev_debug(text):
    """libdm's udev and node-op debug lines of a -vvv run, cookie values and semaphore
    ids masked (the other debug lines -- ioctl traces, timestamps -- are not dmctl's)."""
    return [re.sub(r"0x[0-9a-f]+ \(semid \d+\)", "COOKIE (semid N)", l)
            for l in text.splitlines() if UDEV_DEBUG.search(l)]


def _dmctl_as_rules_dmsetup():
    """The system's 55-dm.rules and 95-dm-notify.rules with dmctl in place of their
    ``/sbin/dmsetup udevflags`` and ``udevcomplete`` (copies in /run/udev/rules.d
    override the files of the same name; udevcomplete's output is logged)."""
    from dmvm import PYTHON
    dmctl = "/usr/bin/env PYTHONPATH=%s %s -m dmctl" % (REPO, PYTHON)
    written = []
    for name, old, new in (
            ("55-dm.rules", "/sbin/dmsetup udevflags", dmctl + " udevflags"),
            ("95-dm-notify.rules", 'RUN+="/sbin/dmsetup udevcomplete $env{DM_COOKIE}"',
             "RUN+=\"/bin/sh -c '%s udevcomplete $env{DM_COOKIE} >> %s.complete'\""
             % (dmctl, LOG))):
        with open("/usr/lib/udev/rules.d/" + name) as f:
            text = f.read()
        assert text.count(old) == 1, (name, old)
        path = os.path.join(os.path.dirname(RULES), name)
        with open(path, "w") as f:
            f.write(text.replace(old, new))
        written.append(path)
    return written


def test_dmctl_in_the_system_rules(udevd, events, loops):
    """dmctl as the rules' dmsetup: with 55-dm.rules importing ``dmctl udevflags`` and
    95-dm-notify running ``dmctl udevcomplete``, the real dmsetup's create and remove
    are released by dmctl, and udev ends up with the same DM_UDEV_* properties, links
    and output as with the system's rules (dmsetup's own udevflags/udevcomplete)."""
    name = dev("rules")
    seen = {}
    written = []
    try:
        for rules in ("system", "dmctl"):
            if rules == "dmctl":
                written = _dmctl_as_rules_dmsetup()
                assert run([UDEVADM, "control", "--reload"], env=UENV).rc == 0
            settle()
            before = sems()
            out = []
            for step in (("create", name, "-u", "UDEV-" + name, "--table", table(loops)),
                         ("remove", name)):
                mark = events.mark()
                r = ds(*step, timeout=90)
                state = node_state()
                evs = events.since(mark, name, 1)
                settle()
                out.append((r.triple(), state, event_summary(evs)))
            no_cookies(before)
            seen[rules] = out
        with open(LOG + ".complete") as f:
            completed = f.read().split()
    finally:
        for path in written:
            os.unlink(path)
        run([UDEVADM, "control", "--reload"], env=UENV)
    assert seen["system"] == seen["dmctl"]
    assert len(completed) == 2 and all(
        c.startswith("DM_COOKIE_COMPLETED=0x") for c in completed), completed
    assert seen["dmctl"][0][1]["/dev/mapper/" + name].startswith("-> ../dm-")
    props = dict(seen["dmctl"][0][2][-1][3])
    assert props.get("DM_UDEV_PRIMARY_SOURCE_FLAG") == "1", props


def test_vvv_udev_debug_lines_like_dmsetup(udevd, loops):
    """At -vvv both tools log the same cookie life cycle (created, incremented,
    assigned to the task with its flags, decremented, waiting for zero, destroyed)
    and the same node operations: the resume's NODE_ADD stacked and skipped
    [trust_udev]; for remove nothing at all (libdm stacks NODE_DEL only when it does
    not rely on udev)."""
    name = dev("vvv")
    seen = {}
    for tool, fn in TOOLS.items():
        settle()
        out = []
        for step in (("create", "-vvv", name, "--table", table(loops)),
                     ("remove", "-vvv", name)):
            r = fn(*step)
            assert r.rc == 0, (tool, r)
            out.append(udev_debug(r.stdout))
        seen[tool] = out
    assert seen["dmsetup"] == seen["dmctl"]
    assert "%s: Skipping NODE_ADD (254,0) 0:6 0660 [trust_udev]" % name in seen["dmctl"][0]
    assert not [l for l in seen["dmctl"][1] if "NODE_" in l], seen["dmctl"][1]
    assert "Udev cookie COOKIE (semid N) destroyed" in seen["dmctl"][1]


def test_noudevsync_like_dmsetup(udevd, events, loops):
    """--noudevsync: no semaphore (the uevent's DM_COOKIE carries flags only), the same
    output and, once udev has settled, the same nodes as dmsetup --noudevsync."""
    name = dev("nosync")
    seen = {}
    for tool, fn in TOOLS.items():
        settle()
        before = sems()
        out = []
        # uevents with DM_NAME: create's "change" (its "add" carries none), "remove"
        for step, n in ((("create", "--noudevsync", name, "--table", table(loops)), 1),
                        (("remove", "--noudevsync", name), 1)):
            mark = events.mark()
            r = fn(*step)
            assert r.rc == 0, (tool, step, r)
            assert sems() == before, "%s %s made a semaphore" % (tool, step[0])
            evs = events.since(mark, name, n)
            settle()
            out.append((r.triple(), node_state(), event_summary(evs)))
            for action, p in evs:
                if p.get("DM_COOKIE"):
                    assert not cookie_shape(p["DM_COOKIE"])[1], (tool, action, p["DM_COOKIE"])
        no_cookies(before)
        seen[tool] = out
    assert seen["dmsetup"] == seen["dmctl"]
    # no fallback node: udev's symlinks once udev got round to it, nothing after remove
    assert seen["dmctl"][0][1]["/dev/mapper/" + name].startswith("-> ../dm-")
    assert seen["dmctl"][1][1] == {}


def test_verifyudev_like_dmsetup(udevd, loops):
    """--verifyudev and libdm's node fallback: for a device whose /dev/mapper link udev
    does make, and for one it does not (``nolink-dmctl-vm``), with and without
    --verifyudev (create, rename, remove): the same output, warnings and nodes as
    dmsetup."""
    ok, nolink, nolink_b = dev("verify"), dev("nolink"), dev("nolink-b")
    steps = [("create", "--verifyudev", ok, "--table", table(loops)),
             ("remove", "--verifyudev", ok),
             ("create", nolink, "--table", table(loops)),
             ("remove", nolink),
             ("create", "--verifyudev", nolink, "--table", table(loops)),
             ("rename", "--verifyudev", nolink, nolink_b),
             ("remove", "--verifyudev", nolink_b)]
    seen = {}
    for tool, fn in TOOLS.items():
        settle()
        before = sems()
        out = []
        for step in steps:
            r = fn(*step)
            out.append((step, r.triple(), node_state()))
            settle()
        no_cookies(before)
        seen[tool] = out
    for x, y in zip(seen["dmsetup"], seen["dmctl"]):
        assert x == y
    # the fallback really happened (dmsetup's own warning and a block node)
    step, (o, e, rc), st = seen["dmctl"][4]
    assert "not set up by udev: Falling back to direct node creation" in e, e
    assert st["/dev/mapper/" + nolink].startswith("block 254:"), st
    assert seen["dmctl"][2][2] == {}         # trusting udev: nobody made the node
    step, (o, e, rc), st = seen["dmctl"][5]
    assert "should have been renamed to /dev/mapper/%s by udev" % nolink_b in e, e
    assert list(st) == ["/dev/mapper/" + nolink_b], st


def _transaction(creator, joiner, name, loops, by_env=False):
    """``creator udevcreatecookie``; ``joiner create --udevcookie C``; ``creator
    udevreleasecookie C``: the real udev's 95-dm-notify completes the joiner's uevent.
    ``by_env``: the cookie goes to both through DM_UDEV_COOKIE instead."""
    r = creator("udevcreatecookie")
    assert r.rc == 0 and re.fullmatch(r"0x[0-9A-F]{8}\n", r.stdout), r
    c = r.stdout.strip()
    if by_env:
        env, join, release = _env(DM_UDEV_COOKIE=c, DMCTL_UDEV_TIMEOUT="30"), (), ()
    else:
        env, join, release = _env(DMCTL_UDEV_TIMEOUT="30"), ("--udevcookie", c), (c,)
    r = joiner("create", *join, name, "--table", table(loops), env=env)
    assert r.rc == 0 and r.stdout == r.stderr == "", r
    r = creator("udevreleasecookie", *release, timeout=60, env=env)
    assert (r.rc, r.stdout, r.stderr) == (0, "", ""), r
    assert node_state()["/dev/mapper/" + name].startswith("-> ../dm-")
    r = joiner("remove", name)
    assert r.rc == 0, r
    return c


def test_failed_or_silent_ioctls_complete_the_cookie_like_dmsetup(udevd, loops):
    """No uevent will come, so the tool completes its own cookie and does not wait:
    a create whose table load fails (the device is removed again), a resume of an
    active device (the kernel sends no uevent), remove and rename of a device that
    does not exist.  The same output (dmctl's documented kernel-reason lines aside),
    nodes and no cookie left, well within dmctl's 30 s default timeout."""
    from test_differential import strip_kernel_reasons
    name, other = dev("fail"), dev("fail-other")
    cases = [((), ("create", name, "--table", "0 32768 linear /dev/nonexistent-dmctl-vm 0")),
             ((("create", name, "--table", table(loops)),), ("resume", name)),
             ((), ("remove", name)),
             ((), ("rename", name, other))]
    for setup, step in cases:
        seen = {}
        for tool, fn in TOOLS.items():
            for s in setup:
                assert ds(*s).rc == 0
            settle()
            before = sems()
            run(["dmesg", "-C"])
            t = time.monotonic()
            r = fn(*step, timeout=60)
            took = time.monotonic() - t
            out, err = r.stdout, r.stderr
            if tool == "dmctl":
                err, invented = strip_kernel_reasons(err, run(["dmesg"]).stdout)
                assert not invented, invented
            assert took < 15 and "was not completed" not in err, (tool, step, took, r)
            seen[tool] = ((out, err, r.rc), node_state(), sems() - before, cookie_lines())
            ds("remove", name)
            settle()
        assert seen["dmsetup"] == seen["dmctl"], step
        assert seen["dmctl"][2:] == (set(), []), step


def test_cookie_transactions_across_tools(udevd, loops):
    """A cookie made by one tool, joined by the other's create (--udevcookie, or
    DM_UDEV_COOKIE) and released by the first: udev's ``dmsetup udevcomplete`` completes dmctl's cookie and
    the reverse; the waiter returns and the node is udev's."""
    before = sems()
    _transaction(dc, ds, dev("txn-a"), loops)
    _transaction(ds, dc, dev("txn-b"), loops, by_env=True)
    settle()
    no_cookies(before)


def test_udevcomplete_across_tools(udevd, loops):
    """udevcomplete of the other tool's cookie: ``hang-dmctl-vm``'s uevent never reaches
    95-dm-notify, so its increment stays until the other tool's ``udevcomplete``;
    udevcookies prints the same list in both tools at each point."""
    name = dev("hang")
    before = sems()
    outs = {}
    for creator, completer in ((dc, ds), (ds, dc)):
        cname = "dmctl" if creator is dc else "dmsetup"
        c = creator("udevcreatecookie").stdout.strip()
        r = creator("create", "--udevcookie", c, name, "--table", table(loops))
        assert r.rc == 0, r
        settle()
        lists = (ds("udevcookies"), dc("udevcookies"))
        assert lists[0].triple() == lists[1].triple()
        row = [l.split() for l in lists[0].stdout.splitlines()[1:]]
        assert [(int(x[0], 16), x[2]) for x in row] == [(int(c, 16), "2")], (cname, row)
        r = completer("udevcomplete", c)
        assert (r.rc, r.stderr) == (0, ""), r
        m = re.fullmatch(r"DM_COOKIE_COMPLETED=0x([0-9a-f]+) *\n", r.stdout)
        assert m and int(m.group(1), 16) == int(c, 16), (c, r)
        outs[cname] = r.stdout.replace(m.group(1), "X" * len(m.group(1)))
        row = [l.split() for l in cookie_lines()]
        assert [(int(x[0], 16), x[2]) for x in row] == [(int(c, 16), "1")], (cname, row)
        t = time.monotonic()
        r = creator("udevreleasecookie", c, timeout=60, env=_env(DMCTL_UDEV_TIMEOUT="30"))
        assert (r.rc, r.stdout, r.stderr) == (0, "", ""), r
        assert time.monotonic() - t < 20
        r = creator("remove", "--noudevsync", name)
        assert r.rc == 0, r
        settle()
    # dmctl's udevcomplete (of dmsetup's cookie) printed what dmsetup's did (of dmctl's)
    assert outs["dmctl"] == outs["dmsetup"]
    no_cookies(before)


def test_udevcomplete_all_like_dmsetup(udevd):
    """udevcomplete_all with an age (fresh cookies are skipped), answered "n", and with
    -y: the same output as dmsetup and the same cookies left."""
    before = sems()
    res = {}
    for tool, fn in TOOLS.items():
        mine = [dc("udevcreatecookie").stdout.strip(), ds("udevcreatecookie").stdout.strip()]
        listed = cookie_lines()
        assert sorted(int(l.split()[0], 16) for l in listed) == sorted(int(c, 16) for c in mine)
        r_age = fn("udevcomplete_all", "-y", "1")
        after_age = cookie_lines()
        r_no = fn("udevcomplete_all", input="n\n")
        after_no = cookie_lines()
        r_yes = fn("udevcomplete_all", "-y")
        res[tool] = (r_age.triple(), r_no.triple(), r_yes.triple(),
                     after_age == listed, after_no == listed, cookie_lines())
    assert res["dmsetup"] == res["dmctl"]
    assert res["dmctl"][0][0] == ("0 semaphores with keys prefixed by 3405 (0xd4d) "
                                  "destroyed. 2 skipped.\n")
    assert res["dmctl"][2][0] == ("2 semaphores with keys prefixed by 3405 (0xd4d) "
                                  "destroyed. 0 skipped.\n")
    assert res["dmctl"][3:] == (True, True, [])
    assert sems() == before


def test_timeout_reports_what_it_waited_for(udevd, loops):
    """udev never completes the cookie of ``hang-dmctl-vm``: dmsetup waits for ever
    (killed here after 6 s); dmctl gives up after DMCTL_UDEV_TIMEOUT / --udevtimeout
    seconds, names the cookie, its semaphore and the device and uevent it waited for,
    removes the semaphore and exits 0 (man dmctl: the operation itself succeeded);
    so does ``udevreleasecookie`` of a transaction udev never completes."""
    name = dev("hang")
    before = sems()
    r = ds("create", name, "--table", table(loops), timeout=6)
    assert r.rc == "timeout", r
    ds("udevcomplete_all", "-y")            # the cookie the killed dmsetup left
    ds("remove", "--noudevsync", name)
    settle()
    assert sems() == before
    for step, kw in ((("create", name, "--table", table(loops)),
                      {"env": _env(DMCTL_UDEV_TIMEOUT="2")}),
                     (("remove", "--udevtimeout", "2", name), {})):
        t = time.monotonic()
        r = dc(*step, timeout=60, **kw)
        took = time.monotonic() - t
        assert r.rc == 0 and r.stdout == "", r
        m = re.match(r"Udev cookie (0x[0-9a-f]+) \(semid (\d+)\) was not completed within "
                     r"2 s: udev has not acknowledged 1 uevent\(s\)", r.stderr)
        assert m, r.stderr
        action = "change" if step[0] == "create" else "remove"
        devno = r" \(254:\d+\)" if action == "change" else ""     # gone after remove
        assert re.search(r'expected: "%s" uevent of %s%s after \w+, DM_COOKIE=\d+ '
                         r'\(0x[0-9a-f]{4}%s, flags DISABLE_LIBRARY_FALLBACK\|PRIMARY_SOURCE\)'
                         % (action, re.escape(name), devno, m.group(1)[-4:]), r.stderr), r.stderr
        assert took < 30, took
        assert sems() == before, "the timed-out cookie's semaphore was left"
        settle()
    # udevreleasecookie of a transaction whose uevent udev never completes
    c = dc("udevcreatecookie").stdout.strip()
    r = ds("create", "--udevcookie", c, name, "--table", table(loops))
    assert r.rc == 0, r
    t = time.monotonic()
    r = dc("udevreleasecookie", "--udevtimeout", "2", c, timeout=60)
    assert time.monotonic() - t < 30
    assert (r.rc, r.stdout) == (0, ""), r
    assert re.match(r"Udev cookie 0x%x \(semid \d+\) was not completed within 2 s: 1 "
                    r"uevent\(s\) of this transaction were not acknowledged by udev"
                    % int(c, 16), r.stderr), r.stderr
    assert sems() == before
    ds("remove", "--noudevsync", name)
    settle()
    assert cookie_lines() == []
    assert node_state() == {}


def test_disable_udev_while_udev_runs_like_dmsetup(udevd, loops):
    """DM_DISABLE_UDEV with udevd running: dmsetup's warning, no cookie, the library's
    own block nodes (udev's dm rules disabled by the flags), as dmsetup."""
    a, b = dev("disabled-a"), dev("disabled-b")
    env = _env(DM_DISABLE_UDEV="1")
    seen = {}
    for tool, fn in TOOLS.items():
        settle()
        before = sems()
        out = []
        for step in (("create", a, "-u", "UDEV-" + a, "--table", table(loops)),
                     ("rename", a, b), ("remove", b)):
            r = fn(*step, env=env)
            mapper = {k: v for k, v in node_state().items() if k.startswith("/dev/mapper/")}
            assert sems() == before, (tool, step)
            settle()                # udev's by-id links come when udev gets to them
            out.append((r.triple(), mapper, node_state()))
        seen[tool] = out
    assert seen["dmsetup"] == seen["dmctl"]
    (o, e, rc), mapper, _ = seen["dmctl"][0]
    assert e.startswith("Udev is running and DM_DISABLE_UDEV environment variable is set.")
    assert mapper["/dev/mapper/" + a].startswith("block 254:"), mapper
    assert seen["dmctl"][2][2] == {}


def test_without_udev_like_dmsetup(udevd, loops):
    """Last: udevd stopped (and /run/udev gone): create/remove without DM_DISABLE_UDEV
    leave the same /dev/mapper state and output as dmsetup's, without waiting."""
    udevd.stop()
    assert not os.path.exists(CONTROL)
    name = dev("noudev")
    seen = {}
    for tool, fn in TOOLS.items():
        before = sems()
        out = []
        for step in (("create", name, "--table", table(loops)), ("remove", name)):
            r = fn(*step, timeout=60)
            out.append((r.triple(), node_state()))
        assert sems() == before
        seen[tool] = out
    assert seen["dmsetup"] == seen["dmctl"]
    # dmsetup's policy still trusts udev (DISABLE_LIBRARY_FALLBACK): nobody makes
    # /dev/mapper/NAME, only the kernel's /dev/dm-N exists (man dmctl, UDEV
    # SYNCHRONISATION); DM_DISABLE_UDEV=1 (the other guest tests) makes the node
    assert seen["dmctl"][0] == (("", "", 0), {})
    assert seen["dmctl"][1][0][2] == 0
