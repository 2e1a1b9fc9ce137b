"""skssl._threads: a CPU fit lowers its threads to the cores other processes leave free."""

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from skssl import RotNetFeaturizer, _threads
from skssl._threads import ThreadBudget, cgroup_cpu_limit, read_cpu_times

from _testing import TINY

CPU = torch.device("cpu")


@pytest.fixture
def two_threads(monkeypatch):
    """Adaptation on, torch at 2 threads on 2 usable CPUs; torch's threads restored after."""
    monkeypatch.setattr(_threads, "ADAPT", True)
    monkeypatch.setattr(_threads, "usable_cpus", lambda: frozenset({0, 1}))
    monkeypatch.setattr(_threads, "cgroup_cpu_limit", lambda: None)
    monkeypatch.setattr(_threads, "_last_choice", None)
    monkeypatch.setattr(_threads, "_running", {"count": 0, "threads": None})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class FakeMachine:
    """CPU times in which other processes keep ``others`` cores busy, 1 s per reading."""

    def __init__(self, monkeypatch, others):
        self.others, self.now, self.busy, self.own = others, 0.0, 0, 0
        monkeypatch.setattr(_threads, "read_cpu_times", self.read)
        monkeypatch.setattr(_threads.time, "monotonic", lambda: self.now)

    def read(self, cpus):
        return self.busy, self.own

    def advance(self, seconds=1.0):
        self.now += seconds
        own = round(min(torch.get_num_threads(), 2 - self.others) * seconds * _threads.CLOCK_TICKS)
        self.own += own
        self.busy += own + round(self.others * seconds * _threads.CLOCK_TICKS)


def test_proc_files_are_read_for_the_usable_cpus_only(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  30 0 10 100 5 0 0 0 0 0\n"
        "cpu0 10 0 5 50 2 0 0 1 0 0\n"  # busy: 10 + 5 + 1 (steal) = 16
        "cpu1 20 0 5 50 3 0 0 0 0 0\n"  # busy 25, not usable
        "intr 1 2 3\n"
    )
    own = tmp_path / "self_stat"
    own.write_text("42 (python (x) y) R " + " ".join(["0"] * 10) + " 7 3 0 0 0")  # utime 7, stime 3
    assert read_cpu_times(frozenset({0}), stat=stat, own=own) == (16, 10)
    assert read_cpu_times(frozenset({0, 1}), stat=stat, own=own) == (41, 10)
    assert read_cpu_times(frozenset({0}), stat=tmp_path / "missing", own=own) is None


def test_a_container_quota_is_read_from_cgroup_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_limit(tmp_path) == 1.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_cpu_limit(tmp_path) is None


@pytest.mark.parametrize(("others", "threads"), [(0.0, 2), (0.2, 2), (0.6, 1), (1.0, 1), (1.9, 1)])
def test_threads_for_the_other_processes_load(two_threads, others, threads):
    assert ThreadBudget(CPU).threads_for(others) == threads


def test_threads_drop_beside_a_busy_process_and_come_back_after(two_threads, monkeypatch):
    machine = FakeMachine(monkeypatch, others=1.0)
    budget = ThreadBudget(CPU, interval=1.0).start()
    machine.advance(0.2)
    budget.check()  # too soon to read: the first reading comes after a quarter interval
    assert torch.get_num_threads() == 2
    machine.advance(0.1)
    budget.check()
    assert torch.get_num_threads() == 1
    machine.others = 0.0
    machine.advance(0.5)
    budget.check()  # the next reading comes a whole interval later
    assert torch.get_num_threads() == 1
    machine.others = 0.0
    machine.advance()
    budget.check()
    assert torch.get_num_threads() == 2
    machine.others = 1.0
    machine.advance()
    budget.check()
    budget.close()
    assert torch.get_num_threads() == 2  # the fit's threads, given back


def test_a_fit_beside_a_busy_process_trains_on_fewer_threads_and_gives_them_back(two_threads, monkeypatch, digits):
    machine = FakeMachine(monkeypatch, others=1.0)
    seen = []
    check = ThreadBudget.check

    def check_and_record(budget):
        machine.advance()
        check(budget)
        seen.append(torch.get_num_threads())

    monkeypatch.setattr(ThreadBudget, "check", check_and_record)
    X, _ = digits
    RotNetFeaturizer(**TINY).fit(X[:200])
    assert set(seen) == {1}  # from the first reading, half a second in
    assert torch.get_num_threads() == 2
    seen.clear()
    machine.others = 0.0
    RotNetFeaturizer(**TINY).fit(X[:200])  # the other process ended: two threads again
    assert set(seen) == {2}


def test_a_fit_soon_after_another_starts_with_its_threads(two_threads, monkeypatch, digits):
    machine = FakeMachine(monkeypatch, others=1.0)
    ThreadBudget(CPU).start().close()
    budget = ThreadBudget(CPU).start()
    machine.advance()
    budget.check()
    budget.close()
    assert _threads._last_choice == (machine.now, 1)
    machine.advance(1.0)
    started = ThreadBudget(CPU).start()
    assert torch.get_num_threads() == 1
    started.close()
    machine.advance(_threads.REMEMBER)
    ThreadBudget(CPU).start().close()
    assert torch.get_num_threads() == 2


def test_fits_in_threads_give_back_the_process_s_threads_whatever_order_they_end_in(two_threads, monkeypatch):
    machine = FakeMachine(monkeypatch, others=1.0)
    first = ThreadBudget(CPU).start()
    machine.advance()
    first.check()
    assert torch.get_num_threads() == 1
    second = ThreadBudget(CPU).start()  # starts while the first holds 1 thread
    assert second.ceiling == 2
    first.close()
    assert torch.get_num_threads() == 1  # the second still runs
    second.close()
    second.close()  # twice is harmless
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("limit", ["n_threads", "threadpoolctl", "gpu"])
def test_threads_stay_as_asked(two_threads, monkeypatch, limit):
    FakeMachine(monkeypatch, others=1.0)
    if limit == "n_threads":
        budget = ThreadBudget(CPU, n_threads=2)
    elif limit == "gpu":
        budget = ThreadBudget(torch.device("cuda"))
    else:
        with threadpool_limits(1):
            budget = ThreadBudget(CPU)
            assert budget.ceiling == 1
    assert not budget.enabled


def test_an_integer_n_threads_trains_on_that_many_and_restores_the_rest(two_threads, monkeypatch, digits):
    seen = []
    check = ThreadBudget.check
    monkeypatch.setattr(ThreadBudget, "check", lambda budget: (check(budget), seen.append(torch.get_num_threads())))
    X, _ = digits
    first = RotNetFeaturizer(**TINY, n_threads=1).fit(X[:200]).transform(X[:50])
    assert set(seen) == {1} and torch.get_num_threads() == 2
    torch.set_num_threads(1)
    np.testing.assert_array_equal(RotNetFeaturizer(**TINY, n_threads=1).fit(X[:200]).transform(X[:50]), first)
