"""``dmctl logd``: the userspace dirty-log daemon (cmirrord's ``clustered-core`` and
``clustered-disk`` logs).

* ``state``: cmirrord's per-log state machine (one copy per node and log, the CPG's
  agreed order, the lowest node serves);
* ``daemon``: the process: transports (the Unix socket simulated kernels use), peer
  checks, write-ahead persistence, pid file, signals, logging;
* ``client``: talking to a running daemon (status, stop) for the command line;
* ``connector``: the real kernel's transport (netlink connector, CN_IDX_DM), with the
  log device's O_DIRECT I/O for clustered-disk logs;
* ``pidlock``: the flock'ed pid files (one daemon per socket, one per kernel).

The simulated kernel never imports this package: it talks to the daemon over the Unix
socket with the kernel's ``dm_ulog_request`` bytes (``dmctl.formats.ulog``).
"""
