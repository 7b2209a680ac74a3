"""The DM ioctl ABI, version 4, in pure Python: ``abi`` (struct layouts, request
numbers), ``codec`` (encode a request and decode a reply, and the kernel's half: take a
request apart and write the reply as dm-ioctl.c does), ``control`` (the control node,
``/dev/mapper/control``) and ``simcontrol`` (a fake control node in front of any
Mapper-like object).  Imports nothing of dmctl but the bottom modules; the kernel
backend (``dmctl.backend.kernel``) uses it.
"""
