"""The search's stop signal and live counters (compile/tuning/search.py)."""

import os
import signal

import pytest

from tvmdeploy.compile.tuning.search import STOP, Progress, TaskProgress, graceful_stop


def test_the_first_interrupt_asks_for_a_clean_stop_and_the_second_stops_at_once():
    previous = signal.getsignal(signal.SIGINT)
    with graceful_stop():
        assert not STOP.is_set()
        os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread before kill() returns here
        assert STOP.is_set()  # no KeyboardInterrupt: the batch in flight finishes
        with graceful_stop():  # nested (seeding, then the search): keeps the stop already asked for
            assert STOP.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous  # the caller's handler is back


def test_progress_sums_the_tasks_and_estimates_the_network_from_the_best_times():
    progress = Progress(weights={0: 2, 1: 1})
    progress.tasks = {0: TaskProgress(), 1: TaskProgress()}
    assert progress.estimated_ms() is None  # nothing measured yet
    progress.tasks[0].trials, progress.tasks[0].best_s, progress.tasks[0].build_failures = 8, 1e-3, 1
    progress.tasks[1].trials, progress.tasks[1].run_failures = 4, 2
    assert (progress.trials, progress.build_failures, progress.run_failures) == (12, 1, 2)
    assert progress.estimated_ms() == pytest.approx(2.0)  # 1 ms x 2 calls; task 1 has no best yet
