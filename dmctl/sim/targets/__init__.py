"""The simulated targets, one module each (the kernel's ``struct target_type``):
``linear``, ``striped``, ``zero``, ``error``, ``era``, ``log-writes``, ``mirror`` and the
mirror's dirty logs in ``dirty_log/``.

``base`` holds the framework (``Target``, ``TargetInfo``, dm_split_args) and the registry
that maps a table's target name to its class, imported only when a table uses it.  A
target is constructed by dm core with the environment (``dmctl.sim.core.SimEnv``) as
``self.env`` and reaches everything through it: devices (``env.lookup_device``,
``env.device_by_devno``), the kernel log (``env.klog``), the store, discard support
(``env.device_takes_discards``).  Targets import only ``base``, ``dmctl.sim.bio`` and
``dmctl.formats``/``dmctl.pdata``: never dm core, never a backend.
"""
