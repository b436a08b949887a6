"""Blocking work off the event loop, stopped when the client goes away."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import FileResponse

from catalog.work import discard

POLL_S = 0.1


async def run_cancellable[T](request: Request, work: Callable[[threading.Event], T]) -> T:
    """Run ``work(cancel)`` in a worker thread; set ``cancel`` if the client disconnects
    meanwhile (``work`` stops at its next check, see ``catalog.work.watched``)."""
    cancel = threading.Event()

    async def watch() -> None:
        while not await request.is_disconnected():
            await anyio.sleep(POLL_S)
        cancel.set()

    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        try:
            result = await anyio.to_thread.run_sync(work, cancel)
        except Exception as exc:  # raised below, outside the group (no ExceptionGroup)
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


def held(pieces: Iterator[bytes], stack: ExitStack) -> Iterator[bytes]:
    """Stream ``pieces``, keeping what ``stack`` holds (a heavy-request slot) until the
    last piece is sent or the client goes away (lazy results compute while streaming)."""
    with stack:
        yield from pieces


class ScratchFileResponse(FileResponse):
    """A ``catalog.work.scratch_path`` file, discarded once the response ends, sent whole or not
    (a background task would not run when the client goes away mid-send)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            discard(Path(self.path))
