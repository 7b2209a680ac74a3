"""Simulated devices for unmodified programs: ``dmctl sim export`` serves a simulated
device over NBD through Debian's ``nbdkit`` and dmctl's Python plugin
(``nbdkit_plugin.py``, loaded by nbdkit's embedded Python, never imported here).

* ``nbd`` -- start and stop the server (``start``, ``stop``), the plugin's arguments;
* ``nbdkit_plugin`` -- the plugin: NBD requests -> the simulator's bios
  (``dmctl.sim.io``), one store transaction each.

A program-level package: it may import ``backend`` and ``sim`` (and ``libdm``); ``cli``
imports it.  A file view (``nbdfuse`` over the socket) needs nothing of dmctl's.
"""
