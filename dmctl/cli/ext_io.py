"""``dmctl io``: submit I/O to simulated devices (click; imported only when used)."""

import sys

import click


def _mapper():
    import os
    from dmctl.backend import get_simulator
    from dmctl.backend.base import SimulatorRequired
    try:
        return get_simulator(os.environ.get("DMCTL_BACKEND"))
    except SimulatorRequired:
        raise click.ClickException("dmctl io drives the simulator only (use dd on a real kernel)")


def _device(_ctx, _param, arg):
    """The DEVICE argument -> a DevId, through the one device resolver."""
    import os
    from dmctl.libdm import devices
    m = _mapper()
    dev_dir = os.environ.get("DM_DEV_DIR", "/dev").rstrip("/") + "/"
    try:
        return devices.device_arg(arg, m.dm_major, dev_dir,
                                  nodeless=lambda: not m.has_device_nodes)
    except devices.DeviceArgError as e:
        click.echo("dmctl io: %s" % e, err=True)
        sys.exit(1)


def _run(fn):
    from dmctl.errors import DmError
    from dmctl.sim.io import IOError_, ScriptError
    try:
        return fn()
    except DmError as e:
        click.echo("dmctl io: %s" % (e.detail or e.strerror), err=True)
        sys.exit(1)
    except IOError_ as e:
        click.echo("dmctl io: %s" % e, err=True)
        sys.exit(1)
    except ScriptError as e:
        click.echo("dmctl io script: %s" % e, err=True)
        sys.exit(1)
    except (ValueError, OSError) as e:
        click.echo("dmctl io: %s" % e, err=True)
        sys.exit(1)


@click.group(help="Submit I/O to a simulated device.  DEVICE is a name, "
                  "/dev/mapper/NAME, /dev/dm-N or MAJ:MIN.")
def io():
    pass


@io.command(help="Write sectors from a file or a repeated byte.")
@click.argument("device", callback=_device)
@click.argument("sector", type=click.IntRange(min=0))
@click.option("--from", "src", type=click.Path(exists=True, dir_okay=False), help="Data file.")
@click.option("--pattern", type=str, help="Fill byte (0x41, 65 or a character).")
@click.option("--sectors", type=click.IntRange(min=1), help="Sectors to write (default: the file's size).")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Byte offset into --from.")
@click.option("--fua", is_flag=True, help="Forced unit access: durable on completion.")
@click.option("--preflush", is_flag=True, help="Flush the cache before the write.")
@click.option("--meta", is_flag=True, help="Mark the write as metadata (REQ_META).")
def write(device, sector, src, pattern, sectors, offset, fua, preflush, meta):
    if (src is None) == (pattern is None):
        raise click.UsageError("give exactly one of --from FILE and --pattern BYTE")
    if pattern is not None:
        try:
            byte = int(pattern, 0)
        except ValueError:
            if len(pattern) != 1:
                raise click.UsageError("--pattern takes a byte: 0x41, 65 or A")
            byte = ord(pattern)
        if not 0 <= byte <= 255:
            raise click.UsageError("--pattern takes a byte (0-255)")
        if not sectors:
            raise click.UsageError("--pattern needs --sectors N")
        data = bytes([byte]) * (sectors << 9)
    else:
        with open(src, "rb") as f:
            f.seek(offset)
            data = f.read() if not sectors else f.read(sectors << 9)
        if sectors and len(data) < sectors << 9:
            data += bytes((sectors << 9) - len(data))
        if len(data) % 512:
            data += bytes(512 - len(data) % 512)
    from dmctl.sim import io as sio
    _run(lambda: sio.write(_mapper(), device, sector, data, fua=fua, preflush=preflush, meta=meta))


@io.command(help="Read sectors (raw bytes to stdout unless --to FILE).")
@click.argument("device", callback=_device)
@click.argument("sector", type=click.IntRange(min=0))
@click.option("--sectors", type=click.IntRange(min=1), required=True)
@click.option("--to", "dst", type=click.Path(dir_okay=False, writable=True))
def read(device, sector, sectors, dst):
    from dmctl.sim import io as sio
    data = _run(lambda: sio.read(_mapper(), device, sector, sectors))
    if dst:
        with open(dst, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


@io.command(help="Discard sectors.")
@click.argument("device", callback=_device)
@click.argument("sector", type=click.IntRange(min=0))
@click.option("--sectors", type=click.IntRange(min=1), required=True)
def discard(device, sector, sectors):
    from dmctl.sim import io as sio
    _run(lambda: sio.discard(_mapper(), device, sector, sectors))


@io.command(help="Flush the device's volatile caches (an empty PREFLUSH bio).")
@click.argument("device", callback=_device)
def flush(device):
    from dmctl.sim import io as sio
    _run(lambda: sio.flush(_mapper(), device))


@io.command(help="Run an I/O script, one event per line: write SECTOR COUNT [fua] "
                 "[preflush] [meta] [pattern=BYTE|from=FILE[@OFFSET]], discard SECTOR "
                 "COUNT, flush, read SECTOR COUNT; 'submit ID <event>' submits without "
                 "completing, 'complete ID' completes.")
@click.argument("device", callback=_device)
@click.argument("script", default="-", type=click.File("r"))
@click.option("--to", "dst", type=click.Path(dir_okay=False, writable=True),
              help="Write data of read events here (default: stdout).")
def script(device, script, dst):
    from dmctl.sim import io as sio
    lines = script.readlines()
    out = open(dst, "wb") if dst else sys.stdout.buffer
    try:
        failures = _run(lambda: sio.run_script(_mapper(), device, lines, out=out))
    finally:
        if dst:
            out.close()
        else:
            sys.stdout.flush()
    rc = 0
    import os
    for lineno, what, err in failures:
        if err:
            click.echo("dmctl io script: line %d: %s failed: %s" % (lineno, what, os.strerror(err)), err=True)
            rc = 1
        else:
            click.echo("dmctl io script: %s was never completed; completed at end" % what, err=True)
    sys.exit(rc)


@io.command(help="Stream a file onto a device (images, workloads).")
@click.argument("device", callback=_device)
@click.option("--from", "src", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--bs", type=click.IntRange(min=512), default=1 << 20, show_default=True,
              help="Bytes per write.")
@click.option("--fsync-every", type=click.IntRange(min=0), default=0,
              help="Flush after every N writes (and at the end).")
@click.option("--seek", type=click.IntRange(min=0), default=0, help="Start sector on the device.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar (one is drawn on stderr only when it is a terminal).")
def copy(device, src, bs, fsync_every, seek, quiet):
    import os
    from dmctl import progress as _progress
    from dmctl.sim import io as sio
    bar = _progress.bar(os.path.getsize(src), "B", "copying", quiet=quiet, unit_scale=True)

    def work():
        try:
            return sio.copy(_mapper(), device, src, bs=bs, fsync_every=fsync_every,
                            progress=None if bar is None else (
                                lambda done, _total: _progress.advance_to(bar, done)),
                            start_sector=seek)
        finally:
            if bar is not None:     # erased before any error is printed
                bar.close()
    _run(work)
