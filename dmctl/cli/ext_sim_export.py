"""``dmctl sim export``: serve a simulated device over NBD (nbdkit and dmctl's plugin,
``dmctl.export``).  Added to the ``sim`` group by ``ext_sim``."""

import os
import sys

import click


@click.command(help="Serve a simulated device over NBD on a Unix socket (nbdkit with "
                    "dmctl's Python plugin).  Returns once it accepts connections and "
                    "prints the NBD URI; SIGTERM to the server (--pidfile) flushes the "
                    "device and ends it.  NBD FUA, flush, trim and write-zeroes become "
                    "FUA writes, empty flushes, discards and zeroing writes.")
@click.argument("device")
@click.option("--socket", "socket_path", required=True, type=click.Path(dir_okay=False),
              help="The Unix socket to listen on (must not exist).")
@click.option("--pidfile", type=click.Path(dir_okay=False),
              help="Write the server's process id here once it is ready.")
@click.option("--readonly", is_flag=True, help="Refuse writes, trims and zeroes.")
def export(device, socket_path, pidfile, readonly):
    from dmctl.backend import get_simulator
    from dmctl.backend.base import SimulatorRequired
    from dmctl.errors import DmError
    from dmctl.export import nbd
    from dmctl.libdm import devices
    from dmctl.sim import io as sio
    try:
        m = get_simulator(os.environ.get("DMCTL_BACKEND"))
    except SimulatorRequired:
        raise click.ClickException("dmctl sim export serves simulated devices only")
    dev_dir = os.environ.get("DM_DEV_DIR", "/dev").rstrip("/") + "/"
    try:
        dev = devices.device_arg(device, m.dm_major, dev_dir,
                                 nodeless=lambda: not m.has_device_nodes)
        key = nbd.device_key(dev)
        sio.device_size(m, key)
        uri = nbd.start(key, socket_path, m.store.dir, pidfile=pidfile, readonly=readonly)
    except (devices.DeviceArgError, nbd.ExportError) as e:
        click.echo("dmctl sim export: %s" % e, err=True)
        sys.exit(1)
    except DmError as e:
        click.echo("dmctl sim export: %s" % (e.detail or e.strerror), err=True)
        sys.exit(1)
    click.echo(uri)
