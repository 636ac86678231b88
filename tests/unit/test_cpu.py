from __future__ import annotations

from kernel.cpu import ContentionMonitor, machine_busy_s


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.busy = 0.0
        self.own = 0.0


def monitor(clock: Clock) -> ContentionMonitor:
    return ContentionMonitor(2, interval_s=1.0, busy=lambda: clock.busy, own=lambda: clock.own, clock=lambda: clock.t)


def test_idle_machine_keeps_every_core() -> None:
    c = Clock()
    m = monitor(c)
    assert m.recommend() is None  # first reading only sets the baseline
    c.t, c.busy, c.own = 1.0, 2.0, 1.95  # the engine alone used both cores
    assert m.recommend() == 2


def test_a_busy_neighbour_takes_a_thread_away_and_gives_it_back() -> None:
    c = Clock()
    m = monitor(c)
    m.recommend()
    c.t, c.busy, c.own = 1.0, 2.0, 1.0  # someone else used a whole core
    assert m.recommend() == 1
    assert 0.9 < m.others_cores < 1.1
    c.t, c.busy, c.own = 1.5, 2.5, 1.0
    assert m.recommend() is None  # not yet time to look again
    c.t, c.busy, c.own = 2.5, 4.5, 2.95
    assert m.recommend() == 2


def test_never_below_one_thread() -> None:
    c = Clock()
    m = monitor(c)
    m.recommend()
    c.t, c.busy, c.own = 1.0, 8.0, 0.0
    assert m.recommend() == 1


def test_reads_the_real_proc_stat() -> None:
    first = machine_busy_s()
    assert first is None or first > 0
