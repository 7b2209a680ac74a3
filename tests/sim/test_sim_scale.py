"""The simulator at scale (issue 13): devices are found through the store's indexes,
a command loads only the devices it names, and background work is kept in an index of
the devices that have some, so an idle device costs a command nothing."""

import pytest

from dmctl.backend.sim import SimMapper
from dmctl.constants import DM_MAJOR
from dmctl.errors import DmError
from dmctl.records import DevId, TargetLine
from dmctl.sim import core, store

N = 3000


def _disk(tmp_path, n):
    p = tmp_path / "disk.img"
    with open(p, "wb") as f:
        f.truncate((n + 1) * 4096)
    return str(p)


@pytest.fixture
def many(tmp_path):
    """N linear devices made through the library in one batch."""
    disk = _disk(tmp_path, N)
    m = SimMapper(str(tmp_path / "sim"))
    with m.batch():
        for i in range(N):
            name = "dev%05d" % i
            m.create(name, uuid="UUID-%05d" % i)
            m.load(name, [TargetLine(0, 8, "linear", "%s %d" % (disk, i * 8))])
            m.resume(name)
    yield m, disk
    m.close()


class _Count:
    """Counts rows loaded (SimEnv._load_row) and tables unpickled (store.loads)."""

    def __init__(self, monkeypatch):
        self.rows = self.tables = 0
        load_row, loads = core.SimEnv._load_row, store.loads

        def counting_load_row(env, row):
            self.rows += 1
            return load_row(env, row)

        def counting_loads(blob):
            self.tables += 1
            return loads(blob)
        monkeypatch.setattr(core.SimEnv, "_load_row", counting_load_row)
        monkeypatch.setattr(store, "loads", counting_loads)

    def reset(self):
        self.rows = self.tables = 0


def test_lookups_by_name_uuid_minor_with_many_devices(many, monkeypatch):
    m, _ = many
    count = _Count(monkeypatch)
    for i in (0, 1, 1234, N - 1):
        by_name = m.info("dev%05d" % i)
        assert (by_name.name, by_name.minor, by_name.uuid) == ("dev%05d" % i, i, "UUID-%05d" % i)
        assert m.info(DevId(uuid="UUID-%05d" % i)).name == "dev%05d" % i
        assert m.info(DevId(major=DM_MAJOR, minor=i)).name == "dev%05d" % i
    # a dozen commands loaded a dozen rows and unpickled a dozen tables, not thousands
    assert count.rows <= 12 and count.tables <= 12
    with pytest.raises(DmError):
        m.info("nosuch")
    with pytest.raises(DmError):
        m.info(DevId(uuid="UUID-%05d" % N))
    info, lines = m.table("dev02999")
    assert info.minor == 2999 and lines[0].params.endswith(" %d" % (2999 * 8))


def test_one_command_does_not_load_every_device(many, monkeypatch):
    m, disk = many
    count = _Count(monkeypatch)
    m.info("dev00042")
    assert count.rows <= 2 and count.tables <= 2
    count.reset()
    # create/load/resume/remove of one more device: the lowest free minor by index
    assert m.create("extra").minor == N
    m.load("extra", [TargetLine(0, 8, "linear", "%s 0" % disk)])
    m.resume("extra")
    m.remove("dev00007")
    assert m.create("again").minor == 7
    assert count.rows < 20 and count.tables < 20, (count.rows, count.tables)
    count.reset()
    names = [e.name for e in m.list_devices()]     # every name, no table unpickled
    assert len(names) == N + 1 and count.tables == 0


def test_names_and_uuids_stay_unique_within_a_batch(many):
    m, _ = many
    with m.batch():
        m.rename("dev00001", "renamed")
        # the old name is free now, the new one is taken; the row still says dev00001
        assert m.info("renamed").minor == 1
        with pytest.raises(DmError):
            m.info("dev00001")
        assert m.create("dev00001").minor == N
        with pytest.raises(DmError):
            m.create("renamed")
        with pytest.raises(DmError):
            m.create("x", uuid="UUID-00002")
        m.remove("dev00002")
        assert m.create("x", uuid="UUID-00002").minor == 2
    assert m.info(DevId(uuid="UUID-00002")).name == "x"
    assert m.info("renamed").uuid == "UUID-00001"
    assert m.info("dev00001").minor == N


def test_background_work_is_found_for_busy_devices_only(many, monkeypatch, tmp_path):
    m, disk = many
    legs = []
    for i in range(2):
        p = tmp_path / ("leg%d" % i)
        with open(p, "wb") as f:
            f.truncate(1 << 20)
        legs.append(str(p))
    # a mirror resyncs in the background, WORK_PER_COMMAND regions per command
    m.create("mir")
    m.load("mir", [TargetLine(0, 2048, "mirror",
                              "core 1 16 2 %s 0 %s 0" % (legs[0], legs[1]))])
    m.resume("mir")
    visited = []
    run_work = core.SimEnv.run_work

    def spying_run_work(env, budget=None):
        r = run_work(env, budget)
        visited.append(sorted(md.name for md in env.flagged_devices()))
        return r
    monkeypatch.setattr(core.SimEnv, "run_work", spying_run_work)
    count = _Count(monkeypatch)
    m.info("dev00100")
    # only the busy mirror is in the work index: the 3000 idle devices are not loaded
    assert visited[-1] == ["mir"]
    assert count.rows <= 4 and count.tables <= 4
    for _ in range(50):
        _, lines = m.status("mir")
        done, total = lines[0].params.split()[3].split("/")
        if done == total:
            break
    assert done == total == "128"
    m.info("dev00100")
    m.info("dev00100")
    # in sync: idle, out of the index
    assert visited[-1] == []
    count.reset()
    m.info("dev00200")
    assert count.rows <= 2 and count.tables <= 2


def test_settle_with_many_idle_devices_touches_only_busy_ones(many, monkeypatch):
    from dmctl.sim import io as sio
    m, _ = many
    count = _Count(monkeypatch)
    assert sio.settle(m) == 0
    assert count.tables == 0
