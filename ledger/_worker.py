"""The background thread of a server: integrate, checkpoint and anchor every few tenths
of a second, backing off from an unreachable chain without stopping the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from sqlalchemy.orm import Session, sessionmaker

from ledger._service import Ledger

log = structlog.get_logger(__name__)

# How often an idle thread asks the chain whether it lost anchors (a reset of the node):
# a contract call each time, which was most of an idle server's CPU at every pass.
RESET_CHECK_SECONDS = 15.0


class LedgerWorker:
    def __init__(
        self,
        ledger: Ledger,
        sessions: sessionmaker[Session],
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """``on_ready``: called once in the thread after its first pass, which set up the
        chain (the embedded chain imports py-evm and replays its transactions)."""
        self.ledger = ledger
        self.sessions = sessions
        self._on_ready = on_ready
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        poll = self.ledger.settings.ledger_poll_seconds
        backoff = 0.0
        next_anchor = 0.0
        next_reset_check = 0.0
        clock = 0.0
        while not self._stop.wait(poll):
            clock += poll
            check_reset = clock >= next_reset_check
            try:
                summary = self.ledger.run_once(
                    self.sessions, anchor=clock >= next_anchor, check_reset=check_reset
                )
            except Exception as exc:  # the thread must outlive any one failure
                log.exception("ledger.worker_failed", error=type(exc).__name__)
                continue
            finally:
                ready, self._on_ready = self._on_ready, None
                if ready is not None:
                    ready()
            if check_reset and clock >= next_anchor and not summary.chain_error:
                next_reset_check = clock + RESET_CHECK_SECONDS
            if summary.chain_error:
                backoff = min(max(2 * backoff, 1.0), 10.0)
                next_anchor = clock + backoff
                log.warning(
                    "ledger.chain_unavailable", detail=summary.chain_error, retry_in=backoff
                )
            elif clock >= next_anchor:
                backoff = 0.0
