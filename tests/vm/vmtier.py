"""dmctl's real-kernel VM test tier: the host side.

Boots Debian's stock kernel (taken from the Debian archive with ``apt-get download`` and
unpacked with ``dpkg -x`` into a cache directory -- never installed) under QEMU, with the
host's ``/`` visible read-only over 9p and the project checkout shared read-write at the
same path, loads the device-mapper modules, and runs one command (by default pytest on
``tests/vm/guest``) as root inside the guest, from the checkout.  The guest's stdout and
stderr are streamed to ours; the exit status is the guest command's.

Entry point: ``tests/vm/run`` (see its ``--help``).  Everything here is standard library
only, so that the host needs nothing but QEMU, busybox-static and kmod (``depmod``);
``scripts/vm-setup`` installs those and fetches the kernel.

Pure parts (module ordering, the initramfs /init and cpio writer, the guest command
script, console fault scanning, the qemu command line) are unit-tested on the host by
``tests/vm/test_vm_tier.py`` without booting anything.

Exit codes of :func:`main`: the guest command's own, 124 on timeout, 125 when the VM or
its preparation failed.
"""

import errno
import fcntl
import gzip
import hashlib
import io
import lzma
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

RC_TIMEOUT = 124
RC_VM_FAILED = 125

DEFAULT_KVER = "6.1.0-56-amd64"      # the kernel the golden outputs were captured on
DEFAULT_TIMEOUT = 2400                # seconds, for one boot + the whole guest command (a
                                      # loaded 2-core host took 1250 s for the whole tier)
DEFAULT_MEM = "1024M"

# Loaded (with their dependencies) by the initramfs, in this order.  crc32c_generic first:
# libcrc32c (dm-persistent-data, for dm-era) needs the "crc32c" crypto algorithm, which is
# only a soft dependency that modules.dep does not list, and the initramfs has no modprobe
# to load it on demand.  dm-zero is a module on Debian; linear/striped/error are built into
# dm-mod.
BOOT_MODULES = (
    "virtio_pci", "9pnet_virtio", "9p",
    "crc32c_generic", "crc32c-intel",
    "loop",
    "dm-mod", "dm-zero", "dm-era", "dm-log-writes",
    "dm-log", "dm-region-hash", "dm-mirror", "dm-log-userspace",
)
OPTIONAL_MODULES = frozenset({"crc32c-intel"})   # CPU-dependent: a failed insmod is fine

# What the guest kernel logs when it (or the emulator under it) goes wrong.  A boot that
# logged one of these is retried once: multi-vCPU TCG corrupted guest memory on these
# machines, and even 1 vCPU is not proven clean (see tests/vm/README.md).
FAULT_PATTERNS = (
    "general protection fault",
    "Oops:",
    "BUG:",
    "Kernel panic",
    "invalid opcode:",
)
# Logged but not worth a retry: real kernel behaviour (an era device's status blocks
# while it is suspended), reported as a warning.
WARN_PATTERNS = (
    "blocked for more than",
    "WARNING:",
)

# Host environment passed into the guest (exported variables matching these).
ENV_PASS_RE = re.compile(r"^(DMCTL_.*|DM_.*|CI|PYTEST_.*|PY_COLORS|PYTHON(?!HOME$).*|LANG|LC_.*|"
                         r"TZ|TERM|COLUMNS|NO_COLOR|FORCE_COLOR)$")
# ... except the harness's own knobs, which mean nothing inside.
ENV_DROP = frozenset({"DMCTL_VM_CACHE", "DMCTL_VM_TIMEOUT", "DMCTL_VM_KVER", "DMCTL_VM_MEM",
                      "DMCTL_VM_ACCEL", "DMCTL_VM_CONSOLE", "DMCTL_VM_RETRIES",
                      "DMCTL_VM_EXTRA_MODULES", "DMCTL_VM_VERBOSE", "DMCTL_VM_QEMU"})

CTL_TAG = "dmctlvmctl"
ROOT_TAG = "hostroot"
CHECKOUT_TAG = "checkout"
GUEST_CTL = "/run/dmctl-vm"          # where the control share appears inside the chroot


class VmError(Exception):
    """Preparing or booting the VM failed (exit status 125)."""


def log(msg):
    sys.stderr.write("dmctl-vm: %s\n" % msg)
    sys.stderr.flush()


# --------------------------------------------------------------------------- pure parts

def norm_modname(name):
    """Module names treat '-' and '_' alike (``dm-mod`` is ``dm_mod.ko``)."""
    base = os.path.basename(name)
    for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base.replace("-", "_")


def parse_modules_dep(text):
    """modules.dep text -> {relative .ko path: [relative dependency paths]}."""
    deps = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        mod, _, rest = line.partition(":")
        deps[mod.strip()] = rest.split()
    return deps


def module_load_order(names, deps):
    """Relative paths of ``names`` and everything they depend on, dependencies first,
    each once.  Raises KeyError for a name modules.dep does not know."""
    by_name = {norm_modname(p): p for p in deps}
    order, seen = [], set()

    def visit(path, stack=()):
        if path in seen:
            return
        if path in stack:          # a cycle cannot happen in modules.dep; do not loop
            return
        for d in deps.get(path, ()):
            visit(d, stack + (path,))
        seen.add(path)
        order.append(path)

    for n in names:
        key = norm_modname(n)
        if key not in by_name:
            raise KeyError(n)
        visit(by_name[key])
    return order


def init_script(optional=()):
    """The initramfs /init: a busybox sh script.  It loads /mods/* in the order of
    /mods/order, mounts the host root (9p, read-only) on /newroot, the usual pseudo file
    systems and fresh tmpfs dirs, the control share and the read-write shares listed in
    the control share's ``mounts`` file, then runs the control share's ``cmd.sh`` in a
    chroot with stdout on ttyS1 and stderr on ttyS2, writes its exit status to the
    control share and powers off."""
    opt = " ".join(sorted(optional))
    return r"""#!/bin/busybox sh
# generated by tests/vm/vmtier.py -- initramfs /init of dmctl's VM test tier
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/null >/dev/ttyS0 2>&1
say() { echo "dmctl-vm-init: $*"; }
fail() { say "FAILED: $*"; echo 125 > /ctl/rc 2>/dev/null; sync; poweroff -f; sleep 10; }
optional=" __OPTIONAL__ "
while read -r m; do
    [ -n "$m" ] || continue
    if ! insmod "/mods/$m"; then
        case "$optional" in *" ${m%.ko} "*) ;; *) say "insmod $m failed" ;; esac
    fi
done < /mods/order
o9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "$o9,cache=none" __CTL__ /ctl || fail "cannot mount the control share"
mount -t 9p -o "$o9,cache=loose,ro" __ROOT__ /newroot || fail "cannot mount the host root"
R=/newroot
mount -t proc proc $R/proc || fail "proc"
mount -t sysfs sys $R/sys || fail "sysfs"
mount -t devtmpfs dev $R/dev || fail "devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
for d in /tmp /run /var/tmp /var/log /var/cache/ldconfig; do
    [ -d "$R$d" ] && [ ! -L "$R$d" ] && mount -t tmpfs -o mode=1777 tmpfs "$R$d"
done
mkdir -p $R/run/lock $R__GUEST_CTL__
mount --bind /ctl $R__GUEST_CTL__ || fail "cannot bind the control share"
while read -r tag path; do
    [ -n "$tag" ] || continue
    # a checkout under a directory the guest replaced with tmpfs (/tmp, /var/tmp...)
    # needs its mount point made there first
    [ -d "$R$path" ] || mkdir -p "$R$path"
    mount -t 9p -o "$o9,cache=mmap" "$tag" "$R$path" || fail "cannot mount $tag at $path"
done < /ctl/mounts
for t in /dev/ttyS1 /dev/ttyS2; do stty -F $t raw -echo || fail "stty $t"; done
say "running the command"
chroot $R /bin/sh __GUEST_CTL__/cmd.sh </dev/null >/dev/ttyS1 2>/dev/ttyS2
echo $? > /ctl/rc
sync
poweroff -f
sleep 10
""".replace("__OPTIONAL__", opt).replace("__CTL__", CTL_TAG).replace(
        "__ROOT__", ROOT_TAG).replace("__GUEST_CTL__", GUEST_CTL)


def _cpio_entry(name, mode, data=b"", ino=1, rdev=(0, 0), mtime=0):
    name_b = name.encode() + b"\0"
    hdr = "070701" + "".join("%08X" % v for v in (
        ino, mode, 0, 0, 1, mtime, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
    out = hdr.encode() + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def cpio_newc(entries):
    """A newc ("070701") cpio archive from ``(name, kind, payload)`` entries, where kind
    is ``"dir"``, ``"file"`` (payload: bytes, mode 0755 if the name is ``init`` or under
    ``bin/``), or ``"chr"`` (payload: (major, minor)).  Written here rather than by
    cpio(1) so that device nodes need no root and the bytes are reproducible."""
    out = io.BytesIO()
    for ino, (name, kind, payload) in enumerate(entries, start=1):
        if kind == "dir":
            out.write(_cpio_entry(name, 0o040755, ino=ino))
        elif kind == "file":
            perm = 0o755 if name == "init" or name.startswith("bin/") else 0o644
            out.write(_cpio_entry(name, 0o100000 | perm, payload, ino=ino))
        elif kind == "chr":
            out.write(_cpio_entry(name, 0o020600, ino=ino, rdev=payload))
        else:
            raise ValueError(kind)
    out.write(_cpio_entry("TRAILER!!!", 0, ino=0))
    return out.getvalue()


def initramfs_entries(busybox, modules, init_text):
    """``busybox``: bytes of a static busybox; ``modules``: [(file name, bytes)] in load
    order; -> cpio entries."""
    ents = [(d, "dir", None) for d in ("bin", "dev", "proc", "sys", "newroot", "ctl", "mods")]
    ents.append(("dev/console", "chr", (5, 1)))
    ents.append(("bin/busybox", "file", busybox))
    order = []
    for fname, data in modules:
        ents.append(("mods/" + fname, "file", data))
        order.append(fname)
    ents.append(("mods/order", "file", ("\n".join(order) + "\n").encode()))
    ents.append(("init", "file", init_text.encode()))
    return ents


def is_static_elf(data):
    """True when the ELF image (bytes, at least its program headers) has no PT_INTERP."""
    if data[:4] != b"\x7fELF" or data[4] != 2:      # 64-bit only (x86_64 hosts)
        return False
    e_phoff = int.from_bytes(data[0x20:0x28], "little")
    e_phentsize = int.from_bytes(data[0x36:0x38], "little")
    e_phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if int.from_bytes(data[off:off + 4], "little") == 3:     # PT_INTERP
            return False
    return True


def guest_env(environ, python, tty=False, columns=None):
    """The environment of the guest command: the passed-through host variables plus
    the tier's own."""
    env = {k: v for k, v in environ.items()
           if ENV_PASS_RE.match(k) and k not in ENV_DROP and "\n" not in v}
    pybin = os.path.dirname(python)
    env.update({
        "PATH": pybin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "TMPDIR": "/tmp",
        "DMCTL_VM_GUEST": "1",
        "DMCTL_VM_PYTHON": python,
    })
    env.setdefault("LANG", "C.UTF-8")
    # the guest's stdout is a serial tty: let colours and width follow ours instead
    if not tty:
        env.setdefault("PY_COLORS", "0")
    elif columns:
        env.setdefault("COLUMNS", str(columns))
    return env


def cmd_script(env, cwd, argv):
    """The POSIX sh script the guest runs (from the control share) in its chroot."""
    lines = ["# generated by tests/vm/vmtier.py", "set -u"]
    for k in sorted(env):
        lines.append("export %s=%s" % (k, shlex.quote(env[k])))
    lines.append("cd %s || exit 125" % shlex.quote(cwd))
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines) + "\n"


DEFAULT_PYTEST_ARGS = ("tests/vm/guest", "-q")


def pytest_args(args, repo):
    """pytest's arguments in the guest: ``args``, plus tests/vm/guest when none of them
    names a test path (so that ``tests/vm/run -x -k era`` still runs the guest tests,
    not the whole project).  No arguments at all: ``tests/vm/guest -q``."""
    if not args:
        return list(DEFAULT_PYTEST_ARGS)
    for a in args:
        if not a.startswith("-") and os.path.exists(os.path.join(repo, a.split("::")[0])):
            return list(args)
    return list(args) + [DEFAULT_PYTEST_ARGS[0]]


def scan_console(text):
    """-> (fault lines, warning lines) found in the guest's kernel console log."""
    faults, warns = [], []
    for line in text.splitlines():
        if any(p in line for p in FAULT_PATTERNS):
            faults.append(line.strip())
        elif any(p in line for p in WARN_PATTERNS):
            warns.append(line.strip())
    return faults, warns


def should_retry(rc, faults):
    """Retry a boot (once) when the guest kernel faulted or the VM died (125) or the
    command died of SIGSEGV (139, seen once inside an ioctl under emulation)."""
    return bool(faults) or rc in (RC_VM_FAILED, 139)


def qemu_argv(qemu, vmlinux, initrd, ctl, shares, console, out_fifo, err_fifo,
              mem=DEFAULT_MEM, accel="tcg"):
    """The QEMU command line.  ``shares``: [(tag, host path)] read-write 9p shares."""
    if accel == "kvm":
        accel_opts = ["-accel", "kvm", "-cpu", "host"]
    else:
        # 1 vCPU, one TCG thread, an old CPU model without XSAVE/AVX/PKU: the only
        # combination that ran long captures cleanly on the development machines.
        accel_opts = ["-accel", "tcg,thread=single", "-cpu", "Nehalem"]
    argv = [qemu, "-name", "dmctl-vm", "-machine", "pc", *accel_opts, "-m", mem, "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
            "-no-reboot", "-net", "none",
            # the uncompressed ELF vmlinux boots through its PVH note: no SeaBIOS, no
            # in-guest decompression (about 4 s faster under TCG)
            "-kernel", vmlinux, "-initrd", initrd,
            "-append", "console=ttyS0 quiet loglevel=4 panic=-1 rdinit=/init "
                       "mitigations=off tsc=reliable",
            "-chardev", "file,id=con,path=" + console, "-serial", "chardev:con",
            "-chardev", "file,id=out,path=" + out_fifo, "-serial", "chardev:out",
            "-chardev", "file,id=err,path=" + err_fifo, "-serial", "chardev:err",
            "-fsdev", "local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=fsroot,mount_tag=" + ROOT_TAG,
            "-fsdev", "local,id=fsctl,path=%s,security_model=none" % ctl,
            "-device", "virtio-9p-pci,fsdev=fsctl,mount_tag=" + CTL_TAG]
    for i, (tag, path) in enumerate(shares):
        if "," in path:
            raise VmError("cannot share a path with a comma over 9p: %s" % path)
        argv += ["-fsdev", "local,id=fsrw%d,path=%s,security_model=none,multidevs=remap"
                 % (i, path),
                 "-device", "virtio-9p-pci,fsdev=fsrw%d,mount_tag=%s" % (i, tag)]
    return argv


# --------------------------------------------------------------------------- host parts

def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def cache_dir(environ=os.environ):
    return os.path.realpath(os.path.expanduser(
        environ.get("DMCTL_VM_CACHE") or "~/.cache/dmctl-vm"))


def _ready_kernels(cache):
    try:
        names = os.listdir(cache)
    except OSError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(cache, n, ".ready")))


def pick_kver(cache, environ=os.environ):
    """DMCTL_VM_KVER, else 6.1.0-56-amd64 if cached or installable, else any cached
    kernel, else the one Debian's linux-image-amd64 currently depends on."""
    if environ.get("DMCTL_VM_KVER"):
        return environ["DMCTL_VM_KVER"]
    ready = _ready_kernels(cache)
    if DEFAULT_KVER in ready:
        return DEFAULT_KVER
    if _apt_has("linux-image-" + DEFAULT_KVER):
        return DEFAULT_KVER
    if ready:
        return ready[-1]
    try:
        out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], text=True,
                             capture_output=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    m = re.search(r"Depends: linux-image-(\S+)", out)
    if not m:
        raise VmError("no kernel cached and apt knows no linux-image-amd64 "
                      "(run scripts/vm-setup, or apt-get update)")
    return m.group(1)


def _apt_has(pkg):
    try:
        r = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg],
                           capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and b"Package:" in r.stdout


class Kernel:
    def __init__(self, cache, kver):
        self.kver = kver
        self.dir = os.path.join(cache, kver)
        self.root = os.path.join(self.dir, "root")
        self.moddir = os.path.join(self.root, "lib", "modules", kver)
        self.vmlinuz = os.path.join(self.root, "boot", "vmlinuz-" + kver)
        self.vmlinux = os.path.join(self.dir, "vmlinux")


def extract_vmlinux(vmlinuz, dest):
    """Decompress the XZ payload of a bzImage into the ELF vmlinux (booted via PVH)."""
    with open(vmlinuz, "rb") as f:
        data = f.read()
    i = data.find(b"\xfd7zXZ\x00")
    if i < 0:
        raise VmError("%s: no XZ payload found" % vmlinuz)
    out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[i:])
    if out[:4] != b"\x7fELF":
        raise VmError("%s: payload is not an ELF image" % vmlinuz)
    tmp = dest + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, dest)


def ensure_kernel(cache, kver):
    """Fetch linux-image-KVER into CACHE/KVER (apt-get download + dpkg -x + depmod -b)
    unless it is there already.  Safe against concurrent runs (flock)."""
    k = Kernel(cache, kver)
    if os.path.exists(os.path.join(k.dir, ".ready")):
        return k
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(k.dir, ".ready")):
            return k
        for tool in ("apt-get", "dpkg", "depmod"):
            if not shutil.which(tool):
                raise VmError("missing %s on the host (run scripts/vm-setup)" % tool)
        t0 = time.time()
        log("fetching linux-image-%s into %s (once)" % (kver, k.dir))
        tmp = tempfile.mkdtemp(prefix="dl.", dir=cache)
        try:
            r = subprocess.run(["apt-get", "download", "-q", "linux-image-" + kver], cwd=tmp,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
            if r.returncode != 0 or not debs:
                raise VmError("apt-get download linux-image-%s failed (apt-get update "
                              "first?): %s" % (kver, r.stderr.strip()[-500:]))
            shutil.rmtree(k.dir, ignore_errors=True)
            os.makedirs(k.dir)
            subprocess.run(["dpkg", "-x", os.path.join(tmp, debs[0]), k.root], check=True)
        except subprocess.CalledProcessError as e:
            raise VmError("unpacking the kernel failed: %s" % e)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if subprocess.run(["depmod", "-b", k.root, kver]).returncode != 0:
            raise VmError("depmod -b %s %s failed" % (k.root, kver))
        if not os.path.exists(k.vmlinuz):
            raise VmError("no kernel image at %s" % k.vmlinuz)
        extract_vmlinux(k.vmlinuz, k.vmlinux)
        open(os.path.join(k.dir, ".ready"), "w").close()
        log("kernel ready in %.1f s" % (time.time() - t0))
    return k


def find_busybox():
    for p in (os.environ.get("DMCTL_VM_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox",
              shutil.which("busybox")):
        if p and os.path.isfile(p):
            with open(p, "rb") as f:
                head = f.read(65536)
            if is_static_elf(head):
                return p
    raise VmError("no static busybox found (apt-get install busybox-static)")


def ensure_initramfs(k, extra_modules=()):
    """Build (or reuse) the initramfs for kernel ``k``; returns its path."""
    with open(os.path.join(k.moddir, "modules.dep")) as f:
        deps = parse_modules_dep(f.read())
    names = list(BOOT_MODULES) + [m for m in extra_modules if m]
    wanted = []
    for n in names:
        try:
            wanted += module_load_order([n], deps)
        except KeyError:
            if n not in OPTIONAL_MODULES:
                raise VmError("module %s not found in %s" % (n, k.moddir))
    order = list(dict.fromkeys(wanted))
    optional = {os.path.basename(p)[:-3] for p in order
                if norm_modname(p) in {norm_modname(o) for o in OPTIONAL_MODULES}}
    text = init_script(optional)
    busybox = find_busybox()
    st = os.stat(busybox)
    key = hashlib.sha256(repr((order, text, busybox, st.st_size, st.st_mtime)).encode())
    path = os.path.join(k.dir, "initrd-%s.cpio.gz" % key.hexdigest()[:12])
    if os.path.exists(path):
        return path
    mods = []
    for rel in order:
        with open(os.path.join(k.moddir, rel), "rb") as f:
            data = f.read()
        fname = os.path.basename(rel)
        if fname.endswith(".xz"):
            data, fname = lzma.decompress(data), fname[:-3]
        mods.append((fname, data))
    with open(busybox, "rb") as f:
        bb = f.read()
    blob = gzip.compress(cpio_newc(initramfs_entries(bb, mods, text)), compresslevel=1,
                         mtime=0)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    return path


def find_python(environ=os.environ):
    """The interpreter the guest runs pytest (and dmctl) with: DMCTL_VM_PYTHON, else
    $PYTHON when it is an absolute path (scripts/test passes its venv's python), else the
    real interpreter behind ``python3`` -- never a pyenv shim, which costs ~7 s a call
    under TCG.  It must be able to import pytest."""
    if environ.get("DMCTL_VM_PYTHON"):
        cands = [environ["DMCTL_VM_PYTHON"]]
    else:
        cands = [environ.get("PYTHON") if os.path.isabs(environ.get("PYTHON") or "") else None,
                 sys.executable]
        try:
            out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
            cands.append(out)
        except (OSError, subprocess.TimeoutExpired):
            pass
        cands.append("/usr/bin/python3")
    for c in cands:
        if not c or "/shims/" in c or not os.path.isfile(c):
            continue
        r = subprocess.run([c, "-c", "import pytest"], capture_output=True)
        if r.returncode == 0:
            return os.path.abspath(c)
    raise VmError("no python3 with pytest found (set DMCTL_VM_PYTHON)")


def pick_accel(environ=os.environ):
    a = environ.get("DMCTL_VM_ACCEL", "auto")
    if a in ("tcg", "kvm"):
        return a
    # /dev/kvm on the development machines is kvm_pvm, which hangs stock kernels: use
    # KVM only when a real kvm_intel/kvm_amd is loaded.
    if os.access("/dev/kvm", os.W_OK) and (os.path.isdir("/sys/module/kvm_intel")
                                          or os.path.isdir("/sys/module/kvm_amd")):
        return "kvm"
    return "tcg"


class _Relay:
    """Copies a FIFO that QEMU writes (a guest serial port) to one of our fds."""

    def __init__(self, path, dest_fd):
        # O_RDWR: never blocks on open, and QEMU's open for writing never blocks either
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.dest = dest_fd

    def pump(self):
        moved = 0
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return moved
            if not chunk:
                return moved
            moved += len(chunk)
            view = memoryview(chunk)
            while view:
                try:
                    n = os.write(self.dest, view)
                except BlockingIOError:
                    select.select([], [self.dest], [], 1)
                    continue
                except OSError as e:
                    if e.errno == errno.EPIPE:
                        return moved
                    raise
                view = view[n:]

    def close(self):
        os.close(self.fd)


class _Terminated(Exception):
    def __init__(self, signum):
        self.signum = signum


def boot_once(qemu, k, initrd, argv, cwd, env, timeout, accel, mem, console_copy=None):
    """One boot: runs ``argv`` in the guest.  -> (rc, console text)."""
    ctl = tempfile.mkdtemp(prefix="dmctl-vm.")
    proc = None
    relays = []
    try:
        with open(os.path.join(ctl, "cmd.sh"), "w") as f:
            f.write(cmd_script(env, cwd, argv))
        shares = [(CHECKOUT_TAG, cwd)]
        with open(os.path.join(ctl, "mounts"), "w") as f:
            for tag, path in shares:
                f.write("%s %s\n" % (tag, path))
        out_fifo, err_fifo = os.path.join(ctl, "out.fifo"), os.path.join(ctl, "err.fifo")
        os.mkfifo(out_fifo)
        os.mkfifo(err_fifo)
        console = os.path.join(ctl, "console.log")
        sys.stdout.flush()
        sys.stderr.flush()
        relays = [_Relay(out_fifo, sys.stdout.fileno()), _Relay(err_fifo, sys.stderr.fileno())]
        cmd = qemu_argv(qemu, k.vmlinux, initrd, ctl, shares, console, out_fifo, err_fifo,
                        mem=mem, accel=accel)
        if os.environ.get("DMCTL_VM_VERBOSE"):
            log("qemu: " + " ".join(shlex.quote(a) for a in cmd))
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(ctl, "qemu.stderr"), "w"),
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        timed_out = False
        fds = [r.fd for r in relays]
        while proc.poll() is None:
            if time.monotonic() >= deadline:
                timed_out = True
                break
            ready, _, _ = select.select(fds, [], [], 0.25)
            for r in relays:
                if r.fd in ready:
                    r.pump()
        if timed_out:
            _kill(proc)
        for r in relays:
            r.pump()
        text = _read(console)
        if console_copy:
            shutil.copyfile(console, console_copy)
        if timed_out:
            log("timeout after %d s: killed the VM (DMCTL_VM_TIMEOUT); console tail:" % timeout)
            _tail(text)
            return RC_TIMEOUT, text
        rc_text = _read(os.path.join(ctl, "rc")).strip()
        if rc_text.isdigit():
            return int(rc_text), text
        log("the VM exited (qemu status %s) without a result; qemu said: %s"
            % (proc.returncode, _read(os.path.join(ctl, "qemu.stderr")).strip()[-800:]))
        _tail(text)
        return RC_VM_FAILED, text
    finally:
        if proc is not None and proc.poll() is None:
            _kill(proc)
        for r in relays:
            r.close()
        shutil.rmtree(ctl, ignore_errors=True)


def _kill(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _tail(text, n=40):
    for line in text.splitlines()[-n:]:
        sys.stderr.write("  | %s\n" % line)
    sys.stderr.flush()


USAGE = """usage: tests/vm/run [PYTEST ARGS...]
       tests/vm/run --cmd 'SHELL COMMAND'
       tests/vm/run --prepare

Boots Debian's Linux kernel (6.1) under QEMU once and runs, inside it as root from the
checkout (shared read-write; the host's / is read-only), `python3 -m pytest ARGS`
(default: tests/vm/guest -q; tests/vm/guest is added when ARGS name no test path), or
with --cmd a shell command.  --prepare only fetches the
kernel and builds the initramfs.  Paths in ARGS are relative to the checkout.

Exit status: the guest command's; 124 timeout; 125 the VM failed (after one retry).
Environment: DMCTL_VM_CACHE (default ~/.cache/dmctl-vm), DMCTL_VM_TIMEOUT (seconds,
default 2400), DMCTL_VM_KVER, DMCTL_VM_MEM (1024M), DMCTL_VM_PYTHON, DMCTL_VM_ACCEL
(auto|tcg|kvm), DMCTL_VM_RETRIES (1), DMCTL_VM_CONSOLE (copy the kernel console log
there), DMCTL_VM_EXTRA_MODULES.  Exported DMCTL_*, DM_*, CI, PYTEST_* and PYTHON*
variables reach the guest.
"""


def main(args):
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    prepare_only = args[:1] == ["--prepare"]
    t0 = time.monotonic()

    def on_signal(signum, frame):
        raise _Terminated(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        qemu = shutil.which(os.environ.get("DMCTL_VM_QEMU") or "qemu-system-x86_64")
        if not qemu:
            raise VmError("%s not found (run scripts/vm-setup)"
                          % (os.environ.get("DMCTL_VM_QEMU") or "qemu-system-x86_64"))
        cache = cache_dir()
        k = ensure_kernel(cache, pick_kver(cache))
        initrd = ensure_initramfs(k, os.environ.get("DMCTL_VM_EXTRA_MODULES", "").split())
        python = find_python()
        if prepare_only:
            log("prepared %s (kernel %s) in %.1f s" % (k.dir, k.kver, time.monotonic() - t0))
            return 0
        if args[:1] == ["--cmd"]:
            if len(args) != 2:
                raise VmError("--cmd takes one shell command line")
            argv = ["/bin/bash", "-c", args[1]]
        else:
            argv = [python, "-m", "pytest"] + pytest_args(args, repo_root())
        cwd = repo_root()
        tty = os.isatty(sys.stdout.fileno())
        env = guest_env(os.environ, python, tty=tty,
                        columns=shutil.get_terminal_size((0, 0)).columns if tty else None)
        timeout = float(os.environ.get("DMCTL_VM_TIMEOUT") or DEFAULT_TIMEOUT)
        retries = int(os.environ.get("DMCTL_VM_RETRIES") or 1)
        accel = pick_accel()
        mem = os.environ.get("DMCTL_VM_MEM") or DEFAULT_MEM
        attempt = 0
        while True:
            attempt += 1
            rc, console = boot_once(qemu, k, initrd, argv, cwd, env, timeout, accel, mem,
                                    os.environ.get("DMCTL_VM_CONSOLE"))
            faults, warns = scan_console(console)
            for w in warns[:10]:
                log("guest kernel warning: " + w)
            for f in faults[:20]:
                log("guest kernel FAULT: " + f)
            if rc != RC_TIMEOUT and attempt <= retries and should_retry(rc, faults):
                log("boot %d ended with status %d%s: retrying once in a fresh VM"
                    % (attempt, rc, " after a guest kernel fault" if faults else ""))
                continue
            break
        if faults and rc == 0:
            log("the guest kernel faulted (see above) although the command passed: failing")
            rc = RC_VM_FAILED
        log("VM tier finished with status %d in %.1f s (%d boot%s)"
            % (rc, time.monotonic() - t0, attempt, "s" if attempt > 1 else ""))
        return rc
    except VmError as e:
        log("ERROR: %s" % e)
        return RC_VM_FAILED
    except OSError as e:
        log("ERROR: %s" % e)
        return RC_VM_FAILED
    except _Terminated as e:
        log("terminated by signal %d" % e.signum)
        return 128 + e.signum
