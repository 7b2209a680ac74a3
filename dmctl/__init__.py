"""dmctl: a dmsetup-compatible device-mapper tool and library, with a simulator.

The Python API (every name below is imported on first use, so ``import dmctl``
itself stays cheap):

Open the device mapper::

    import dmctl
    mapper = dmctl.open_mapper("sim", sim_dir="/tmp/state")   # or "kernel", "auto"

A :class:`Mapper` has the DM ioctls as methods: ``create(name)``,
``load(dev, [TargetLine])``, ``resume(dev)``, ``suspend``, ``remove``, ``info``,
``table(dev)`` and ``status(dev)`` (each -> ``(DeviceInfo, [TargetLine])``),
``message(dev, sector, text)``, ``list_devices()``...  Failures raise
:class:`DmError` carrying the kernel's ``errno``.

Typed, symmetric table params (``str(params)`` is the kernel's text)::

    p = dmctl.EraParams(metadata_dev="/dev/sdb1", origin_dev="/dev/sdc", block_size=128)
    line = dmctl.TableLine(0, 131072, p)          # line.format() -> "0 131072 era ..."
    mapper.create("era1"); mapper.load("era1", [line.to_target_line()])
    mapper.resume("era1")
    table = dmctl.Table.from_target_lines(mapper.table("era1")[1])
    table = dmctl.parse_table("0 1024 linear /dev/sdb 0\\n1024 1024 zero\\n")
    str(table)                                     # formats it back

Params classes: LinearParams, StripedParams, ZeroParams, ErrorParams, EraParams,
LogWritesParams, MirrorParams (with a CoreLog, DiskLog or UserspaceLog and Legs);
any other target type parses to RawParams (its text, verbatim).

Typed status (the same fields ``dmctl status --json`` prints, via ``as_dict()``)::

    info, lines = mapper.status("era1")
    st = dmctl.parse_status(lines[0].target_type, lines[0].params)
    st.current_era, st.metadata_used_blocks, st.metadata_snap

Status classes: LinearStatus, StripedStatus, ZeroStatus, ErrorStatus, EraStatus,
LogWritesStatus, MirrorStatus.  Text that does not have a target's shape raises
:class:`ParseError`; bad table text raises :class:`TableError`.  Every error dmctl
raises on purpose is a :class:`DmctlError`.

The simulator's I/O path (simulated devices only): ``dmctl.sim_io`` is the module
:mod:`dmctl.sim.io`: ``write(mapper, dev, sector, data, fua=False, preflush=False)``,
``read(mapper, dev, sector, nr_sectors)``, ``discard``, ``flush``, ``run_script``,
``copy``, ``settle`` (run background work), ``crash`` (a power cut), ``fail``/``heal``
(inject I/O errors on a backing file).
"""

__version__ = "0.1.0"

# What `dmctl version` prints as the library line.  dmctl is not libdevmapper; the
# string keeps libdm's "1.02.x" shape that scripts parse and says what it really is.
LIBRARY_VERSION = "1.02.185-dmctl-%s (2026-11-22)" % __version__

# the public API, served lazily by __getattr__ from dmctl.libdm.api
_API = (
    "open_mapper", "Mapper", "KernelUnavailable",
    "DevId", "DeviceInfo", "DeviceEntry", "TargetLine", "TargetVersion",
    "Table", "TableLine", "parse_table", "parse_params", "TargetParams", "RawParams",
    "LinearParams", "StripedParams", "ZeroParams", "ErrorParams", "EraParams",
    "LogWritesParams", "MirrorParams", "Leg", "DirtyLog", "CoreLog", "DiskLog",
    "UserspaceLog",
    "parse_status", "TargetStatus", "LinearStatus", "StripedStatus", "StripeStatus",
    "ZeroStatus", "ErrorStatus", "EraStatus", "LogWritesStatus", "MirrorStatus",
    "MirrorLegStatus", "MirrorLogStatus",
    "DmctlError", "DmError", "TableError", "ParseError",
)

__all__ = list(_API) + ["sim_io", "__version__", "LIBRARY_VERSION"]


def __getattr__(name):
    """Import a public name on first use (PEP 562)."""
    if name == "sim_io":
        from dmctl.sim import io as value
    elif name in _API:
        from dmctl.libdm import api
        value = getattr(api, name)
    else:
        raise AttributeError("module 'dmctl' has no attribute %r" % name)
    globals()[name] = value
    return value


def __dir__():
    """The module's names, the lazily imported API included."""
    return sorted(set(globals()) | set(__all__))
