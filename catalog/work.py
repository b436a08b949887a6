"""Watching dask work: stop it when nobody waits any more, and report its progress.

The local schedulers call these hooks between tasks, so a cancelled download or job
stops within one task (one chunk) instead of running to the end.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dask.callbacks import Callback

from oceanmart.errors import Cancelled


class _Watch(Callback):
    def __init__(
        self, cancel: threading.Event | None, progress: Callable[[int, int], None] | None
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.cancel = cancel
        self.progress = progress
        self.total = 0
        self.done = 0

    def _start_state(self, dsk: Any, state: Any) -> None:
        self.total += sum(len(state[k]) for k in ("ready", "waiting", "running"))

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the work was cancelled")

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))


@contextmanager
def watched(
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[None]:
    """Within this block, dask computations on this thread stop with Cancelled once
    ``cancel`` is set and report ``progress(done, total)`` after each task."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("the work was cancelled")
    with _Watch(cancel, progress):
        yield


def scratch_path(name: str) -> Path:
    """Where to write a result file: ``name`` in a new folder of its own under the
    system's temporary folder. ``discard`` removes the folder, not only the file: an
    xarray write that a cancel stopped can open its file again by name afterwards, which
    created it anew (empty) after a plain unlink; in a removed folder it cannot."""
    return Path(tempfile.mkdtemp(prefix="oceanmart-")) / name


def discard(path: Path) -> None:
    """Remove a ``scratch_path`` file with its folder (nothing if already gone)."""
    shutil.rmtree(path.parent, ignore_errors=True)
