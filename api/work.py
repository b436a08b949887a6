"""Blocking work off the event loop, stopped when the client goes away."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import FileResponse
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from api.deps import Entitled
from catalog.work import discard
from oceanmart.db import is_lock_timeout

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


class NotOnLoop(Exception):
    """Raised by work tried on the event loop, before it read or wrote anything: run it
    in a worker thread instead (too big, not local, or not the simple case). ``decided``:
    the data gate's answer when the work got that far, for the thread to go on with
    instead of asking the database again (``Entitled.detached``)."""

    def __init__(self, decided: Entitled | None = None) -> None:
        super().__init__()
        self.decided = decided


async def loop_first[T](
    request: Request,
    on_loop: Callable[[Connection], T],
    in_thread: Callable[[Entitled | None], Awaitable[T]],
) -> T:
    """``on_loop(connection)`` on the event loop, else ``in_thread()``.

    Small reads (one point, a Zarr metadata document or chunk) cost less than the
    hand-over to a worker thread and back (both threads contend for the GIL), so they
    run on the loop, through a connection of ``app.state.loop_data_engine`` that gives
    up on a database lock after a few milliseconds (``api.app``): on ``NotOnLoop`` or
    such a lock timeout (its transaction rolled back whole) the request runs again in
    a worker thread, where waiting for the lock blocks nobody else; ``in_thread`` gets
    the gate's answer ``NotOnLoop`` carried, if any."""
    decided = None
    try:
        with request.app.state.loop_data_engine.connect() as connection:
            return on_loop(connection)
    except NotOnLoop as exc:
        decided = exc.decided
    except OperationalError as exc:
        if not is_lock_timeout(exc):
            raise
    return await in_thread(decided)


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
