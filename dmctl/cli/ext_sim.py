"""``dmctl sim``: control the simulated kernel (power cuts, background work, faults)."""

import sys

import click


def _mapper():
    from dmctl.backend import get_simulator
    return get_simulator()


@click.group(help="Control the simulated device mapper.")
def sim():
    pass


@sim.command(help="Power cut: every simulated device and all in-core target state "
                  "vanish; backing files keep exactly their durable contents.")
@click.option("--seed", type=int, default=None,
              help="Let a reproducible random subset of non-durable writes survive.")
def crash(seed):
    from dmctl.sim import io as sio
    res = sio.crash(_mapper(), seed)
    for path, (reverted, survived) in res.items():
        if reverted or survived:
            click.echo("%s: %d block(s) lost, %d survived" % (path, reverted, survived))


@sim.command(help="Run all pending background work (resync, digestion, logging) to completion.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar (one is drawn on stderr only when it is a terminal).")
def settle(quiet):
    from dmctl import progress as _progress
    from dmctl.sim import io as sio
    shown = {}

    def progress(steps, regions_left):
        # regions of mirrors to resync when there are any, else steps of other work
        b = shown.get("bar")
        if "bar" not in shown:
            shown["start"] = regions_left
            b = shown["bar"] = _progress.bar(regions_left or None,
                                             "region" if regions_left else "step", "settling")
        if b is not None:
            _progress.advance_to(b, shown["start"] - regions_left if shown["start"] else steps)

    on_tty = not quiet and _progress.is_terminal(sys.stderr)
    try:
        n = sio.settle(_mapper(), progress=progress if on_tty else None)
    finally:
        if shown.get("bar") is not None:
            shown["bar"].close()
    if n:
        click.echo("%d step(s) of background work done" % n)


@sim.command(help="Make a backing file return EIO (all I/O unless a kind is given).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--reads", is_flag=True)
@click.option("--writes", is_flag=True)
@click.option("--flushes", is_flag=True)
@click.option("--sectors", help="A-B: only this sector range (end exclusive).")
def fail(file, reads, writes, flushes, sectors):
    kinds = [k for k, on in (("read", reads), ("write", writes), ("flush", flushes)) if on]
    if not kinds:
        kinds = ["read", "write", "flush"]
    rng = None
    if sectors:
        try:
            a, b = sectors.split("-", 1)
            rng = (int(a), int(b))
            if rng[0] >= rng[1]:
                raise ValueError
        except ValueError:
            raise click.UsageError("--sectors takes A-B with A < B")
    from dmctl.sim import io as sio
    sio.fail(_mapper(), file, kinds, rng)


@sim.command(help="Remove all injected failures of a backing file.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def heal(file):
    from dmctl.sim import io as sio
    sio.heal(_mapper(), file)


@sim.command(help="Show backing files (device numbers, unflushed blocks, faults).")
def status():
    from dmctl.sim import io as sio
    rows = sio.backing_status(_mapper())
    if not rows:
        click.echo("No backing files")
    for minor, path, dirty, faults in rows:
        f = ",".join("%s%s" % (k, "" if lo is None else "[%d-%d]" % (lo, hi)) for k, lo, hi in faults)
        click.echo("7:%d\t%s\tunflushed_blocks=%d%s" % (minor, path, dirty, ("\tfaults=" + f) if f else ""))


@sim.command(help="Show the simulated kernel's log (what dmesg would show): target "
                  "errors, warnings and events, oldest first.")
@click.option("-c", "--clear", is_flag=True, help="Clear the log after printing it.")
def dmesg(clear):
    m = _mapper()

    def fn(env):
        rows = env.db.execute("SELECT line FROM klog ORDER BY seq").fetchall()
        if clear:
            env.db.execute("DELETE FROM klog")
        return [r[0] for r in rows]
    for line in m.run(fn):
        click.echo(line)


@sim.command(help="Forget all simulator state (devices, backing-file numbers, caches).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask.")
def reset(yes):
    from dmctl.sim.store import default_sim_dir
    import os
    import shutil
    d = default_sim_dir()
    if not yes and sys.stdin.isatty():
        click.confirm("Remove all simulator state in %s?" % d, abort=True)
    if os.path.isdir(d):
        shutil.rmtree(d)


from dmctl.cli.ext_sim_export import export  # noqa: E402  (dmctl sim export)

sim.add_command(export)
