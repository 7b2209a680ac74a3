"""``dmctl logd``: the simulator's userspace dirty-log server (clustered-core,
clustered-disk, as cmirrord serves them).  Mirror tables with a ``userspace`` log
need it running.

Its state lives in the simulator's store (one host), or, when ``DMCTL_LOGD_DIR`` is
set, in ``$DMCTL_LOGD_DIR/logd.db``: one server shared by every sim dir (simulated
host) that sets the same directory, as cmirrord's cluster is.  Each host is a node
of that cluster (numbered 1, 2, ... in the order the server first hears from it)."""

import click

from dmctl.sim.targets.dirty_log.userspace import logd_logs, logd_start, logd_stop


def _mapper():
    from dmctl.backend import get_mapper
    return get_mapper("sim")

@click.group(help="The simulator's userspace dirty log server (cmirrord's "
                  "clustered-core / clustered-disk logs).  Set DMCTL_LOGD_DIR to "
                  "share one server between several sim dirs (hosts).")
def logd():
    pass

@logd.command(help="Start the log server.")
def start():
    if not logd_start(_mapper()):
        click.echo("logd is already running")

@logd.command(help="Stop the log server (refused while mirrors use it).")
@click.option("--force", is_flag=True)
def stop(force):
    n = logd_stop(_mapper(), force)
    if n and not force:
        raise click.ClickException("%d log(s) still in use" % n)

@logd.command(help="Show the logs the server keeps (every node's).")
@click.option("-v", "--verbose", is_flag=True,
              help="Also the node, whether that copy is the CPG's server, the "
                   "marked regions (node:region) and the regions not clean.")
def status(verbose):
    logs = logd_logs(_mapper())
    if logs is None:
        click.echo("logd is not running")
        return 1
    for l in logs:
        line = "%s/%d %s %d/%d %s" % (l["uuid"], l["luid"], l["type"], l["sync_count"],
                                      l["region_count"], l["state"])
        if verbose:
            dirty = sorted(set(range(l["region_count"])) - l["clean"])
            line += " node %d%s marks %s dirty %s" % (
                l["node"], " (server)" if l["server"] else "",
                ",".join("%d:%d" % m for m in l["marks"]) or "-",
                _ranges(dirty) or "-")
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
