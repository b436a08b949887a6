"""The ingest step log: wall and CPU seconds of each step."""

from __future__ import annotations

import threading

from structlog.testing import capture_logs

from ingest.pipeline import _compute_step


def test_step_log_reports_cpu_seconds_of_all_threads() -> None:
    def spin() -> None:
        n = 0
        for i in range(2_000_000):
            n += i

    said: list[str] = []
    with capture_logs() as logs, _compute_step("busy step", said.append, False):
        worker = threading.Thread(target=spin)
        worker.start()
        worker.join()
    (entry,) = [e for e in logs if e["event"] == "ingest.step"]
    assert said == ["busy step"]
    assert entry["step"] == "busy step"
    assert entry["seconds"] >= 0
    # work done by another thread of the process counts
    assert entry["cpu_seconds"] > 0
