"""``dmctl logd``: the simulator's userspace dirty-log server (clustered-core,
clustered-disk, as cmirrord serves them).  The server's state lives in the
simulator's store; mirror tables with a ``userspace`` log need it running."""

import click

from dmctl.targets.dirty_log.userspace import logd_start, logd_state, logd_stop


def _mapper():
    from dmctl.backend import get_mapper
    return get_mapper("sim")

@click.group(help="The simulator's userspace dirty log server (cmirrord's "
                  "clustered-core / clustered-disk logs).")
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

@logd.command(help="Show the logs the server keeps.")
def status():
    st = logd_state(_mapper())
    if st is None:
        click.echo("logd is not running")
        return 1
    for uuid, luid, t, sc, rc, state in st:
        click.echo("%s/%d %s %d/%d %s" % (uuid, luid, t, sc, rc, state))
