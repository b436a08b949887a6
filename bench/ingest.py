"""Ingest throughput and memory: OceanMart (both copies, validated) vs plain xarray (one copy).

Peer, measured in the same run: ``xr.open_dataset(src).to_zarr(dst)``, the one-liner a
researcher would write. Each run is its own process; wall time, CPU time and peak RSS
(``ru_maxrss``, ``ru_utime + ru_stime`` of the child) are reported.

Datasets: ETOPO5 from the corpus (9.3 M values) and generated 720x1440 float32 daily
series of 182 and 365 steps (189 M and 378 M values), so that doubling the input shows
whether memory grows with it.

Run: ``.venv/bin/python bench/ingest.py [--steps 182,365] [--repeat N] [--keep]``.
With ``--repeat N`` every dataset is run N times, plain xarray and OceanMart alternating
(plain, ours, plain, ours...), so load that comes and goes hits both alike; each run is
a row, with the UTC time and load average at its start.

Every run writes into its own folder, and nothing is deleted until the end: on this
machine's ext4 (no journal) a file or folder created within ~30 s of thousands of
deletions makes the kernel scan past every recently deleted inode (``recently_deleted``,
``find_inode_bit``: 15% of an ingest's CPU samples in ``perf``), so deleting one run's
output made the next run, of either side, pay for it. Needs ~12 GB free in the work
folder with the default steps and ``--repeat 2``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import netCDF4
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

PLAIN = "import sys, xarray as xr; xr.open_dataset(sys.argv[1]).to_zarr(sys.argv[2], zarr_format=3)"


def generate(path: Path, steps: int) -> None:
    """A smooth SST-like field with weather noise, written one day at a time."""
    ny, nx = 720, 1440
    lat = np.linspace(-89.875, 89.875, ny)
    lon = np.linspace(-179.875, 179.875, nx)
    base = (28 * np.cos(np.deg2rad(lat))[:, None] - 2) * np.ones((1, nx), "f4")
    rng = np.random.default_rng(42)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", steps)
        nc.createDimension("lat", ny)
        nc.createDimension("lon", nx)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2020-01-01"
        t[:] = np.arange(steps)
        y = nc.createVariable("lat", "f8", ("lat",))
        y.units = "degrees_north"
        y[:] = lat
        x = nc.createVariable("lon", "f8", ("lon",))
        x.units = "degrees_east"
        x[:] = lon
        v = nc.createVariable("sst", "f4", ("time", "lat", "lon"), chunksizes=(1, ny, nx))
        v.units = "degC"
        for i in range(steps):
            season = 2 * np.sin(2 * np.pi * i / 365)
            v[i] = base + season + rng.normal(0, 0.3, (ny, nx)).astype("f4")


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system, all threads) of one
    child process, from its own rusage (wait4)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{argv[0]} failed: {err.read()[-2000:].decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", default="182,365", help="generated series lengths")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per dataset, plain and ours alternating"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="om-bench-ingest-"))
    corpus = Path(os.environ.get("OCEANMART_CORPUS_DIR", ROOT / ".cache" / "corpus"))
    sources: list[tuple[str, Path, int]] = []
    etopo = corpus / "ferret-datasets" / "etopo5.cdf"
    if not etopo.exists():
        subprocess.run(
            [str(BIN / "oceanmart"), "corpus", "fetch"],
            check=True,
            env={**os.environ, "OCEANMART_CORPUS_DIR": str(corpus)},
        )
    sources.append(("ETOPO5", etopo, 2161 * 4320))
    for steps in sorted(int(s) for s in args.steps.split(",")):
        path = work / f"series{steps}.nc"
        print(f"[bench] generating {steps}x720x1440 float32", file=sys.stderr, flush=True)
        generate(path, steps)
        sources.append((f"generated {steps}x720x1440", path, steps * 720 * 1440))

    rows = []
    load_before = os.getloadavg()
    for i, (name, src, values) in enumerate(sources):
        for k in range(args.repeat):
            label = f"{name}, run {k + 1}" if args.repeat > 1 else name
            started = datetime.now(UTC).strftime("%H:%M:%S")
            load = os.getloadavg()[0]
            print(f"[bench] {label}: plain xarray", file=sys.stderr, flush=True)
            plain_s, plain_rss, plain_cpu = measure(
                [sys.executable, "-c", PLAIN, str(src), str(work / f"plain{i}-{k}.zarr")],
                dict(os.environ),
            )
            print(f"[bench] {label}: oceanmart", file=sys.stderr, flush=True)
            env = {
                **os.environ,
                "OCEANMART_VAR_DIR": str(work / f"var{i}-{k}"),
                "OCEANMART_CORPUS_DIR": str(corpus),
                "OCEANMART_LOG_LEVEL": "WARNING",
            }
            subprocess.run(
                [str(BIN / "oceanmart"), "db", "upgrade"], env=env, check=True, capture_output=True
            )
            om_s, om_rss, om_cpu = measure(
                [str(BIN / "oceanmart"), "ingest", str(src), "--product", f"bench-{i}"], env
            )
            mb = src.stat().st_size / 1e6
            plain = (plain_s, plain_rss, plain_cpu)
            ours = (om_s, om_rss, om_cpu)
            rows.append((label, values, mb, *plain, *ours, started, load))
    if not args.keep:
        shutil.rmtree(work)

    print(
        f"\nIngest, python {sys.version.split()[0]}, {os.cpu_count()} cpus; OceanMart writes "
        "and validates two copies, plain xarray writes one"
    )
    print(f"load average before: {load_before}, after: {os.getloadavg()}")
    print(
        f"{'dataset':34} {'UTC':>8} {'load':>5} {'values':>11} {'src MB':>7} {'plain s':>8} "
        f"{'plain MB/s':>10} {'plain RSS':>9} {'plain cpu':>9} {'ours s':>7} {'ours MB/s':>9} "
        f"{'ours RSS':>8} {'ours cpu':>8} {'time ratio':>10} {'cpu ratio':>9}"
    )
    for name, values, mb, ps, prss, pcpu, os_, orss, ocpu, utc, load in rows:
        print(
            f"{name:34} {utc:>8} {load:>5.1f} {values:>11} {mb:>7.0f} {ps:>8.2f} "
            f"{mb / ps:>10.1f} {prss:>7.0f}MB {pcpu:>8.2f}s {os_:>7.2f} {mb / os_:>9.1f} "
            f"{orss:>6.0f}MB {ocpu:>7.2f}s {os_ / ps:>10.2f} {ocpu / pcpu:>9.2f}"
        )
    print(
        "\nRSS is the peak resident set of each run's own process (wait4 ru_maxrss); cpu is"
        " its user + system time (all threads), which other load on the machine changes less."
    )


if __name__ == "__main__":
    main()
