"""Helpers shared by the host tests (a module of its own: several test directories have
a conftest.py, so `from conftest import ...` would be ambiguous)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")


def golden(name):
    """Contents of a golden capture, or None when it does not exist."""
    p = os.path.join(GOLDEN, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read()
