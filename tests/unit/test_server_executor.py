"""The controller's gRPC thread pool: it warns when a call has to wait for a thread, and only then.

``ServerExecutor`` hooks a private step of CPython's ThreadPoolExecutor; these tests fail if that
step changes, rather than the warning going silent.
"""

from __future__ import annotations

import logging
import threading

import pytest

from controller.main import ServerExecutor


def test_a_call_that_waits_for_a_thread_is_logged_and_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    pool = ServerExecutor(2)
    release = threading.Event()
    try:
        with caplog.at_level(logging.WARNING, logger="controller.main"):
            # Positive control: calls that find a thread run, and nothing is logged.
            assert pool.submit(lambda: 7).result(timeout=5) == 7
            assert pool.submit(lambda: 8).result(timeout=5) == 8
            assert not caplog.records
            # Two streams hold both threads; a third call has to wait.
            streams = [pool.submit(release.wait, 10) for _ in range(2)]
            waiting = pool.submit(lambda: "ran")
            assert [r.getMessage() for r in caplog.records] == [
                "a call waits: every gRPC server thread is busy; raise --workers"
            ]
            assert not waiting.done()
            release.set()
            assert waiting.result(timeout=5) == "ran"
            assert all(s.result(timeout=5) for s in streams)
    finally:
        release.set()
        pool.shutdown()


def test_idle_threads_are_reused_rather_than_started() -> None:
    pool = ServerExecutor(64)
    try:
        for i in range(50):
            assert pool.submit(lambda i=i: i).result(timeout=5) == i
        assert len(pool._threads) <= 2  # one call at a time: an idle thread takes each
    finally:
        pool.shutdown()
