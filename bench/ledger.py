"""Ledger throughput, proof cost at scale, and chain transactions against one-per-access.

- appends: records appended inside caller transactions (``Ledger.append``, 100 per
  transaction, and ``append_many``), integrated into the Merkle log (stored subtree
  hashes, so every leaf is provable), checkpointed every 1,000 records and anchored on
  anvil, all in one loop; plus one record per transaction (commit-bound) for contrast.
  The background step is ``Ledger.run_once`` (what the server's worker thread calls:
  integration and, in the same transaction, the checkpoint when due) and then
  ``Ledger.anchor``. Each step's time per record is printed too, and the CPU time of
  this process per record (what the loop costs when it never waits for the disk, the
  database server or anvil, which on a shared machine is most of the difference).
- proofs at 1 M leaves: inclusion and consistency proofs read from the database, their
  size, and the time to verify one.
- chain: transactions OceanMart sends per 10,000 accesses (one per checkpoint) against
  the peer, one anvil transaction per access (pre-signed raw, each waited for), both in
  this run; the peer's time for 10,000 accesses is its measured rate times 10,000.

Run: ``.venv/bin/python bench/ledger.py [--records N] [--leaves N] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from sqlalchemy import text  # noqa: E402

from ledger import Ledger, LedgerRecord  # noqa: E402
from ledger import _store as store  # noqa: E402
from ledger._chain import contract_interface  # noqa: E402
from ledger._merkle import leaf_hash, verify_consistency, verify_inclusion  # noqa: E402
from oceanmart.db import make_engine, make_sessionmaker, transaction, upgrade  # noqa: E402
from oceanmart.logging import configure_logging  # noqa: E402
from oceanmart.secrets import operator_key  # noqa: E402
from oceanmart.settings import Settings  # noqa: E402
from tests.ledger.conftest import Anvil, anvil_binary  # noqa: E402

NOW = datetime.now(UTC)


def rec(i: int) -> LedgerRecord:
    return LedgerRecord(
        kind="access",
        time=NOW,
        account_id=i % 97,
        product_version="3f2a" * 16,
        selection_hash="9c1e" * 16,
        cells=1000 + i,
        bytes=4000 + 4 * i,
        access_id=f"acc-{i:09d}",
    )


STEPS = ("build records", "append", "caller's commit", "integrate + checkpoint", "anchor")


@dataclass
class Phase:
    name: str
    records: int
    seconds: float
    anchors: int
    anchor_seconds: float
    steps: dict[str, float]  # seconds in each step of the loop
    cpu: float  # CPU seconds of this process (not anvil's, not PostgreSQL's, not fsync waits)

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def database(url: str | None, tmp: Path, name: str) -> tuple[Settings, object]:
    if url is None:
        db = f"sqlite:///{tmp / f'{name}.db'}"
    else:
        schema = f"bench_{name}_{int(time.time())}"
        admin = make_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = f"{url}?options=-csearch_path%3D{schema}"
    return Settings(database_url=db, var_dir=tmp / "var", ledger_checkpoint_every=1000), db


def throughput(settings: Settings, anvil: Anvil, n: int, bulk: bool, batch: int) -> Phase:
    settings = settings.model_copy(update={"chain_url": anvil.url})
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    ledger = Ledger(settings)
    anvil.fund(Account.from_key(operator_key(settings)).address)
    ledger.contract(sessions)  # deploy before the clock starts
    anchors = 0
    steps = dict.fromkeys(STEPS, 0.0)

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] += now - since
        return now

    def background() -> None:  # what the server's thread does, timed apart for the chain
        nonlocal anchors
        t = time.perf_counter()
        ledger.run_once(sessions, anchor=False)  # integrate, and checkpoint when due
        t = step("integrate + checkpoint", t)
        anchors += ledger.anchor(sessions)
        step("anchor", t)

    t0, cpu0 = time.perf_counter(), time.process_time()
    for start in range(0, n, batch):
        t = time.perf_counter()
        records = [rec(i) for i in range(start, start + batch)]
        t = step("build records", t)
        with transaction(sessions) as s:
            if bulk:
                ledger.append_many(s, records)
            else:
                for r in records:
                    ledger.append(s, r)
            t = step("append", t)
        t = step("caller's commit", t)
        if (start + batch) % 1000 == 0:
            background()
    background()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert ledger.size(sessions) == n
    engine.dispose()
    how = "append_many" if bulk else "append"
    return Phase(f"{how}, {batch}/transaction", n, seconds, anchors, steps["anchor"], steps, cpu)


def build(settings: Settings, leaves: int) -> tuple[object, float]:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    ledger = Ledger(settings)
    t0 = time.perf_counter()
    for start in range(0, leaves, 10_000):
        with transaction(sessions) as s:
            ledger.append_many(s, [rec(i) for i in range(start, min(leaves, start + 10_000))])
        ledger.integrate(sessions)
    return sessions, time.perf_counter() - t0


def proofs(sessions: object, size: int, samples: int = 300) -> dict[str, float]:
    rng = random.Random(1)
    gen, ver, sizes = [], [], []
    with sessions() as s:  # type: ignore[operator]
        root = store.root(s, size)
        for _ in range(samples):
            i = rng.randrange(size)
            leaf = bytes(s.get(store.Leaf, i).leaf)
            t0 = time.perf_counter()
            proof = store.inclusion(s, i, size)
            gen.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            verify_inclusion(i, size, leaf_hash(leaf), proof, root)
            ver.append(time.perf_counter() - t0)
            sizes.append(32 * len(proof))
        first = size // 3 + 1
        first_root = store.root(s, first)
        t0 = time.perf_counter()
        cproof = store.consistency(s, first, size)
        cgen = time.perf_counter() - t0
        t0 = time.perf_counter()
        verify_consistency(first, size, cproof, first_root, root)
        cver = time.perf_counter() - t0
    return {
        "incl_bytes": statistics.median(sizes),
        "incl_gen_ms": statistics.median(gen) * 1e3,
        "incl_verify_us": statistics.median(ver) * 1e6,
        "cons_bytes": 32 * len(cproof),
        "cons_gen_ms": cgen * 1e3,
        "cons_verify_us": cver * 1e6,
    }


def peer(anvil: Anvil, accesses: int) -> float:
    """One anchor transaction per access on anvil, at its best: every transaction signed
    beforehand, all sent back to back, then every receipt awaited (5 ms polling).
    Returns seconds per access."""
    from web3 import HTTPProvider, Web3

    key = bytes.fromhex("7b" * 32)
    account = Account.from_key(key)
    anvil.fund(account.address)
    w3 = Web3(HTTPProvider(anvil.url))
    abi, bytecode = contract_interface()
    deploy = w3.eth.contract(abi=abi, bytecode=bytecode).constructor(b"\x01" * 32)
    tx = deploy.build_transaction(
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address)}
    )
    h = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    address = w3.eth.wait_for_transaction_receipt(h)["contractAddress"]
    c = w3.eth.contract(address=address, abi=abi)
    nonce = w3.eth.get_transaction_count(account.address)
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    chain_id = w3.eth.chain_id
    raws = [
        account.sign_transaction(
            {
                "to": address,
                "data": c.encode_abi("anchor", args=[i + 1, leaf_hash(str(i).encode())]),
                "gas": 200_000,
                "nonce": nonce + i,
                "chainId": chain_id,
                "maxFeePerGas": 4 * base + 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
        ).raw_transaction
        for i in range(accesses)
    ]
    t0 = time.perf_counter()
    hashes = [w3.eth.send_raw_transaction(raw) for raw in raws]
    for tx_hash in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, poll_latency=0.005)
        assert receipt["status"] == 1
    return (time.perf_counter() - t0) / accesses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--peer-accesses", type=int, default=1000)
    parser.add_argument("--postgres", help="also measure appends on this PostgreSQL URL")
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        anvil = Anvil(anvil_binary(), None)
        anvil.start()
        try:
            phases = []
            backends: list[tuple[str, str | None]] = [("SQLite", None)]
            if args.postgres:
                backends.append(("PostgreSQL", args.postgres))
            for label, url in backends:
                for bulk, batch, n in (
                    (False, 100, args.records),
                    (True, 1000, args.records),
                    (False, 1, 2000),
                ):
                    settings, _ = database(url, tmp, f"t{len(phases)}")
                    phase = throughput(settings, anvil, n, bulk, batch)
                    phase.name = f"{label}: {phase.name}"
                    phases.append(phase)
                    print(f"  {phase.name}: {phase.rate:,.0f}/s", file=sys.stderr)
            per_access = peer(anvil, args.peer_accesses)
            settings, _ = database(None, tmp, "big")
            sessions, built = build(settings, args.leaves)
            stats = proofs(sessions, args.leaves)
        finally:
            anvil.stop()
    print(f"\nMeasured {datetime.now(UTC):%Y-%m-%d} ({args.records:,} records a phase)\n")
    print(
        "| phase | records | seconds | appends/s | bench CPU us/record | chain tx | tx per 10,000 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p in phases:
        print(
            f"| {p.name} | {p.records:,} | {p.seconds:.1f} | {p.rate:,.0f} "
            f"| {p.cpu * 1e6 / p.records:.0f} | {p.anchors} "
            f"| {p.anchors * 10_000 / p.records:.0f} |"
        )
    print("\n| us per record, by step | " + " | ".join(STEPS) + " |")
    print("|---|" + "---:|" * len(STEPS))
    for p in phases:
        cells = " | ".join(f"{p.steps[k] * 1e6 / p.records:.1f}" for k in STEPS)
        print(f"| {p.name} | {cells} |")
    ours = phases[0]
    ours_tx = ours.anchors * 10_000 / ours.records
    ours_s = ours.anchor_seconds * 10_000 / ours.records
    peer_s = 10_000 * per_access
    print("\n| per 10,000 accesses | chain transactions | seconds on chain work |")
    print("|---|---:|---:|")
    print(f"| OceanMart (one anchor per 1,000-record checkpoint) | {ours_tx:.0f} | {ours_s:.2f} |")
    print(
        f"| peer: one anvil transaction per access ({args.peer_accesses:,} measured, "
        f"pre-signed, pipelined) | 10,000 | {peer_s:.1f} |"
    )
    print(f"| ratio peer/OceanMart | {10_000 / ours_tx:.0f}x | {peer_s / ours_s:.0f}x |")
    print(
        f"\naccesses/s, everything included: OceanMart {ours.rate:,.0f} ({ours.name}) vs "
        f"peer {1 / per_access:,.0f} (one anvil transaction each): {ours.rate * per_access:.0f}x"
    )
    print(f"\n{args.leaves:,} leaves built in {built:.0f} s ({args.leaves / built:,.0f}/s)\n")
    print("| proof at this size | bytes | generate (DB) | verify |")
    print("|---|---:|---:|---:|")
    print(
        f"| inclusion (median of 300) | {stats['incl_bytes']:.0f} | {stats['incl_gen_ms']:.2f} ms "
        f"| {stats['incl_verify_us']:.0f} us |"
    )
    print(
        f"| consistency {args.leaves // 3 + 1:,} -> {args.leaves:,} | {stats['cons_bytes']:.0f} "
        f"| {stats['cons_gen_ms']:.2f} ms | {stats['cons_verify_us']:.0f} us |"
    )


if __name__ == "__main__":
    main()
