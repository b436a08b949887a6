"""POST /v1/quotes throughput and latency vs a bare FastAPI endpoint, same machine, same run.

- bare: a FastAPI app whose only route, ``POST /v1/quotes``, validates the same JSON body
  with a pydantic model and returns a small JSON object (no auth, no database), served by
  uvicorn in its own process: the floor of a FastAPI JSON endpoint here.
- oceanmart: ``oceanmart serve`` in its own process (one uvicorn worker, like the peer;
  the same uvicorn settings as ``oceanmart serve`` and ``oceanmart demo``, background
  ledger thread included); each request authenticates the key, plans the selection from
  metadata, prices it under the product's price book, signs it (EIP-712) and stores it.
  Only the per-key rate limit is lifted (its token bucket still runs on every request).

Both are loaded the same way, one after the other and twice each (bare, oceanmart,
bare, oceanmart): ``--clients`` processes, each sending requests back to back over a
keep-alive connection for ``--seconds``. Prints requests/s, p50 and p99 latency, the
server's CPU time per request (from /proc: steadier than req/s when other jobs share the
machine) and the throughput ratio oceanmart/bare (target: at least 0.5).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import BIN, ROOT, free_port, oceanmart, wait

SELECTIONS = [
    {"bbox": [120, 20, 130, 30], "depth": [0, 100], "variables": ["TEMP"]},
    {"bbox": [-10, -20, 10, 20], "variables": ["TEMP", "SALT"]},
    {"sea_area": "east-china-sea", "depth": [0, 50]},
    {"point": [122.5, 30.5], "variables": ["TEMP"]},
    {"stride": 4},
]

BARE_APP = """
import sys
from typing import Any
from fastapi import FastAPI
from pydantic import BaseModel, Field
import uvicorn

class QuoteIn(BaseModel):
    product: str = Field(max_length=64)
    selection: dict[str, Any] = Field(default_factory=dict)
    component: dict[str, Any] | None = None

app = FastAPI()

@app.post("/v1/quotes", status_code=201)
def quote(body: QuoteIn) -> dict[str, Any]:
    return {"id": "q_0", "product": body.product, "selection": body.selection,
            "total": {"amount": 200, "currency": "CNY"}, "lines": []}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def client(url: str, key: str, seconds: float, start: float, out: Any) -> None:
    """One client: requests back to back until the deadline; sends its latencies back."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    latencies: list[float] = []
    errors = 0
    first_error = ""
    with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
        while time.monotonic() < start:
            time.sleep(0.001)
        deadline = start + seconds
        i = os.getpid()
        while (t0 := time.monotonic()) < deadline:
            body = {"product": "levitus-climatology", "selection": SELECTIONS[i % len(SELECTIONS)]}
            i += 1
            r = c.post("/v1/quotes", json=body)
            if r.status_code != 201:
                errors += 1
                first_error = first_error or f"{r.status_code} {r.text[:300]}"
            latencies.append(time.monotonic() - t0)
    out.put((latencies, errors, first_error))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _collect(out: Any, procs: list[Any], deadline: float) -> list[Any]:
    """Every client's result; exits (never hangs) when a client died without sending
    one or when the clients outlive ``deadline`` (a request stuck past its timeout)."""
    results: list[Any] = []
    while len(results) < len(procs):
        try:
            results.append(out.get(timeout=1.0))
            continue
        except queue.Empty:
            pass
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            for p in procs:
                p.kill()
            why = f"client exit codes {[p.exitcode for p in dead]}" if dead else "timed out"
            raise SystemExit(f"load: {len(results)} of {len(procs)} clients reported ({why})")
    return results


def load(url: str, key: str, clients: int, seconds: float, pid: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.monotonic() + 2.0  # let every client connect first
    procs = [
        ctx.Process(target=client, args=(url, key, seconds, start, out)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    cpu0 = cpu_seconds(pid)
    results = _collect(out, procs, deadline=time.monotonic() + 2.0 + seconds + 60)
    cpu = cpu_seconds(pid) - cpu0
    for p in procs:
        p.join()
    latencies = sorted(x for lat, _, _ in results for x in lat)
    errors = sum(e for _, e, _ in results)
    if errors:
        first = next(f for _, _, f in results if f)
        raise SystemExit(f"{errors} requests to {url} failed, the first: {first}")
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": q[49] * 1e3,
        "p99_ms": q[98] * 1e3,
        # the server's CPU per request: less sensitive than req/s to what else runs here
        "cpu_ms": cpu / len(latencies) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default="", help="default: SQLite under a temp dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="om-bench-quote-"))
    env = {
        **os.environ,
        "OCEANMART_VAR_DIR": str(work / "var"),
        "OCEANMART_CORPUS_DIR": os.environ.get("OCEANMART_CORPUS_DIR", str(ROOT / ".cache/corpus")),
        "OCEANMART_LOG_LEVEL": "WARNING",
        "OCEANMART_LOG_FORMAT": "json",
        # The per-key token bucket still runs on every request, but with a rate no load
        # from this machine reaches: the bench measures quoting, not the limiter's 429s.
        "OCEANMART_RATE_LIMIT_PER_S": "1000000",
    }
    if args.database_url:
        env["OCEANMART_DATABASE_URL"] = args.database_url
    print("[bench] preparing: migrate, ingest Levitus, sea areas, price book, key", file=sys.stderr)
    oceanmart(env, "db", "upgrade")
    oceanmart(env, "ingest", str(ROOT / "ingest/specs/levitus-climatology.yaml"))
    oceanmart(env, "sea-areas", "import", str(ROOT / "ingest/specs/sea-areas.geojson"))
    sys.path.insert(0, str(ROOT))  # bench/ledger.py must not shadow the ledger package
    from pricing.books import EXAMPLE_RULES

    rules = work / "rules.json"
    rules.write_text(json.dumps(EXAMPLE_RULES))
    oceanmart(env, "price-books", "set", "levitus-climatology", str(rules))
    oceanmart(env, "accounts", "create", "bench", "--kind", "enterprise")
    key = oceanmart(env, "keys", "create", "--account", "bench").splitlines()[-1]

    om_port, bare_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [str(BIN / "oceanmart"), "serve", "--port", str(om_port)],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port)]),
    ]
    om_url, bare_url = f"http://127.0.0.1:{om_port}", f"http://127.0.0.1:{bare_port}"
    try:
        wait(f"{om_url}/healthz")
        wait(f"{bare_url}/docs")
        for sel in SELECTIONS:  # every selection quotes (and warms the caches)
            r = httpx.post(
                f"{om_url}/v1/quotes",
                json={"product": "levitus-climatology", "selection": sel},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            if r.status_code != 201:
                raise SystemExit(f"quote failed: {r.text}")
        runs: dict[str, list[dict[str, float]]] = {"bare": [], "oceanmart": []}
        for rnd in range(2):
            for name, url, k, proc in (
                ("bare", bare_url, "", procs[1]),
                ("oceanmart", om_url, key, procs[0]),
            ):
                print(f"[bench] round {rnd + 1}: {name}", file=sys.stderr)
                runs[name].append(load(url, k, args.clients, args.seconds, proc.pid))
    finally:
        for p in procs:
            p.terminate()
            p.wait()

    print(
        f"\nPOST /v1/quotes, {args.clients} clients x {args.seconds:g} s, two rounds each "
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"{'PostgreSQL' if args.database_url else 'SQLite'})"
    )
    print(
        f"{'server':10} {'round':>5} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu ms/req':>10}"
    )
    for name, rows in runs.items():
        for i, r in enumerate(rows, 1):
            print(
                f"{name:10} {i:>5} {r['requests']:>9.0f} {r['rps']:>8.1f} "
                f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['cpu_ms']:>10.2f}"
            )
    best = {name: max(r["rps"] for r in rows) for name, rows in runs.items()}
    print(f"throughput ratio oceanmart/bare (best rounds): {best['oceanmart'] / best['bare']:.2f}")
    cpu = {name: min(r["cpu_ms"] for r in rows) for name, rows in runs.items()}
    ratio = cpu["bare"] / cpu["oceanmart"]
    print(f"server CPU per request, bare/oceanmart (best rounds): {ratio:.2f}")


if __name__ == "__main__":
    main()
