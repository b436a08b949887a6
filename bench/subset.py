"""NetCDF subsets over HTTP vs plain in-process xarray vs a bare FastAPI file endpoint.

- xarray: open the source NetCDF, cut the same box/depth/variable, write NetCDF4 to a
  temporary file, in this process (what a researcher with the file would do).
- bare: a FastAPI app whose only route returns an existing file of the same size, in its
  own uvicorn process: the floor of HTTP transfer on this machine.
- oceanmart: `oceanmart serve` in its own process; the request is authenticated,
  entitlement-checked, read from Zarr v3, written as CF NetCDF and streamed.

Prints medians and the ratios oceanmart/xarray and oceanmart/bare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import xarray as xr
from _common import BIN, ROOT, free_port, oceanmart, wait

CASES = {
    "small 10x10, 1 depth": {"bbox": "120,20,130,30", "depth": "0,0", "variables": "TEMP"},
    "medium 20x40, 7 depths": {"bbox": "-10,-20,10,20", "depth": "0,100", "variables": "TEMP"},
    "large global, 20 depths": {"variables": "TEMP"},
}

BARE_APP = """
import sys
from fastapi import FastAPI
from fastapi.responses import FileResponse
import uvicorn
app = FastAPI()
@app.get("/file/{name}")
def send(name: str) -> FileResponse:
    return FileResponse(f"{sys.argv[1]}/{name}", media_type="application/x-netcdf")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def xarray_cut(src: Path, params: dict[str, str], out: Path) -> None:
    """The same cut with plain xarray on the source file's own axes."""
    ds = xr.open_dataset(src)
    var = ds[params["variables"]]
    if "bbox" in params:
        w, s, e, n = map(float, params["bbox"].split(","))
        lon = var.XAXLEVITR
        # the file runs 20.5..379.5: shift the request into that convention
        w2, e2 = (w + 360 if w < 20 else w), (e + 360 if e < 20 else e)
        var = var.sel(YAXLEVITR=slice(s, n)).where((lon >= w2) & (lon <= e2), drop=True)
    if "depth" in params:
        lo, hi = map(float, params["depth"].split(","))
        var = var.sel(ZAXLEVITR=slice(lo, hi))
    var.to_dataset().to_netcdf(
        out, engine="netcdf4", format="NETCDF4", encoding={var.name: {"zlib": True, "complevel": 4}}
    )
    ds.close()


def median_s(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="om-bench-"))
    env = {
        **os.environ,
        "OCEANMART_VAR_DIR": str(work / "var"),
        "OCEANMART_CORPUS_DIR": os.environ.get("OCEANMART_CORPUS_DIR", str(ROOT / ".cache/corpus")),
        "OCEANMART_LOG_LEVEL": "WARNING",
    }
    print("[bench] preparing: migrate, ingest Levitus, keys", file=sys.stderr)
    oceanmart(env, "db", "upgrade")
    oceanmart(env, "ingest", str(ROOT / "ingest/specs/levitus-climatology.yaml"))
    oceanmart(env, "accounts", "create", "bench", "--kind", "research")
    key = oceanmart(env, "keys", "create", "--account", "bench").splitlines()[-1]
    oceanmart(
        env, "entitlements", "grant", "--account", "bench", "--product", "levitus-climatology"
    )
    src = Path(env["OCEANMART_CORPUS_DIR"]) / "ferret-datasets" / "levitus_climatology.cdf"

    om_port, bare_port = free_port(), free_port()
    files = work / "files"
    files.mkdir()
    procs = [
        subprocess.Popen(
            [str(BIN / "oceanmart"), "serve", "--port", str(om_port)],
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-c", BARE_APP, str(files), str(bare_port)], stderr=subprocess.DEVNULL
        ),
    ]
    try:
        wait(f"http://127.0.0.1:{om_port}/healthz")
        wait(f"http://127.0.0.1:{bare_port}/docs")
        om = httpx.Client(
            base_url=f"http://127.0.0.1:{om_port}",
            timeout=120,
            headers={"Authorization": f"Bearer {key}"},
        )
        bare = httpx.Client(base_url=f"http://127.0.0.1:{bare_port}", timeout=120)
        rows = []
        for i, (name, params) in enumerate(CASES.items()):
            print(f"[bench] {i + 1}/{len(CASES)} {name}", file=sys.stderr)
            url = "/v1/products/levitus-climatology/subset"
            first = om.get(url, params=params)
            first.raise_for_status()
            (files / f"{i}.nc").write_bytes(first.content)
            out = work / f"x{i}.nc"
            t_x = median_s(lambda p=params, o=out: xarray_cut(src, p, o), args.repeat)
            t_om = median_s(
                lambda p=params, u=url: om.get(u, params=p).raise_for_status(), args.repeat
            )
            t_b = median_s(lambda n=i: bare.get(f"/file/{n}.nc").raise_for_status(), args.repeat)
            rows.append((name, len(first.content), t_x, t_b, t_om))
    finally:
        for p in procs:
            p.terminate()
            p.wait()

    print(
        f"\nNetCDF subsets of Levitus TEMP, median of {args.repeat} "
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus)"
    )
    print(
        f"{'case':26} {'bytes':>9} {'xarray ms':>10} {'bare ms':>8} {'oceanmart ms':>13}"
        f" {'om/xarray':>10} {'om/bare':>8}"
    )
    for name, size, t_x, t_b, t_om in rows:
        print(
            f"{name:26} {size:>9} {t_x * 1e3:>10.1f} {t_b * 1e3:>8.1f} {t_om * 1e3:>13.1f}"
            f" {t_om / t_x:>10.2f} {t_om / t_b:>8.1f}"
        )


if __name__ == "__main__":
    main()
