"""Threads for CPU training: as many as the cores that other processes leave free.

PyTorch's OpenMP threads spin while they wait for each other. On a quiet machine that
makes two threads on two cores fast; beside another busy process one of them is
descheduled, the other spins for it, and a step can take ten times as long. The
OpenMP wait policy is read when torch loads, too early for a library to set it, so
:class:`ThreadBudget` changes the lever it still has: the number of threads.

With ``n_threads="auto"`` (the estimators' default), while a CPU fit trains, it reads
every ``interval`` seconds how much CPU time the other processes took on the cores
this process may use (``/proc/stat`` less ``/proc/self/stat``) and sets
``torch.set_num_threads`` to the cores left free, never above the threads the fit
started with (``torch.set_num_threads``, ``OMP_NUM_THREADS``, ``threadpoolctl``'s
limits or joblib's in its workers) nor a container's CPU quota. When the other work
ends, the threads come back. Elsewhere than Linux, or on a GPU, it does nothing.

The thread count changes the order of a convolution's sums, so a fit that changed
its threads can differ from one that did not in the last digits. An integer
``n_threads`` trains on exactly that many threads, for bit-identical runs.
"""

import math
import os
import threading
import time

import torch

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: Whether ``n_threads="auto"`` follows the load; the test suite turns it off so that
#: its bit-identity checks do not depend on what else the machine runs.
ADAPT = True
#: The last choice, ``(time.monotonic(), threads)``: a fit that starts soon after
#: another (a grid search's next candidate, a warm-started epoch) starts with it.
_last_choice = None
#: Budgets now running in this process (fits in threads share torch's one setting),
#: and the threads the process had before the first of them: the last to close
#: gives them back, so that no fit restores a count another one had set.
_running = {"count": 0, "threads": None}
_lock = threading.Lock()
REMEMBER = 10.0  # seconds a choice stays valid for the next fit


def usable_cpus():
    """The CPU numbers this process may run on (its affinity), or None if unknown."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cgroup_cpu_limit(root="/sys/fs/cgroup"):
    """The CPUs a container's quota allows (cgroup v2 ``cpu.max`` or v1 CFS), or None."""
    try:
        with open(os.path.join(root, "cpu.max")) as file:
            quota, period = file.read().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(root, "cpu", "cpu.cfs_quota_us")) as file:
            quota = int(file.read())
        with open(os.path.join(root, "cpu", "cpu.cfs_period_us")) as file:
            period = int(file.read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def read_cpu_times(cpus, stat="/proc/stat", own="/proc/self/stat"):
    """``(busy ticks of the CPUs in cpus, ticks of this process)``, or None if unreadable.

    Busy is everything but idle and I/O wait, steal included: time the CPU did not
    have for this process's threads.
    """
    try:
        busy = 0
        with open(stat) as file:
            for line in file:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                    ticks = [int(field) for field in fields[:8]]
                    busy += sum(ticks) - ticks[3] - ticks[4]
        with open(own) as file:
            after_name = file.read().rpartition(")")[2].split()
        return busy, int(after_name[11]) + int(after_name[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None


class ThreadBudget:
    """Keeps ``torch``'s intra-op threads to the free cores while a CPU fit trains.

    Parameters
    ----------
    device : torch.device
        The training device; anything but the CPU leaves the threads alone.
    n_threads : "auto" or int, default="auto"
        ``"auto"`` follows the free cores; an int trains on exactly that many.
    interval : float, default=2.0
        Seconds between two readings of the CPU times; the first comes after a
        quarter of it, so that short fits adapt too.

    Call :meth:`start` before the training loop, :meth:`check` after each step and
    :meth:`close` at the end; the last fit of the process to close restores the
    threads the process had before the first started.
    """

    def __init__(self, device, n_threads="auto", interval=2.0):
        self.interval = interval
        with _lock:  # the process's own threads, not those another running fit chose
            self.initial = _running["threads"] if _running["count"] else torch.get_num_threads()
        self.fixed = None if n_threads == "auto" else n_threads
        self.ceiling = self.initial if self.fixed is None else self.fixed
        self.cpus = usable_cpus()
        self.enabled = ADAPT and self.fixed is None and device.type == "cpu" and self.ceiling > 1
        self.enabled = self.enabled and self.cpus is not None
        if self.enabled:
            quota = cgroup_cpu_limit()
            self.cores = len(self.cpus) if quota is None else min(len(self.cpus), max(1, math.floor(quota)))
        self.last = self.due = None
        self.started = False

    def start(self):
        """Take the first reading (and apply a container's quota at once)."""
        with _lock:
            if _running["count"] == 0:
                _running["threads"] = self.initial
            _running["count"] += 1
        self.started = True
        if self.fixed is not None and self.fixed != self.initial:
            torch.set_num_threads(self.fixed)
        if self.enabled:
            now = time.monotonic()
            self.last, self.due = (now, read_cpu_times(self.cpus)), now + self.interval / 4
            self.enabled = self.last[1] is not None
        if self.enabled:
            threads = self.threads_for(0.0)  # a container's quota
            if _last_choice is not None and now - _last_choice[0] < REMEMBER:
                threads = min(threads, _last_choice[1])
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
        return self

    def close(self):
        """Give back the threads the process had, when no other fit still runs."""
        if not self.started:
            return
        self.started = False
        with _lock:
            _running["count"] -= 1
            if _running["count"] == 0 and torch.get_num_threads() != _running["threads"]:
                torch.set_num_threads(_running["threads"])

    def check(self):
        """Every ``interval`` seconds, set the threads to the cores left free."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + self.interval
        times = read_cpu_times(self.cpus)
        if times is None:
            self.enabled = False
            return
        (then, (busy_then, own_then)), self.last = self.last, (now, times)
        others = max(0.0, (times[0] - busy_then) - (times[1] - own_then)) / CLOCK_TICKS / (now - then)
        threads = self.threads_for(others)
        global _last_choice
        _last_choice = (now, threads)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)

    def threads_for(self, others):
        """Threads for ``others`` cores' worth of other processes' work.

        A quarter of a core of other work is noise; half of one already costs a
        spinning thread most of its turns.
        """
        return max(1, min(self.ceiling, math.floor(self.cores - others + 0.25)))
