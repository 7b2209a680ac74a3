"""The device-mapper control node, ``/dev/mapper/control``.

A *ControlDevice* is anything with

* ``ioctl(cmd_nr, buf)``: issue control command ``cmd_nr`` (0..17) with the mutable
  ``bytearray`` ``buf`` as ``struct dm_ioctl`` + payload; the reply is written back into
  ``buf``.  Returns the ioctl's non-negative return value (the kernel's DM_TARGET_MSG can
  return 2); raises ``OSError`` with the errno on failure;
* optionally ``poll(timeout)``: wait up to ``timeout`` seconds for a global dm event
  after DM_DEV_ARM_POLL (returns True if one happened);
* optionally ``close()``;
* ``dm_major()``: the block major of the driver's mapped devices (the default reads
  ``/proc/devices``; a fake control device answers for the mapper behind it).

``KernelControl`` is the real node; ``dmctl.ioctl.simcontrol.SimControl`` is a fake one.
"""

import fcntl
import os

from dmctl.ioctl import abi


class ControlDevice:
    """Protocol (documentation only; duck typing is enough)."""

    def ioctl(self, cmd_nr, buf):
        raise NotImplementedError

    def poll(self, timeout):
        raise NotImplementedError

    def close(self):
        pass

    def dm_major(self):
        """The "device-mapper" block major from /proc/devices, 0 when it lists none."""
        return proc_devices_major("device-mapper")


def proc_devices_major(driver):
    """The block major /proc/devices gives ``driver``, 0 when none (or unreadable)."""
    try:
        with open("/proc/devices") as f:
            block = False
            for line in f:
                if line.startswith("Block devices"):
                    block = True
                parts = line.split()
                if block and len(parts) == 2 and parts[1] == driver:
                    return int(parts[0])
    except (OSError, ValueError):
        pass
    return 0


class KernelControl(ControlDevice):
    """``os.open('/dev/mapper/control', O_RDWR|O_CLOEXEC)`` and ``fcntl.ioctl``."""

    def __init__(self, path=abi.DM_CONTROL_PATH):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def ioctl(self, cmd_nr, buf):
        # mutate_flag=True: the kernel writes straight into ``buf`` (no 1024-byte copy).
        return fcntl.ioctl(self.fd, abi.request(cmd_nr), buf, True)

    def poll(self, timeout):
        import select
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        return bool(p.poll(None if timeout is None else max(0, int(timeout * 1000))))

    def fileno(self):
        return self.fd

    def close(self):
        if self.fd is not None and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
