"""Test support for programs that use dmctl: the pytest plugin (``plugin``), registered
through the ``pytest11`` entry point, so installing dmctl is enough to get the ``dm``
fixture.  A program-level package, like ``cli``: it may import everything below."""
