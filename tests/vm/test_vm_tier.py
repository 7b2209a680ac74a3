"""Host side of the VM test tier.

- ``test_vm_tier_passes`` (marker ``vm``): runs ``tests/vm/run`` (one VM boot, pytest on
  tests/vm/guest inside it) and asserts that it passed.  Selected by ``pytest -m vm``.
  Outside CI a host that cannot boot the VM (no qemu, status 125) skips it; in CI (CI
  set) that fails instead.
- the rest are unit tests of the harness's pure parts (tests/vm/vmtier.py); they boot
  nothing and run in the default tier.
"""

import gzip
import os
import shlex
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vmtier  # noqa: E402


@pytest.mark.vm
def test_vm_tier_passes():
    in_ci = bool(os.environ.get("CI"))
    run = os.path.join(HERE, "run")
    # DMCTL_VM_ARGS: pytest arguments for the guest (default: the whole guest suite)
    args = shlex.split(os.environ.get("DMCTL_VM_ARGS", ""))
    p = subprocess.run([sys.executable, run, *args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace", timeout=float(
                           os.environ.get("DMCTL_VM_TIMEOUT") or vmtier.DEFAULT_TIMEOUT) * 2 + 120)
    if p.returncode == vmtier.RC_VM_FAILED and not in_ci:
        pytest.skip("the VM could not boot on this host (run scripts/vm-setup):\n"
                    + p.stdout[-3000:])
    assert p.returncode == 0, "tests/vm/run exited %d:\n%s" % (p.returncode, p.stdout[-20000:])


# --------------------------------------------------------------------------- modules

MODULES_DEP = """\
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-bufio.ko: kernel/drivers/md/dm-mod.ko
kernel/lib/libcrc32c.ko:
kernel/drivers/md/persistent-data/dm-persistent-data.ko: kernel/drivers/md/dm-bufio.ko kernel/lib/libcrc32c.ko kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-era.ko: kernel/drivers/md/persistent-data/dm-persistent-data.ko kernel/drivers/md/dm-bufio.ko kernel/lib/libcrc32c.ko kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-log.ko: kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-region-hash.ko: kernel/drivers/md/dm-log.ko kernel/drivers/md/dm-mod.ko
kernel/drivers/md/dm-mirror.ko: kernel/drivers/md/dm-region-hash.ko kernel/drivers/md/dm-log.ko kernel/drivers/md/dm-mod.ko
kernel/drivers/block/loop.ko:
"""


def test_parse_modules_dep():
    deps = vmtier.parse_modules_dep(MODULES_DEP)
    assert deps["kernel/drivers/md/dm-mod.ko"] == []
    assert deps["kernel/drivers/md/dm-mirror.ko"][0] == "kernel/drivers/md/dm-region-hash.ko"
    assert len(deps) == 9


def test_module_load_order_puts_dependencies_first_once():
    deps = vmtier.parse_modules_dep(MODULES_DEP)
    order = vmtier.module_load_order(["dm-era", "dm-mirror", "loop", "dm_mod"], deps)
    names = [os.path.basename(p) for p in order]
    assert len(names) == len(set(names))
    for mod, needs in deps.items():
        if mod in order:
            for d in needs:
                assert order.index(d) < order.index(mod), (d, mod)
    assert names[-1] == "loop.ko"
    assert set(names) == {"dm-mod.ko", "dm-bufio.ko", "libcrc32c.ko", "dm-persistent-data.ko",
                          "dm-era.ko", "dm-log.ko", "dm-region-hash.ko", "dm-mirror.ko",
                          "loop.ko"}


def test_module_load_order_unknown_module():
    with pytest.raises(KeyError):
        vmtier.module_load_order(["dm-nosuch"], vmtier.parse_modules_dep(MODULES_DEP))


def test_norm_modname():
    assert vmtier.norm_modname("kernel/drivers/md/dm-mod.ko") == "dm_mod"
    assert vmtier.norm_modname("dm_mod") == "dm_mod"
    assert vmtier.norm_modname("crc32c-intel.ko.xz") == "crc32c_intel"


# --------------------------------------------------------------------------- initramfs

def _parse_cpio(blob):
    """Minimal newc reader: -> {name: (mode, data, rdevmajor, rdevminor)}."""
    out, pos = {}, 0
    while True:
        assert blob[pos:pos + 6] == b"070701"
        f = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        pos += 110
        name = blob[pos:pos + namesize - 1].decode()
        pos += namesize
        pos += -pos % 4
        data = blob[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data, rmaj, rmin)


def test_cpio_newc_round_trip():
    ents = vmtier.initramfs_entries(b"\x7fELFbusybox", [("dm-mod.ko", b"A" * 5),
                                                      ("dm-era.ko", b"BB")], "#!/bin/sh\n")
    files = _parse_cpio(vmtier.cpio_newc(ents))
    assert files["init"][0] == 0o100755 and files["init"][1] == b"#!/bin/sh\n"
    assert files["bin/busybox"][0] == 0o100755
    assert files["mods/dm-mod.ko"] == (0o100644, b"AAAAA", 0, 0)
    assert files["mods/order"][1] == b"dm-mod.ko\ndm-era.ko\n"
    assert files["dev/console"][0] == 0o020600 and files["dev/console"][2:] == (5, 1)
    assert files["newroot"][0] == 0o040755
    # reproducible: same input, same bytes
    assert vmtier.cpio_newc(ents) == vmtier.cpio_newc(ents)


def test_init_script():
    text = vmtier.init_script(optional={"crc32c-intel"})
    assert text.startswith("#!/bin/busybox sh\n")
    assert " crc32c-intel " in text
    for needle in ("insmod", "mount -t 9p", vmtier.CTL_TAG, vmtier.ROOT_TAG, "cache=loose,ro",
                   "chroot $R /bin/sh %s/cmd.sh" % vmtier.GUEST_CTL, ">/dev/ttyS1 2>/dev/ttyS2",
                   "echo $? > /ctl/rc", "poweroff -f"):
        assert needle in text, needle
    assert "__" not in text        # every placeholder was filled in


def test_init_script_is_valid_sh(tmp_path):
    p = tmp_path / "init"
    p.write_text(vmtier.init_script())
    assert subprocess.run(["sh", "-n", str(p)]).returncode == 0


def test_is_static_elf():
    with open("/bin/sh", "rb") as f:          # dynamically linked on any normal host
        assert not vmtier.is_static_elf(f.read(65536))
    assert not vmtier.is_static_elf(b"#!/bin/sh\n" + b"\0" * 100)
    # a minimal ELF64 header with no program headers counts as static
    hdr = bytearray(64)
    hdr[:5] = b"\x7fELF\x02"
    assert vmtier.is_static_elf(bytes(hdr))


# --------------------------------------------------------------------------- guest command

def test_guest_env_filters_and_adds():
    host = {"DMCTL_FOO": "1", "CI": "true", "DM_DISABLE_UDEV": "1", "HOME": "/home/x",
            "PATH": "/root/.pyenv/shims:/usr/bin", "SSH_AUTH_SOCK": "/x", "DMCTL_VM_CACHE": "/c",
            "PYTEST_ADDOPTS": "-x", "PYTHONHOME": "/bad", "ANTHROPIC_X": "y", "BAD": "a\nb",
            "DMCTL_MULTI": "a\nb"}
    env = vmtier.guest_env(host, "/opt/py/bin/python3")
    assert env["DMCTL_FOO"] == "1" and env["CI"] == "true" and env["DM_DISABLE_UDEV"] == "1"
    assert env["PYTEST_ADDOPTS"] == "-x"
    for k in ("SSH_AUTH_SOCK", "DMCTL_VM_CACHE", "PYTHONHOME", "ANTHROPIC_X", "BAD",
              "DMCTL_MULTI"):
        assert k not in env, k
    assert env["PATH"].startswith("/opt/py/bin:") and "shims" not in env["PATH"]
    assert env["DMCTL_VM_GUEST"] == "1" and env["DMCTL_VM_PYTHON"] == "/opt/py/bin/python3"
    assert env["PY_COLORS"] == "0"
    assert "PY_COLORS" not in vmtier.guest_env({}, "/p/python3", tty=True, columns=100)


def test_cmd_script_quotes_and_runs(tmp_path):
    env = {"DMCTL_X": "it's \"quoted\" $HOME `x`", "A": "1"}
    argv = ["sh", "-c", 'printf "%s|%s|%s" "$DMCTL_X" "$A" "$(pwd)"; exit 7']
    script = vmtier.cmd_script(env, str(tmp_path), argv)
    p = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"]})
    assert p.returncode == 7
    assert p.stdout == "it's \"quoted\" $HOME `x`|1|%s" % tmp_path
    assert "cd %s" % shlex.quote(str(tmp_path)) in script


def test_pytest_args(tmp_path):
    (tmp_path / "tests" / "vm" / "guest").mkdir(parents=True)
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    assert vmtier.pytest_args([], str(tmp_path)) == ["tests/vm/guest", "-q"]
    assert vmtier.pytest_args(["-x", "-k", "era"], str(tmp_path)) == \
        ["-x", "-k", "era", "tests/vm/guest"]
    assert vmtier.pytest_args(["tests/unit", "-q"], str(tmp_path)) == ["tests/unit", "-q"]
    assert vmtier.pytest_args(["tests/vm/guest::test_x"], str(tmp_path)) == \
        ["tests/vm/guest::test_x"]


# --------------------------------------------------------------------------- console

CONSOLE_CLEAN = """\
dmctl-vm-init: running the command
[    3.552375] reboot: Power down
"""

CONSOLE_GPF = """\
[   41.100000] general protection fault, probably for non-canonical address 0xdead: 0000 [#1] PREEMPT SMP NOPTI
[   41.100100] RIP: 0010:__kmem_cache_alloc_node+0x8b/0x2c0
[   41.100200] Kernel panic - not syncing: Fatal exception
"""

CONSOLE_HUNG = "[  242.0] INFO: task dmsetup:1234 blocked for more than 120 seconds.\n"


def test_scan_console():
    assert vmtier.scan_console(CONSOLE_CLEAN) == ([], [])
    faults, warns = vmtier.scan_console(CONSOLE_GPF)
    assert len(faults) == 2 and "general protection fault" in faults[0]
    assert vmtier.scan_console("[ 1.0] BUG: unable to handle page fault\n")[0]
    assert vmtier.scan_console("[ 1.0] Oops: 0000 [#1] SMP\n")[0]
    faults, warns = vmtier.scan_console(CONSOLE_HUNG)
    assert faults == [] and len(warns) == 1


def test_should_retry():
    assert vmtier.should_retry(0, ["general protection fault"])
    assert vmtier.should_retry(125, [])
    assert vmtier.should_retry(139, [])
    assert not vmtier.should_retry(0, [])
    assert not vmtier.should_retry(1, [])          # failing tests are not retried


# --------------------------------------------------------------------------- qemu

def test_qemu_argv():
    argv = vmtier.qemu_argv("qemu", "/k/vmlinux", "/k/initrd", "/ctl", [("checkout", "/src")],
                            "/ctl/console.log", "/ctl/out.fifo", "/ctl/err.fifo")
    s = " ".join(argv)
    assert "-accel tcg,thread=single -cpu Nehalem" in s
    assert "-smp 1" in s and "-kernel /k/vmlinux" in s and "-initrd /k/initrd" in s
    assert "path=/,security_model=none,readonly=on" in s
    assert "fsdev=fsrw0,mount_tag=checkout" in s and "path=/src," in s
    assert argv.count("-serial") == 3
    assert "-accel kvm" in " ".join(vmtier.qemu_argv("q", "k", "i", "c", [], "x", "o", "e",
                                                    accel="kvm"))
    with pytest.raises(vmtier.VmError):
        vmtier.qemu_argv("q", "k", "i", "c", [("t", "/a,b")], "x", "o", "e")


def test_extract_vmlinux(tmp_path):
    import lzma
    payload = b"\x7fELF" + b"kernel" * 1000
    bz = tmp_path / "vmlinuz"
    bz.write_bytes(b"MZ-setup-code" + lzma.compress(payload, format=lzma.FORMAT_XZ))
    vmtier.extract_vmlinux(str(bz), str(tmp_path / "vmlinux"))
    assert (tmp_path / "vmlinux").read_bytes() == payload
    bz.write_bytes(b"no xz here")
    with pytest.raises(vmtier.VmError):
        vmtier.extract_vmlinux(str(bz), str(tmp_path / "vmlinux2"))


def test_ensure_initramfs_from_a_fake_kernel_tree(tmp_path, monkeypatch):
    k = vmtier.Kernel(str(tmp_path), "9.9.9-test")
    mods = [m.split(":")[0] for m in MODULES_DEP.splitlines()]
    extra = ["kernel/drivers/virtio/virtio_pci.ko", "kernel/net/9p/9pnet_virtio.ko",
             "kernel/fs/9p/9p.ko", "kernel/crypto/crc32c_generic.ko",
             "kernel/drivers/md/dm-zero.ko", "kernel/drivers/md/dm-log-writes.ko",
             "kernel/drivers/md/dm-log-userspace.ko"]
    for rel in mods + extra:
        p = os.path.join(k.moddir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(b"ko:" + rel.encode())
    with open(os.path.join(k.moddir, "modules.dep"), "w") as f:
        f.write(MODULES_DEP + "".join(e + ":\n" for e in extra))
    bb = tmp_path / "busybox"
    hdr = bytearray(64)
    hdr[:5] = b"\x7fELF\x02"
    bb.write_bytes(bytes(hdr))
    monkeypatch.setenv("DMCTL_VM_BUSYBOX", str(bb))
    path = vmtier.ensure_initramfs(k)
    files = _parse_cpio(gzip.decompress(open(path, "rb").read()))
    order = files["mods/order"][1].decode().split()
    assert order.index("dm-mod.ko") < order.index("dm-era.ko")
    assert order.index("crc32c_generic.ko") < order.index("libcrc32c.ko")
    assert files["mods/dm-era.ko"][1] == b"ko:kernel/drivers/md/dm-era.ko"
    assert vmtier.ensure_initramfs(k) == path       # cached
