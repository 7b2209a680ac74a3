"""The public Python API, used as a library user would: only ``import dmctl`` and the
names it exposes (no dmctl.<submodule> imports)."""

import errno
import inspect
import os
import subprocess
import sys

import pytest

import dmctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _file(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def test_era_device_on_the_simulator(tmp_path):
    meta = _file(tmp_path / "meta.img", 4 << 20)
    origin = _file(tmp_path / "origin.img", 64 << 20)
    mapper = dmctl.open_mapper("sim", sim_dir=str(tmp_path / "state"))
    assert mapper.kind == "sim"

    params = dmctl.EraParams(metadata_dev=meta, origin_dev=origin, block_size=128)
    line = dmctl.TableLine(0, 131072, params)
    assert line.format() == "0 131072 era %s %s 128" % (meta, origin)
    mapper.create("era1", uuid="ERA-API-1")
    mapper.load("era1", [line.to_target_line()])
    info = mapper.resume("era1")
    assert isinstance(info, dmctl.DeviceInfo) and info.live_table and not info.suspended

    st = dmctl.parse_status(*_status(mapper))
    assert isinstance(st, dmctl.EraStatus)
    assert (st.current_era, st.metadata_block_size, st.metadata_snap) == (1, 8, None)
    assert st.metadata_total_blocks == 1024            # 4 MiB of 4 KiB blocks
    used_fresh = st.metadata_used_blocks

    data = bytes(range(256)) * 16
    dmctl.sim_io.write(mapper, "era1", 256, data)      # block 2 of the origin
    dmctl.sim_io.write(mapper, "era1", 1024, data, fua=True)
    dmctl.sim_io.flush(mapper, "era1")
    assert dmctl.sim_io.read(mapper, "era1", 256, 8) == data
    with open(origin, "rb") as f:
        f.seek(256 * 512)
        assert f.read(len(data)) == data

    assert mapper.message("era1", 0, "checkpoint") in (None, "")
    st = dmctl.parse_status(*_status(mapper))
    assert st.current_era == 2 and st.metadata_snap is None and not st.error
    assert used_fresh <= st.metadata_used_blocks < st.metadata_total_blocks
    assert st.as_dict() == {"metadata_block_size": 8,
                            "metadata_used_blocks": st.metadata_used_blocks,
                            "metadata_total_blocks": 1024, "current_era": 2,
                            "metadata_snap": None}
    mapper.message("era1", 0, "take_metadata_snap")
    ttype, text = _status(mapper)
    st = dmctl.parse_status(ttype, text)
    assert st.current_era == 3 and isinstance(st.metadata_snap, int)
    assert str(st) == text

    with pytest.raises(dmctl.DmError) as e:
        mapper.message("era1", 0, "no_such_message")
    assert e.value.errno == errno.EINVAL

    _info, raw = mapper.table("era1")
    table = dmctl.Table.from_target_lines(raw)
    text = "".join(t.format() + "\n" for t in raw)
    assert table.format() == str(table) == text
    assert dmctl.parse_table(text) == table
    (typed,) = table
    assert typed.target_type == "era" and typed.length == 131072
    assert typed.params.block_size == 128
    assert typed.params.metadata_dev.count(":") == 1   # the kernel shows maj:min

    mapper.suspend("era1")
    mapper.remove("era1")
    assert [d.name for d in mapper.list_devices()] == []


def _status(mapper):
    _info, lines = mapper.status("era1")
    assert len(lines) == 1 and isinstance(lines[0], dmctl.TargetLine)
    return lines[0].target_type, lines[0].params


def test_sim_dir_keeps_simulators_apart(tmp_path):
    a = dmctl.open_mapper("sim", sim_dir=str(tmp_path / "a"))
    b = dmctl.open_mapper("sim", sim_dir=str(tmp_path / "b"))
    a.create("only-in-a")
    a.load("only-in-a", dmctl.parse_table("0 8 zero\n").target_lines())
    a.resume("only-in-a")
    assert [d.name for d in a.list_devices()] == ["only-in-a"]
    assert b.list_devices() == []
    again = dmctl.open_mapper("sim", sim_dir=str(tmp_path / "a"))
    assert [d.name for d in again.list_devices()] == ["only-in-a"]
    (line,) = again.status("only-in-a")[1]
    assert dmctl.parse_status(line.target_type, line.params) == dmctl.ZeroStatus()


def test_every_public_name_resolves_and_is_documented():
    for name in dmctl.__all__:
        value = getattr(dmctl, name)
        if name in ("__version__", "LIBRARY_VERSION"):
            continue
        assert (getattr(value, "__doc__", None) or "").strip(), name
        assert name in dir(dmctl)
    with pytest.raises(AttributeError):
        dmctl.no_such_name
    for cls in (dmctl.EraParams, dmctl.MirrorParams, dmctl.EraStatus, dmctl.MirrorStatus,
                dmctl.Table, dmctl.TableLine):
        for attr in ("parse", "format"):
            if hasattr(cls, attr):
                assert inspect.getdoc(getattr(cls, attr)), (cls, attr)
    assert issubclass(dmctl.ParseError, ValueError)
    for err in (dmctl.ParseError, dmctl.TableError, dmctl.DmError, dmctl.KernelUnavailable):
        assert issubclass(err, dmctl.DmctlError), err


def test_import_dmctl_is_cheap_and_help_reads_as_a_guide():
    code = ("import sys, dmctl; print(sorted(m for m in sys.modules if m.startswith('dmctl')));"
            "print([m for m in ('typing', 'dataclasses', 'json', 'sqlite3') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split("\n")
    assert out[0] == "['dmctl']" and out[1] == "[]"
    code = "import pydoc, dmctl; print(pydoc.render_doc(dmctl, renderer=pydoc.plaintext))"
    doc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    for word in ("open_mapper", "EraParams", "parse_status", "sim_io", "MirrorStatus"):
        assert word in doc


def test_mirror_params_and_status_from_text():
    p = dmctl.parse_params("mirror", "disk 2 7:6 1024 2 7:4 0 7:5 0 1 handle_errors")
    assert isinstance(p, dmctl.MirrorParams) and isinstance(p.log, dmctl.DiskLog)
    assert p.handle_errors and [leg.device for leg in p.legs] == ["7:4", "7:5"]
    p.legs.append(dmctl.Leg("7:7", 0))
    assert str(p) == "disk 2 7:6 1024 3 7:4 0 7:5 0 7:7 0 1 handle_errors"
    s = dmctl.parse_status("mirror", "2 7:4 7:5 12/16 1 AD 3 disk 7:6 A")
    assert (s.in_sync_regions, s.total_regions, s.legs[1].health_name) == \
        (12, 16, "write_error")
    with pytest.raises(dmctl.ParseError):
        dmctl.parse_params("era", "7:1 7:0")
    raw = dmctl.parse_params("thin", "253:0 1")
    assert isinstance(raw, dmctl.RawParams) and str(raw) == "253:0 1"
