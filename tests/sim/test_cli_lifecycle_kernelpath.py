"""The lifecycle and create commands through the kernel backend's ioctl path
(KernelMapper over SimControl, a fake /dev/mapper/control): the requests libdm would
send (persistent devices by major:minor, renames, --retry, remove_all) work without
root.  Device nodes go to a temporary DM_DEV_DIR."""

import io

import pytest


@pytest.fixture
def run(sim_dir, tmp_path, monkeypatch):
    from dmctl.backend.kernel import KernelMapper
    from dmctl.backend.sim import SimMapper
    from dmctl.ioctl.simcontrol import SimControl
    from dmctl.cli import main
    from dmctl.cli.ctx import Ctx
    dev = tmp_path / "dev"
    (dev / "mapper").mkdir(parents=True)
    monkeypatch.setenv("DM_DEV_DIR", str(dev))
    sim = SimMapper(str(sim_dir))

    def go(*argv):
        ctx = Ctx("dmsetup")
        ctx._mapper = KernelMapper(control=SimControl(sim))
        ctx._stdout = io.StringIO()
        ctx._stderr = io.StringIO()
        rc = main._main(ctx, ["--noudevsync"] + list(argv))
        ctx.finish()
        return rc, ctx._stdout.getvalue(), ctx._stderr.getvalue()
    go.sim = sim
    yield go
    sim.close()


def test_create_lifecycle_through_ioctls(run):
    assert run("create", "a", "--table", "0 8 zero") == (0, "", "")
    rc, out, err = run("create", "p", "-j", "254", "-m", "6", "--table", "0 8 zero", "-v")
    assert rc == 0 and "Major, minor:      254, 6\n" in out
    assert run("create", "--concise", "c,,9,ro,0 8 zero") == (0, "", "")
    info = run.sim.info("c")
    assert (info.minor, info.read_only) == (9, True)
    assert run("suspend", "a") == (0, "", "")
    assert run("load", "a", "--table", "0 16 error") == (0, "", "")
    assert run("resume", "a") == (0, "", "")
    assert run.sim.table("a")[1][0].target_type == "error"
    assert run("rename", "p", "p2") == (0, "", "")
    assert run("wait", "p2", "0") == (0, "", "")
    assert run("remove", "--retry", "a") == (0, "", "")
    assert run("remove_all") == (0, "", "")
    assert run.sim.list_devices() == []


def test_failed_create_through_ioctls(run):
    rc, out, err = run("create", "b", "--table", "0 8 nosuch")
    assert rc == 1
    assert err.startswith("device-mapper: reload ioctl on b (254:0) failed: Invalid argument\n")
    assert err.endswith("Command failed.\n")
    assert run.sim.list_devices() == []
    rc, out, err = run("message", "nosuch", "0", "x")
    assert (rc, err) == (1, "device-mapper: message ioctl on nosuch  failed: No such device "
                            "or address\nCommand failed.\n")
