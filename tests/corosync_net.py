"""Corosync nodes in network namespaces, for the CPG tests and the logd benchmark:
``Net(root, n)`` makes n namespaces on a bridge (in a namespace of its own, nothing in
the initial one), one corosync 3 per namespace (token 1000 ms, its own /run and state
dir) and a ``dmctl logd`` per node; ``teardown`` ends every process by pid and removes
the namespaces.  As root only.  ``missing()`` says what is missing for it, if anything."""

import os
import shutil
import signal
import subprocess
import sys
import time

from dmctl.logd import client


def missing():
    """Why corosync nodes cannot be run here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces and corosync need root"
    for tool in ("ip", "corosync", "corosync-quorumtool", "unshare"):
        if shutil.which(tool) is None:
            return "%s is not installed (scripts/test installs corosync)" % tool
    from dmctl.logd import cpg
    try:
        cpg.library()
    except cpg.CpgError as e:
        return str(e)
    return None


def run(*argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=30)


CONF = """totem {
version: 2
cluster_name: dmcl
transport: knet
crypto_cipher: none
crypto_hash: none
token: 1000
}
logging {
to_logfile: yes
logfile: %(dir)s/corosync.log
to_syslog: no
to_stderr: no
timestamp: hires
}
quorum {
provider: corosync_votequorum
}
system {
state_dir: %(dir)s/lib
}
nodelist {
%(nodes)s
}
"""


class Net:
    """The namespaces, corosyncs and daemons of one test: everything ends by pid."""

    def __init__(self, root, n=3):
        self.root = root
        self.n = n
        tag = "dmcl%d" % os.getpid()
        self.br = tag + "br"
        self.ns = ["%sn%d" % (tag, i) for i in range(1, self.n + 1)]
        self.made = []
        self.coro = {}          # node -> Popen
        self.logd = {}          # node -> Popen
        self.dead = []          # corosync pids killed with -9 (their /dev/shm leftovers)
        self.extra = []         # other processes the test started

    def setup(self):
        run("ip", "netns", "add", self.br)
        self.made.append(self.br)
        run("ip", "netns", "exec", self.br, "ip", "link", "add", "br0", "type", "bridge")
        run("ip", "netns", "exec", self.br, "ip", "link", "set", "br0", "up")
        for i, ns in enumerate(self.ns, 1):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "netns", "exec", ns, "ip", "link", "add", "eth0", "type", "veth",
                 "peer", "name", "p%d" % i, "netns", self.br)
            run("ip", "netns", "exec", self.br, "ip", "link", "set", "p%d" % i, "master", "br0")
            run("ip", "netns", "exec", self.br, "ip", "link", "set", "p%d" % i, "up")
            run("ip", "netns", "exec", ns, "ip", "addr", "add", "10.77.0.%d/24" % i, "dev", "eth0")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            d = self.dir(i)
            for sub in ("lib", "run"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            nodes = "\n".join("node {\nname: n%d\nnodeid: %d\nring0_addr: 10.77.0.%d\n}" % (j, j, j)
                              for j in range(1, self.n + 1))
            with open(os.path.join(d, "corosync.conf"), "w") as f:
                f.write(CONF % {"dir": d, "nodes": nodes})

    def dir(self, i):
        return os.path.join(self.root, "node%d" % i)

    def start_corosync(self, i):
        d = self.dir(i)
        # a private /run (corosync 3.1.7's pid file is fixed at /run/corosync.pid)
        self.coro[i] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[i - 1], "unshare", "-m", "sh", "-c",
             "mount --make-rprivate / && mount -t tmpfs tmpfs /run && "
             "exec corosync -f -c %s/corosync.conf" % d],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(d, "corosync.stderr"), "ab"))

    def corosync_pid(self, i):
        """corosync's own pid (sh execs it, unshare forks or execs: find the child)."""
        p = self.coro[i]
        pids = [p.pid]
        try:
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        for pid in reversed(pids):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "corosync":
                        return pid
            except OSError:
                pass
        return p.pid

    def members(self, i):
        r = run("ip", "netns", "exec", self.ns[i - 1], "corosync-quorumtool", "-s", check=False)
        for line in r.stdout.splitlines():
            if line.strip().startswith("Nodes:"):
                return int(line.split()[-1])
        return 0

    def wait_members(self, i, n, timeout=30.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.members(i) == n:
                return time.monotonic() - t0
            if self.coro[i].poll() is not None:
                raise AssertionError("corosync of node %d exited: %s" % (i, self.log(i)))
            time.sleep(0.1)
        raise AssertionError("node %d: not %d members after %.0f s: %s"
                             % (i, n, timeout, self.log(i)))

    def log(self, i, name="corosync.log"):
        try:
            with open(os.path.join(self.dir(i), name)) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def start_logd(self, i, sim_dir):
        sock = os.path.join(sim_dir, "logd.sock")
        env = dict(os.environ, DMCTL_LOGD_CLUSTER="corosync")
        env.pop("DMCTL_LOGD_SOCKET", None)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root
        self.logd[i] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[i - 1], sys.executable, "-m", "dmctl.logd",
             "--socket", sock, "--state-dir", os.path.join(self.dir(i), "logd"),
             "--no-syslog", "--kernel", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
            stderr=open(os.path.join(self.dir(i), "logd.stderr"), "ab"))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            try:
                return client.status(sock)
            except client.NotRunning:
                if self.logd[i].poll() is not None:
                    raise AssertionError("logd %d exited: %s" % (i, self.log(i, "logd.stderr")))
                time.sleep(0.05)
        raise AssertionError("logd %d does not answer" % i)

    def kill9_corosync(self, i):
        pid = self.corosync_pid(i)
        os.kill(pid, signal.SIGKILL)
        self.dead.append(pid)
        self.coro[i].wait(timeout=10)

    def teardown(self):
        for p in self.extra:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for procs in (self.logd, self.coro):
            for i, p in procs.items():
                if p.poll() is None:
                    pid = self.corosync_pid(i) if procs is self.coro else p.pid
                    for sig in (signal.SIGTERM, signal.SIGKILL):
                        try:
                            os.kill(pid, sig)
                            if pid != p.pid:
                                os.kill(p.pid, sig)
                        except ProcessLookupError:
                            pass
                        try:
                            p.wait(timeout=5)
                            break
                        except subprocess.TimeoutExpired:
                            continue
        for ns in reversed(self.made):
            run("ip", "netns", "del", ns, check=False)
        # what a SIGKILLed corosync leaves in /dev/shm (§3.6)
        for name in os.listdir("/dev/shm"):
            if any(("-%d-" % pid) in name for pid in self.dead) and name.startswith("qb-"):
                p = os.path.join("/dev/shm", name)
                (shutil.rmtree if os.path.isdir(p) else os.unlink)(p)
