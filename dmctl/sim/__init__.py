"""The simulated kernel: dmctl's device mapper without root, in one package.

Modules, top to bottom (each imports only those below it; a bio walks down and never
back up):

* ``dm_ioctl`` -- ``SimKernel``: what drivers/md/dm-ioctl.c does for each ioctl (create,
  load, resume, remove, rename, message, status...), one transaction of the store per
  call.  ``dmctl.backend.sim.SimMapper`` presents it as a Mapper.
* ``io`` -- the I/O API for programs and ``dmctl io``/``dmctl sim`` (write, read,
  discard, flush, scripts, copy, power cut, settle, fault injection), run as steps of
  a SimKernel.
* ``core`` -- dm core (dm.c, dm-table.c): mapped devices (``SimDevice``), their live and
  inactive tables, bio splitting and fan-out, background work, power cuts, and
  ``SimEnv``, the environment each target is given.
* ``targets/`` -- the targets (linear, striped, zero, error, era, log-writes, mirror and
  its dirty logs).  They reach devices, the kernel log and the store through their
  ``env`` only: no target imports ``core``, ``dm_ioctl`` or a backend.
* ``blockdev`` -- backing files as loop devices with a volatile write cache and faults.
* ``bio`` -- struct bio, submission and completion.
* ``store`` -- the SQLite state shared by every dmctl process (and the rename map that
  lets state pickled by older versions load).

Below the package: ``dmctl.formats`` and ``dmctl.pdata`` (on-disk formats) and the
bottom modules (constants, records, errors).  Nothing here imports ``dmctl.backend``,
``dmctl.libdm`` or ``dmctl.cli``.
"""
