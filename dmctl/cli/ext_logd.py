"""``dmctl logd``: the userspace dirty-log daemon (cmirrord's clustered-core and
clustered-disk logs).  Mirror tables with a ``userspace`` log need it running.

``start`` runs it in the background (exit 0 once it serves), ``run`` in the foreground
(systemd: contrib/dmctl-logd.service), ``stop`` ends it (SIGTERM, waits), ``status``
asks it over its socket.  The socket: ``--socket``, else ``$DMCTL_LOGD_SOCKET``, else
``logd.sock`` in the sim dir.  Several sim dirs (simulated hosts) pointed at one socket
share one daemon: each host is a node of its cluster (numbered 1, 2, ... in the order
the daemon first hears from them).  As root on a kernel with device-mapper the daemon
also serves the real kernel over the netlink connector (``--kernel``/``--no-kernel``)."""

import json
import os
import sys

import click


def _socket(path):
    if path:
        return os.path.abspath(path)
    from dmctl.formats.ulog import socket_path
    from dmctl.sim.store import default_sim_dir
    return os.path.abspath(socket_path(default_sim_dir()))


_sock_opt = click.option("--socket", "sock", metavar="FILE",
                         help="The daemon's Unix socket (default: $DMCTL_LOGD_SOCKET, "
                              "else logd.sock in the sim dir).")
_pid_opt = click.option("--pidfile", metavar="FILE",
                        help="Pid file (default: the socket's name with .pid).")
_kernel_opt = click.option("--kernel/--no-kernel", default=None,
                           help="Also serve the real kernel's userspace logs over the "
                                "netlink connector (default: as root, when this kernel "
                                "has device-mapper; --kernel fails when it cannot).")


def _kernel(flag):
    return "auto" if flag is None else flag


@click.group(help="The userspace dirty-log daemon (cmirrord's clustered-core / "
                  "clustered-disk logs).  Point several sim dirs (hosts) at one daemon "
                  "with DMCTL_LOGD_SOCKET.")
def logd():
    pass


@logd.command(help="Start the daemon in the background; exit 0 once it serves.")
@_pid_opt
@_sock_opt
@click.option("--state-dir", metavar="DIR", help="Where it persists its state "
              "(default: the socket's directory).")
@click.option("--syslog/--no-syslog", default=None, help="Also log to syslog "
              "(default: when stderr is not a terminal).")
@_kernel_opt
def start(pidfile, sock, state_dir, syslog, kernel):
    from dmctl.logd import client
    try:
        pid = client.start(_socket(sock), pidfile, state_dir, syslog, kernel=_kernel(kernel))
    except RuntimeError as e:
        click.echo("dmctl logd: %s" % e, err=True)
        sys.exit(1)
    click.echo("dmctl logd started (pid %d)" % pid, err=True)


@logd.command(help="Run the daemon in the foreground (for systemd).")
@_pid_opt
@_sock_opt
@click.option("--state-dir", metavar="DIR")
@click.option("--syslog/--no-syslog", default=None)
@click.option("-v", "--verbose", is_flag=True, help="Log every request's trouble in detail.")
@_kernel_opt
def run(pidfile, sock, state_dir, syslog, verbose, kernel):
    from dmctl.logd import daemon
    daemon.setup_logging(syslog, verbose)
    sys.exit(daemon.run(_socket(sock), pidfile, state_dir, kernel=_kernel(kernel)))


@logd.command(help="Stop the daemon (refused while it serves logs, unless --force).")
@_pid_opt
@_sock_opt
@click.option("--force", is_flag=True, help="Stop even while logs are in use (their "
              "state is kept for a restart).")
def stop(pidfile, sock, force):
    from dmctl.logd import client
    path = _socket(sock)
    try:
        n = len(client.status(path)["logs"])
    except client.NotRunning:
        n = 0
    if n and not force:
        raise click.ClickException("%d log(s) still in use" % n)
    try:
        client.stop(path, pidfile)
    except RuntimeError as e:
        raise click.ClickException(str(e))


@logd.command(help="Show the daemon: transports, cluster, every log.")
@_sock_opt
@click.option("--json", "as_json", is_flag=True, help="Everything, as JSON.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also the node, whether that copy is the CPG's server, the "
                   "marked regions (node:region) and the regions not clean.")
def status(sock, as_json, verbose):
    from dmctl.logd import client
    from dmctl.sim.store import default_sim_dir
    try:
        st = client.status(_socket(sock), default_sim_dir())
    except client.NotRunning:
        if as_json:
            click.echo(json.dumps({"running": False}))
        else:
            click.echo("logd is not running")
        sys.exit(3)
    if as_json:
        st["running"] = True
        click.echo(json.dumps(st, indent=1, sort_keys=True))
        return
    cl = st["cluster"]
    click.echo("# logd: %s" % (", ".join(
        "%s %s%s" % (t["type"], t["path"], "" if t.get("cap_sys_admin", True)
                     else " (no CAP_SYS_ADMIN: the kernel drops the replies)")
        for t in st["transports"])))
    if cl.get("engine") == "corosync":
        # members per log uuid (its CPG), as corosync reports them
        click.echo("# cluster: corosync CPG%s; this node %s; groups %s" % (
            "" if cl["corosync"] else " (corosync NOT reachable: cluster requests wait)",
            cl["this_node"], " ".join("%s=%s" % (u, ",".join(map(str, m)))
                                      for u, m in sorted(cl["groups"].items())) or "-"))
    else:
        click.echo("# cluster: no corosync, one-node cluster; nodes %s; this node %s" % (
            " ".join("%d=%s" % (n["id"], n["name"]) for n in cl["nodes"]) or "-",
            cl["this_node"] if cl["this_node"] is not None else "-"))
    for l in st["logs"]:
        line = "%s/%d %s %d/%d %s" % (l["uuid"], l["luid"], l["type"], l["sync_count"],
                                      l["region_count"], l["state"])
        if verbose:
            dirty = sorted(set(range(l["region_count"])) - set(l["clean"]))
            line += " node %d%s marks %s dirty %s" % (
                l["node"], " (server)" if l["server"] else "",
                ",".join("%d:%d" % tuple(m) for m in l["marks"]) or "-",
                _ranges(dirty) or "-")
            if l["recovering_region"] is not None:
                line += " recovering %d by %d" % (l["recovering_region"], l["recoverer"])
        click.echo(line)


def _ranges(xs):
    out, i = [], 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else "%d-%d" % (xs[i], xs[j]))
        i = j + 1
    return ",".join(out)
