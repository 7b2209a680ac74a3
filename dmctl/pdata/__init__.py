"""Persistent-data: the kernel's on-disk metadata library (drivers/md/persistent-data) in Python.

Byte-compatible with the kernel and with thin-provisioning-tools: checksums, btree nodes,
arrays, bitsets, the metadata space map and the two-phase-commit transaction manager.
All I/O goes through a :class:`~dmctl.pdata.block.BlockStore`.
"""
