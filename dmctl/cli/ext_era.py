"""``dmctl era``: read dm-era metadata directly (what era_invalidate/era_dump print)."""

import sys

import click


def _store(meta):
    from dmctl.pdata.block import FileBlockStore
    try:
        return FileBlockStore(meta, readonly=True)
    except OSError as e:
        raise click.ClickException("%s: %s" % (meta, e.strerror))


def _fail(e):
    text = getattr(e, "text", None) or str(e)
    click.echo("dmctl era: %s" % text, err=True)
    sys.exit(1)


@click.group(help="Read era metadata (a metadata device or file), as backup tools need.")
def era():
    pass


@era.command("changed-since",
             help="Blocks written in era ERA or later, as ranges 'BEGIN END' (END "
                  "exclusive), the blocks `era_invalidate --written-since ERA` reports.")
@click.argument("since", metavar="ERA", type=click.IntRange(min=0))
@click.argument("meta", type=click.Path(exists=True))
@click.option("--metadata-snapshot", is_flag=True,
              help="Read the metadata snapshot (take_metadata_snap) instead of the live superblock.")
@click.option("--json", "as_json", is_flag=True, help="JSON: {\"ranges\": [[begin, end], ...]}.")
@click.option("--xml", "as_xml", is_flag=True, help="era_invalidate's XML instead of plain ranges.")
def changed_since(since, meta, metadata_snapshot, as_json, as_xml):
    from dmctl.formats import era_meta
    try:
        sb = era_meta.read_superblock(_store(meta), metadata_snapshot)
        ranges = era_meta.written_since(_store(meta), since, metadata_snapshot)
    except Exception as e:
        _fail(e)
    if as_json:
        import json
        click.echo(json.dumps({"written_since": since, "block_size": sb["data_block_size"],
                               "nr_blocks": sb["nr_blocks"], "current_era": sb["current_era"],
                               "ranges": [[b, e] for b, e in ranges]}))
    elif as_xml:
        sys.stdout.write(era_meta.format_invalidate(ranges))
    else:
        # one range per line, "BEGIN END" with END exclusive (era_invalidate's
        # begin/end), so `while read begin end` loops work
        out = sys.stdout
        for b, e in ranges:
            out.write("%d %d\n" % (b, e))


@era.command(help="Dump era metadata as era_dump's XML.")
@click.argument("meta", type=click.Path(exists=True))
@click.option("--logical", is_flag=True, help="Fold the writesets into the era array.")
@click.option("--metadata-snapshot", is_flag=True, help="Dump the metadata snapshot.")
def dump(meta, logical, metadata_snapshot):
    from dmctl.formats import era_meta
    try:
        for line in era_meta.iter_dump(_store(meta), logical, metadata_snapshot):
            sys.stdout.write(line)
    except Exception as e:
        _fail(e)
