"""striped in the simulator: the kernel's constructor errors, chunk mapping and status."""

import errno
import re
import shutil
import subprocess

import pytest

from dmctl.backend.base import TargetLine as L
from dmctl.errors import DmError
from dmctl.sim import io as sio


def test_chunks_go_round_robin_and_status_is_the_kernels(mapper, backing):
    a, b = backing("a", 1 << 20), backing("b", 1 << 20)
    mapper.create("st")
    mapper.load("st", [L(0, 1024, "striped", "2 8 %s 0 %s 16" % (a, b))])
    mapper.resume("st")
    assert mapper.table("st")[1][0].params == "2 8 7:0 0 7:1 16"
    assert mapper.status("st")[1][0].params == "2 7:0 7:1 1 AA"
    data = b"".join(bytes([i + 1]) * 4096 for i in range(4))     # 4 chunks of 8 sectors
    sio.write(mapper, "st", 0, data)                               # split at chunk boundaries
    ra, rb = open(a, "rb").read(), open(b, "rb").read()
    assert ra[:4096] == bytes([1]) * 4096 and ra[4096:8192] == bytes([3]) * 4096
    assert rb[16 * 512:16 * 512 + 4096] == bytes([2]) * 4096
    assert rb[24 * 512:24 * 512 + 4096] == bytes([4]) * 4096
    assert sio.read(mapper, "st", 0, 32) == data
    assert mapper.deps("st")[1] == [(7, 1), (7, 0)]


@pytest.mark.parametrize("params,text", [
    ("2", "Not enough arguments"),
    ("0 8 {a} 0", "Invalid stripe count"),
    ("2 0 {a} 0 {b} 0", "Invalid chunk_size"),
    ("3 8 {a} 0 {b} 0 {a} 0", "Target length not divisible by number of stripes"),
    ("2 24 {a} 0 {b} 0", "Target length not divisible by chunk size"),
    ("2 8 {a} 0", "Not enough destinations specified"),
    ("2 8 {a} x {b} 0", "Couldn't parse stripe destination"),
])
def test_constructor_errors(mapper, backing, params, text):
    a, b = backing("a", 1 << 20), backing("b", 1 << 20)
    mapper.create("bad")
    with pytest.raises(DmError) as ei:
        mapper.load("bad", [L(0, 1024, "striped", params.format(a=a, b=b))])
    assert ei.value.errno == errno.EINVAL
    assert ei.value.detail.splitlines()[0] == "device-mapper: table: 254:0: striped: %s (-EINVAL)" % text


def test_era_bios_are_split_at_block_boundaries(mapper, backing):
    """dm core splits at max_io_len: a write spanning two era blocks marks both."""
    meta, origin = backing("meta", 4 << 20), backing("origin", 8 << 20)
    mapper.create("era")
    mapper.load("era", [L(0, 16384, "era", "%s %s 128" % (meta, origin))])
    mapper.resume("era")
    sio.write(mapper, "era", 120, bytes(16 * 512))       # sectors 120..135: blocks 0 and 1
    mapper.message("era", 0, "take_metadata_snap")
    # thin-provisioning-tools is installed by scripts/test: its absence fails the test
    tool = shutil.which("era_invalidate")
    assert tool, "era_invalidate is missing: install thin-provisioning-tools"
    out = subprocess.run([tool, "--metadata-snapshot", "--written-since", "1", meta],
                         capture_output=True, text=True, check=True).stdout
    # blocks 0 and 1, nothing else (the tool's own spacing: 'end = ')
    assert re.findall(r'<(?:range|block) [^>]*>', out) == ['<range begin="0" end = "2"/>'], out
