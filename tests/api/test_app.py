"""The app factory's process-level settings."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from api import create_app
from tests.conftest import Env


def test_the_server_process_freezes_what_start_up_made(env: Env) -> None:
    """``oceanmart serve`` asks for ``freeze_gc``: after start-up the collector's
    permanent generation holds the process's objects; other apps (tests) leave it alone."""
    gc.unfreeze()
    try:
        with TestClient(create_app(env.settings)):
            unfrozen = gc.get_freeze_count()
        with TestClient(create_app(env.settings, freeze_gc=True)):
            assert gc.get_freeze_count() > unfrozen + 10_000
    finally:
        gc.unfreeze()
