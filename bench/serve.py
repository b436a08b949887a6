"""Serving speed: OceanMart vs in-process xarray (the floor) vs xpublish + xpublish-edr
(the peer), all on the same generated 365x720x1440 float32 product, in one run.

- floor: xarray in this process on the published Zarr copies (opened once; the point
  series from the series copy, maps from the map copy), no HTTP.
- peer: xpublish 0.5 + xpublish-edr in its own uvicorn process serving the same two
  copies (`/datasets/{map,series}/edr/...`); each case asks the copy OceanMart's planner
  picks, so both read the same chunks.
- oceanmart: `oceanmart serve` in its own process; every request authenticated,
  entitlement-checked, planned, metered (an access record per response).

Cases: a point time series (1 point x 365 steps, CSV) via EDR position; one global map
step and a 10x10 degree box x 30 days (NetCDF) via EDR cube; `xr.open_zarr` over HTTP
for a point series (open + read) against local `xr.open_zarr`; and requests/s of random
point queries at concurrency 16 against the peer. Bytes read / bytes returned come from
OceanMart's own plans (decoded bytes of the chunks touched / bytes of the values).

Run: ``make bench-peer`` (the peer's own environment, ``.venv-peer``; see
``bench/peer-requirements.txt`` for why it is apart) then ``.venv/bin/python bench/serve.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import xarray as xr
from _common import BIN, ROOT, free_port, oceanmart, settle, wait

PRODUCT = "bench-sst"
CASES = ("point", "map", "box", "zarr", "rate")

# The peer opens a copy with xarray's defaults (dask, one task per stored chunk), but a
# sharded copy without dask: there xarray's default makes each 2x2 inner chunk a dask
# chunk (pydata/xarray#11460; 259,200 of them, a cube query took minutes), and one dask
# chunk per shard decodes a whole 2 MB shard for a point. Without dask zarr reads only
# the inner chunks needed, as the floor and OceanMart do: the peer's best case.
PEER = """
import sys, uvicorn, xarray as xr, xpublish
from xpublish_edr import CfEdrPlugin
def open_copy(path):
    ds = xr.open_zarr(path, zarr_format=3, chunks=None)
    sharded = any(v.encoding.get("shards") for v in ds.data_vars.values())
    return ds if sharded else xr.open_zarr(path, zarr_format=3)
ds = {c: open_copy(f"{sys.argv[1]}/{c}.zarr") for c in ("map", "series")}
rest = xpublish.Rest(ds, plugins={"edr": CfEdrPlugin()})
uvicorn.run(rest.app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _generate() -> Callable[[Path, int], None]:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generate: Callable[[Path, int], None] = module.generate
    return generate


def timings(*fns: Callable[[], object], repeat: int, interleaved: bool = True) -> list[float]:
    """(p50, p95) in milliseconds of each of ``fns``, flattened: one warm-up call each
    first, then ``repeat`` rounds calling each once, interleaved (the order turned each
    round), so that all of them meet the same moments of a shared machine (in blocks,
    the floor's and OceanMart's p50 moved apart by up to 1.6x between runs minutes
    apart); with ``--blocks`` each ``repeat`` times in a row, its caches warm."""
    for fn in fns:
        fn()
    out: list[list[float]] = [[] for _ in fns]
    rounds = (
        [(k + j) % len(fns) for k in range(repeat) for j in range(len(fns))]
        if interleaved
        else [i for i in range(len(fns)) for _ in range(repeat)]
    )
    for i in rounds:
        t = time.perf_counter()
        fns[i]()
        out[i].append((time.perf_counter() - t) * 1e3)
    flat: list[float] = []
    for times in out:
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        flat += [statistics.median(times), p95]
    return flat


def rate(fn: Callable[[], object], total: int, concurrency: int) -> float:
    """Requests per second of ``total`` calls spread over ``concurrency`` threads."""
    left = [total]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            fn()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--steps", type=int, default=365)
    parser.add_argument("--requests", type=int, default=400, help="for the rate at concurrency 16")
    parser.add_argument(
        "--blocks", action="store_true", help="time each side in a block, not interleaved"
    )
    parser.add_argument("--work", type=Path, help="reuse the product ingested by an earlier run")
    parser.add_argument("--peer-python", type=Path, default=ROOT / ".venv-peer" / "bin" / "python")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated subset of {','.join(CASES)} (default: all)",
    )
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    if not cases <= set(CASES):
        raise SystemExit(f"--cases: unknown {', '.join(sorted(cases - set(CASES)))}")
    if not args.peer_python.exists():
        raise SystemExit(f"{args.peer_python} is missing: run `make bench-peer` first")
    work = args.work or Path(tempfile.mkdtemp(prefix="om-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OCEANMART_VAR_DIR": str(work / "var"),
        "OCEANMART_LOG_LEVEL": "WARNING",
        "OCEANMART_LOG_FORMAT": "json",
        "OCEANMART_RATE_LIMIT_PER_S": "100000",
        "OCEANMART_RATE_LIMIT_BURST": "100000",
    }
    src = work / "sst.nc"
    if not (work / "var" / "data" / "products" / PRODUCT).exists():
        print(f"[bench] generating {args.steps}x720x1440 float32", file=sys.stderr, flush=True)
        _generate()(src, args.steps)
        print("[bench] ingesting (both copies)", file=sys.stderr, flush=True)
        oceanmart(env, "db", "upgrade")
        oceanmart(env, "ingest", str(src), "--product", PRODUCT)
    print(f"[bench] work folder {work} (--work to reuse it)", file=sys.stderr, flush=True)
    account = f"bench-{os.getpid()}"
    oceanmart(env, "accounts", "create", account, "--kind", "enterprise")
    key = oceanmart(env, "keys", "create", "--account", account,
                    "--scopes", "catalog:read,data:read").splitlines()[-1]  # fmt: skip
    oceanmart(env, "entitlements", "grant", "--account", account, "--product", PRODUCT)
    version = next(p for p in (work / "var" / "data" / "products" / PRODUCT).iterdir())

    om_port, peer_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [str(BIN / "oceanmart"), "serve", "--port", str(om_port)],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [str(args.peer_python), "-c", PEER, str(version), str(peer_port)],
            stderr=subprocess.DEVNULL,
        ),
    ]
    auth = {"Authorization": f"Bearer {key}"}
    om_url, peer_url = f"http://127.0.0.1:{om_port}", f"http://127.0.0.1:{peer_port}"
    rows: list[tuple[str, str, float, float, float, float, float, float]] = []
    extra: list[str] = []
    try:
        wait(f"{om_url}/healthz")
        wait(f"{peer_url}/datasets")
        for proc in procs:
            took = settle(proc.pid)
            print(f"[bench] pid {proc.pid} settled after {took:.1f} s", file=sys.stderr, flush=True)
        om = httpx.Client(base_url=om_url, headers=auth, timeout=300)
        peer = httpx.Client(base_url=peer_url, timeout=300)
        local = {c: xr.open_zarr(version / f"{c}.zarr", zarr_format=3, chunks=None)
                 for c in ("map", "series")}  # fmt: skip
        sst = {c: ds["sst"] for c, ds in local.items()}
        times = local["map"]["time"].values
        rnd = random.Random(7)

        def point() -> tuple[float, float]:
            return round(rnd.uniform(-179, 179), 3), round(rnd.uniform(-60, 60), 3)

        def planned(selection: dict[str, Any]) -> dict[str, Any]:
            r = om.post("/v1/plans", json={"product": PRODUCT, "selection": selection})
            r.raise_for_status()
            plan: dict[str, Any] = r.json()
            return plan

        # 1. point time series via EDR position, CSV
        x, y = point()
        plan = planned({"point": [x, y], "variables": ["sst"]})
        point_copy = plan["copy"]

        def floor_point() -> object:
            a, b = point()
            return sst[point_copy].sel(longitude=a, latitude=b, method="nearest").values

        def om_point() -> object:
            a, b = point()
            q = {"coords": f"POINT({a} {b})", "parameter-name": "sst", "f": "CSV"}
            return om.get(f"/edr/collections/{PRODUCT}/position", params=q).raise_for_status()

        def peer_point() -> object:
            a, b = point()
            q = {"coords": f"POINT({a} {b})", "parameter-name": "sst", "f": "csv"}
            return peer.get(f"/datasets/{point_copy}/edr/position", params=q).raise_for_status()

        if "point" in cases:
            print("[bench] point series", file=sys.stderr, flush=True)
            rows.append(("point series 365 steps (EDR, CSV)", point_copy,
                         *timings(floor_point, om_point, peer_point,
                                  repeat=args.repeat, interleaved=not args.blocks)))  # fmt: skip
            extra.append(f"point series: bytes read / bytes returned = "
                         f"{plan['bytes_to_read']} / {plan['bytes']} = "
                         f"{plan['bytes_to_read'] / plan['bytes']:.1f}")  # fmt: skip

        if "map" in cases:
            # 2. one global map step via EDR cube, NetCDF
            print("[bench] global map step", file=sys.stderr, flush=True)
            day = str(times[len(times) // 2])[:10]
            cube = {"bbox": "-180,-90,180,90", "datetime": day, "parameter-name": "sst"}
            plan = planned({"bbox": [-180, -90, 180, 90], "datetime": day, "variables": ["sst"]})
            copy = plan["copy"]
            step = len(times) // 2
            rows.append(("one global map step (EDR cube, NetCDF)", copy,
                         *timings(lambda: sst[copy].isel(time=step).values,
                                  lambda: om.get(f"/edr/collections/{PRODUCT}/cube",
                                                 params={**cube, "f": "NetCDF"}).raise_for_status(),
                                  lambda: peer.get(f"/datasets/{copy}/edr/cube",
                                                   params={**cube, "f": "nc"}).raise_for_status(),
                                  repeat=args.repeat, interleaved=not args.blocks)))  # fmt: skip
            ratio = plan["bytes_to_read"] / plan["bytes"]
            extra.append(f"global map: bytes read / bytes returned = {plan['bytes_to_read']} / "
                         f"{plan['bytes']} = {ratio:.2f}")  # fmt: skip

        if "box" in cases:
            # 3. 10x10 degree box x 30 days via EDR cube, NetCDF
            print("[bench] 10x10 box x 30 days", file=sys.stderr, flush=True)
            first, last = str(times[100])[:10], str(times[129])[:10]
            box = {"bbox": "120,10,130,20", "datetime": f"{first}/{last}", "parameter-name": "sst"}
            plan = planned({"bbox": [120, 10, 130, 20], "datetime": f"{first}/{last}",
                            "variables": ["sst"]})  # fmt: skip
            copy = plan["copy"]

            def box_floor() -> object:
                cut = sst[copy].sel(longitude=slice(120, 130), latitude=slice(10, 20))
                return cut.isel(time=slice(100, 130)).values

            rows.append(("10x10 deg box x 30 days (cube, NetCDF)", copy,
                         *timings(box_floor,
                                  lambda: om.get(f"/edr/collections/{PRODUCT}/cube",
                                                 params={**box, "f": "NetCDF"}).raise_for_status(),
                                  lambda: peer.get(f"/datasets/{copy}/edr/cube",
                                                   params={**box, "f": "nc"}).raise_for_status(),
                                  repeat=args.repeat, interleaved=not args.blocks)))  # fmt: skip

        if "zarr" in cases:
            # 4. xr.open_zarr over HTTP (open + point series) vs local open_zarr
            print("[bench] open_zarr over HTTP", file=sys.stderr, flush=True)
            remote_url = f"{om_url}/zarr/products/{PRODUCT}/copies/series"

            def zarr_point(where: Any, **kw: Any) -> Callable[[], object]:
                def read() -> object:
                    a, b = point()
                    ds = xr.open_zarr(where, zarr_format=3, **kw)
                    return ds["sst"].sel(longitude=a, latitude=b, method="nearest").values

                return read

            http = {"storage_options": {"headers": auth}}
            # As a researcher types it (dask, xarray's chunks), then without dask: a sharded
            # copy's inner chunks become xarray's dask chunks (pydata/xarray#11460).
            for label, kw in (("", {}), (", chunks=None", {"chunks": None})):
                lp50, lp95, hp50, hp95 = timings(
                    zarr_point(version / "series.zarr", **kw),
                    zarr_point(remote_url, **http, **kw),
                    repeat=args.repeat,
                    interleaved=not args.blocks,
                )
                rows.append((f"open_zarr{label} + point series (Zarr/HTTP)", "series",
                             lp50, lp95, hp50, hp95, float("nan"), float("nan")))  # fmt: skip

            # How many requests one open + point series makes, counted in the client (aiohttp).
            import aiohttp

            asked: list[str] = []

            async def count(
                _s: object, _c: object, params: aiohttp.TraceRequestStartParams
            ) -> None:
                ranged = params.headers.get("Range")
                key = params.url.path.rsplit("/series/", 1)[-1]
                asked.append(f"{key} ({ranged})" if ranged else key)

            trace = aiohttp.TraceConfig()
            trace.on_request_start.append(count)
            opts = {
                "storage_options": {"headers": auth, "client_kwargs": {"trace_configs": [trace]}}
            }
            zarr_point(remote_url, **opts)()
            meta = json.loads((version / "series.zarr" / "sst" / "zarr.json").read_text())
            layout = meta["codecs"][0]
            sharded = (f"sharded, inner chunks {layout['configuration']['chunk_shape']}"
                       if layout["name"] == "sharding_indexed" else "not sharded")  # fmt: skip
            grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
            extra.append(f"series copy: chunks {grid}, "
                         f"{sharded}; open_zarr + point series over HTTP made {len(asked)} "
                         f"requests: {', '.join(asked)}")  # fmt: skip

        if "rate" in cases:
            # 5. requests/s, random point queries, concurrency 16
            print("[bench] requests/s at concurrency 16", file=sys.stderr, flush=True)
            om_rps = rate(om_point, args.requests, 16)
            peer_rps = rate(peer_point, args.requests, 16)
            extra.append(
                f"random point series at concurrency 16: oceanmart {om_rps:.1f} req/s, "
                f"xpublish-edr {peer_rps:.1f} req/s, ratio {om_rps / peer_rps:.2f}"
            )
    finally:
        for p in procs:
            p.terminate()
            p.wait()

    print(f"\nServing a {args.steps}x720x1440 float32 product, p50/p95 ms of {args.repeat} "
          f"({'in blocks' if args.blocks else 'interleaved'}) "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus, load "
          f"{os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"{'case':52} {'copy':6} {'floor p50/p95':>15} {'ours p50/p95':>15} "
          f"{'peer p50/p95':>15} {'ours/floor':>10} {'peer/ours':>9}")  # fmt: skip
    for name, copy, fp50, fp95, op50, op95, pp50, pp95 in rows:
        peer_text = "-" if pp50 != pp50 else f"{pp50:.1f}/{pp95:.1f}"
        speedup = "-" if pp50 != pp50 else f"{pp50 / op50:.1f}"
        print(f"{name:52} {copy:6} {fp50:>7.1f}/{fp95:<7.1f} {op50:>7.1f}/{op95:<7.1f} "
              f"{peer_text:>15} {op50 / fp50:>10.2f} {speedup:>9}")  # fmt: skip
    for line in extra:
        print(line)


if __name__ == "__main__":
    main()
