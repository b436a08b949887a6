"""The log in the database (SQLite and PostgreSQL): appends, indices, proofs, checkpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from ledger import Ledger
from ledger import _store as store
from ledger._merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger._records import decode
from oceanmart.db import transaction
from oceanmart.errors import LedgerCorrupted, NotFound
from tests.conftest import ROOT, Env
from tests.ledger.conftest import append, record, with_settings
from tests.ledger.test_merkle import mth


def stored_leaves(env: Env) -> list[tuple[int, bytes]]:
    with env.sessions() as s:
        return [(i, bytes(b)) for i, b in s.execute(select(store.Leaf.idx, store.Leaf.leaf))]


def test_concurrent_appends_get_consecutive_indices(fresh_env: Env) -> None:
    ledger = Ledger(fresh_env.settings)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for b in range(10):
                append(ledger, fresh_env, [f"w{w}-{b}-{i}" for i in range(5)])
                if b % 3 == 0:
                    ledger.integrate(fresh_env.sessions)  # integrators race the writers
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ledger.integrate(fresh_env.sessions) == 300
    leaves = stored_leaves(fresh_env)
    assert sorted(i for i, _ in leaves) == list(range(300))
    ids = {decode(leaf)["access_id"] for _, leaf in leaves}
    assert len(ids) == 300
    with fresh_env.sessions() as s:
        assert s.scalar(select(text("count(*)")).select_from(store.QueuedLeaf)) == 0


def test_a_leaf_rolls_back_with_the_callers_transaction(fresh_env: Env) -> None:
    ledger = Ledger(fresh_env.settings)
    with pytest.raises(RuntimeError), transaction(fresh_env.sessions) as s:
        ledger.append(s, record("rolled-back"))
        raise RuntimeError("the purchase failed")
    append(ledger, fresh_env, ["kept"])
    assert ledger.integrate(fresh_env.sessions) == 1
    assert [decode(leaf)["access_id"] for _, leaf in stored_leaves(fresh_env)] == ["kept"]


def test_proofs_from_stored_nodes_match_a_reference_tree(fresh_env: Env) -> None:
    ledger = Ledger(fresh_env.settings)
    for n in (1, 2, 5, 13, 64, 100):  # several integrations, odd boundaries
        size = ledger.size(fresh_env.sessions)
        append(ledger, fresh_env, [f"p{i}" for i in range(size, n)])
        ledger.integrate(fresh_env.sessions)
    leaves = [leaf for _, leaf in sorted(stored_leaves(fresh_env))]
    with fresh_env.sessions() as s:
        for size in (1, 7, 64, 100):
            root = store.root(s, size)
            assert root == mth(leaves[:size])
            for i in range(0, size, 3):
                verify_inclusion(i, size, leaf_hash(leaves[i]), store.inclusion(s, i, size), root)
            for first in sorted({1, min(3, size), size}):
                verify_consistency(
                    first, size, store.consistency(s, first, size), mth(leaves[:first]), root
                )


def test_checkpoints_every_n_records_or_t_seconds(fresh_env: Env) -> None:
    settings = with_settings(fresh_env, ledger_checkpoint_every=10, ledger_checkpoint_seconds=60)
    ledger = Ledger(settings)
    append(ledger, fresh_env, [f"c{i}" for i in range(4)])
    assert ledger.run_once(fresh_env.sessions, anchor=False).checkpoint == 4  # the first
    append(ledger, fresh_env, [f"d{i}" for i in range(9)])
    assert ledger.run_once(fresh_env.sessions, anchor=False).checkpoint is None  # 9 < N
    append(ledger, fresh_env, ["e"])
    assert ledger.run_once(fresh_env.sessions, anchor=False).checkpoint == 14  # N reached
    append(ledger, fresh_env, ["f"])
    assert ledger.run_once(fresh_env.sessions, anchor=False).checkpoint is None
    with transaction(fresh_env.sessions) as s:  # T elapses
        for row in s.scalars(select(store.CheckpointRow)):
            row.created_at -= timedelta(seconds=61)
    assert ledger.run_once(fresh_env.sessions, anchor=False).checkpoint == 15
    assert ledger.latest_checkpoint(fresh_env.sessions).size == 15
    with pytest.raises(NotFound):
        ledger.checkpoint_at(fresh_env.sessions, 13)
    proof = ledger.consistency(fresh_env.sessions, 4, 15)
    verify_consistency(4, 15, proof.proof, proof.first_root, proof.second_root)


def test_no_checkpoint_is_signed_over_a_rewritten_history(fresh_env: Env) -> None:
    ledger = Ledger(fresh_env.settings)
    append(ledger, fresh_env, [f"h{i}" for i in range(8)])
    assert ledger.run_once(fresh_env.sessions, anchor=False).checkpoint == 8
    append(ledger, fresh_env, ["h8"])
    ledger.integrate(fresh_env.sessions)
    with transaction(fresh_env.sessions) as s:  # someone rewrites an old subtree hash
        s.execute(
            update(store.TreeNode)
            .where(store.TreeNode.level == 3, store.TreeNode.idx == 0)
            .values(hash=b"\x00" * 32)
        )
    with pytest.raises(LedgerCorrupted, match="not consistent with checkpoint 8"):
        ledger.checkpoint(fresh_env.sessions, force=True)


def test_the_worker_integrates_but_never_signs_over_a_rewritten_history(fresh_env: Env) -> None:
    """run_once signs in the integrating transaction; a refused checkpoint must not
    roll the integration back with it."""
    settings = with_settings(fresh_env, ledger_checkpoint_every=1)
    ledger = Ledger(settings)
    append(ledger, fresh_env, [f"w{i}" for i in range(8)])
    assert ledger.run_once(fresh_env.sessions, anchor=False).checkpoint == 8
    with transaction(fresh_env.sessions) as s:
        s.execute(
            update(store.TreeNode)
            .where(store.TreeNode.level == 3, store.TreeNode.idx == 0)
            .values(hash=b"\x00" * 32)
        )
    append(ledger, fresh_env, ["w8", "w9"])
    with pytest.raises(LedgerCorrupted, match="not consistent with checkpoint 8"):
        ledger.run_once(fresh_env.sessions, anchor=False)
    assert ledger.size(fresh_env.sessions) == 10
    assert ledger.latest_checkpoint(fresh_env.sessions).size == 8


KILLED = """
import sys
from oceanmart.db import make_engine, make_sessionmaker, transaction
from oceanmart.settings import Settings
from ledger import Ledger
from tests.ledger.conftest import record

settings = Settings(database_url=sys.argv[1], var_dir=sys.argv[2])
sessions = make_sessionmaker(make_engine(settings.database_url))
ledger = Ledger(settings)
for b in range(30):
    with transaction(sessions) as s:
        ledger.append_many(s, [record(f"k{b}-{i}") for i in range(100)])
print("appended", flush=True)
while True:  # integrate and checkpoint until killed, somewhere in the middle
    with transaction(sessions) as s:
        ledger.append_many(s, [record(f"more-{i}") for i in range(50)])
    ledger.run_once(sessions, anchor=False)
"""


@pytest.mark.slow
def test_kill_between_append_and_checkpoint_loses_nothing(fresh_env: Env) -> None:
    settings = fresh_env.settings
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED),
            settings.database_url,
            str(settings.var_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"appended"
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ledger = Ledger(settings)
    with fresh_env.sessions() as s:
        committed = store.tree_size(s) + s.scalar(
            select(text("count(*)")).select_from(store.QueuedLeaf)
        )
    assert committed >= 3000
    ledger.run_once(fresh_env.sessions, anchor=False)
    made = ledger.checkpoint(fresh_env.sessions, force=True)
    latest = made or ledger.latest_checkpoint(fresh_env.sessions)
    assert latest.size == committed == ledger.size(fresh_env.sessions)
    ids = [decode(leaf)["access_id"] for _, leaf in stored_leaves(fresh_env)]
    assert {f"k{b}-{i}" for b in range(30) for i in range(100)} <= set(ids)
    assert sorted(i for i, _ in stored_leaves(fresh_env)) == list(range(len(ids)))
    report = ledger.audit(fresh_env.sessions, chain=False)
    assert report.ok, report.problems
