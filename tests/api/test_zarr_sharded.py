"""Zarr over HTTP of a sharded series copy: zarr-python reads a shard's index with a
suffix range and each inner chunk with a range; ranges are metered by the inner chunks
they deliver, the index is free."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from sqlalchemy import select

from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from pricing.metering import AccessRecord
from tests.conftest import Server, unique


def _buyer(server: Server, product: str) -> tuple[str, str]:
    """(key, key id) of a new account entitled to ``product``."""
    name = unique("shard")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, product, granted_by="test")
        info, key = create_key(s, name, "catalog:read,data:read")
        return key, info.id


def _series_path(server: Server, product: str) -> str:
    from catalog.products import get_product

    with server.env.sessions() as s:
        version = get_product(s, product).version
    assert version is not None
    return server.env.store.location(version.store_path, "series.zarr")


def _records(server: Server, key_id: str) -> list[tuple[str, int]]:
    """(channel, cells) of what was metered to one key."""
    with server.env.sessions() as s:
        rows = s.scalars(select(AccessRecord).where(AccessRecord.key_id == key_id))
        return [(r.channel, r.cells) for r in rows]


def _shard_index(path: str, key: str, count: int) -> np.ndarray:
    data = Path(path, key).read_bytes()
    return np.frombuffer(data[-(16 * count + 4) : -4], "<u8").reshape(count, 2)


def test_a_point_series_over_http_reads_one_inner_chunk_and_pays_for_it(
    server: Server, coads_sharded: str
) -> None:
    key, key_id = _buyer(server, coads_sharded)
    local = xr.open_zarr(_series_path(server, coads_sharded), zarr_format=3)
    assert local["SST"].encoding["chunks"] == (12, 2, 2)
    assert local["SST"].encoding["shards"] == (12, 64, 64)
    remote = xr.open_zarr(
        f"{server.url}/zarr/products/{coads_sharded}/copies/series",
        storage_options={"headers": {"Authorization": f"Bearer {key}"}},
        zarr_format=3,
    )
    got = remote["SST"].sel(longitude=-150.3, latitude=10.2, method="nearest").values
    want = local["SST"].sel(longitude=-150.3, latitude=10.2, method="nearest").values
    assert got.shape == (12,) and np.isfinite(got).any()
    np.testing.assert_array_equal(got, want)
    # One metered delivery: the inner chunk (12 x 2 x 2 values); the index was free.
    assert _records(server, key_id) == [("zarr", 48)]
    meta = json.loads(Path(_series_path(server, coads_sharded), "SST", "zarr.json").read_text())
    assert meta["codecs"][0]["name"] == "sharding_indexed"


def test_shard_ranges_are_served_and_metered_by_inner_chunk(
    server: Server, coads_sharded: str
) -> None:
    path = _series_path(server, coads_sharded)
    shard_key = "SST/c/0/1/1"
    shard = Path(path, shard_key).read_bytes()
    count = 32 * 32  # inner chunks per (12, 64, 64) shard of (12, 2, 2)
    index = _shard_index(path, shard_key, count)
    stored = index[index[:, 0] != 2**64 - 1]
    (o1, n1), (o2, _) = sorted(map(tuple, stored.tolist()))[:2]
    key, _ = _buyer(server, coads_sharded)
    url = f"/zarr/products/{coads_sharded}/copies/series/{shard_key}"

    def access(r: object) -> AccessRecord | None:
        headers = r.headers  # type: ignore[attr-defined]
        if "oceanmart-access-id" not in headers:
            return None
        with server.env.sessions() as s:
            return s.get(AccessRecord, headers["oceanmart-access-id"])

    with server.client(key) as c:
        # The index, as zarr-python asks for it: a suffix range, served and free.
        r = c.get(url, headers={"Range": f"bytes=-{16 * count + 4}"})
        assert r.status_code == 206 and r.content == shard[-(16 * count + 4) :]
        assert (
            r.headers["content-range"]
            == f"bytes {len(shard) - 16 * count - 4}-{len(shard) - 1}/{len(shard)}"
        )
        assert access(r) is None
        # One inner chunk: its cells and the bytes sent.
        r = c.get(url, headers={"Range": f"bytes={o1}-{o1 + n1 - 1}"})
        assert r.status_code == 206 and r.content == shard[o1 : o1 + n1]
        row = access(r)
        assert row is not None and (row.cells, row.bytes) == (48, n1)
        # A range reaching one byte into the next inner chunk pays for both.
        r = c.get(url, headers={"Range": f"bytes={o1}-{o2}"})
        row = access(r)
        assert (
            r.status_code == 206 and row is not None and (row.cells, row.bytes) == (96, o2 - o1 + 1)
        )
        # An open-ended range from the start of the index's last bytes is still the index.
        r = c.get(url, headers={"Range": f"bytes={len(shard) - 4}-"})
        assert r.status_code == 206 and r.content == shard[-4:] and access(r) is None
        # The whole shard: every cell of it.
        r = c.get(url)
        row = access(r)
        assert r.status_code == 200 and r.content == shard
        assert row is not None and (row.cells, row.bytes) == (12 * 64 * 64, len(shard))
        # Unsatisfiable: a problem, with the size; several ranges: the whole object.
        r = c.get(url, headers={"Range": f"bytes={len(shard)}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(shard)}"
        assert r.headers["content-type"] == "application/problem+json"
        r = c.get(url, headers={"Range": "bytes=0-1,5-9"})
        assert r.status_code == 200 and r.content == shard
        head = c.head(url, headers={"Range": f"bytes={o1}-{o1 + n1 - 1}"})
        assert head.status_code == 206 and head.headers["content-length"] == str(n1)
        assert access(head) is None


def test_edr_reads_the_sharded_series_copy_and_answers_the_map_copys_values(
    server: Server, coads_sharded: str
) -> None:
    key, key_id = _buyer(server, coads_sharded)
    selection = {"point": [-150.3, 10.2], "variables": ["SST", "AIRT"]}
    q = {"coords": "POINT(-150.3 10.2)", "parameter-name": "SST,AIRT"}
    with server.client(key) as c:
        plan = c.post("/v1/plans", json={"product": coads_sharded, "selection": selection})
        r = c.get(f"/edr/collections/{coads_sharded}/position", params=q)
    assert plan.status_code == 200 and r.status_code == 200, (plan.text, r.text)
    # The series copy, one inner chunk of 12 x 2 x 2 per variable: 4 bytes decoded per
    # byte returned (the whole 12 x 64 x 64 shard before sharding: 4,096).
    p = plan.json()
    assert p["copy"] == "series" and p["chunks"] == 2
    assert p["bytes_to_read"] == 2 * 12 * 2 * 2 * 4 and p["bytes"] == 2 * 12 * 4
    assert p["copies"]["map"]["chunks"] == 24
    map_copy = xr.open_zarr(_series_path(server, coads_sharded).replace("series", "map"))
    for name in ("SST", "AIRT"):
        want = map_copy[name].sel(longitude=-150.3, latitude=10.2, method="nearest").values
        got = np.array([np.nan if v is None else v for v in r.json()["ranges"][name]["values"]])
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert np.isfinite(got).sum() >= 6
    assert _records(server, key_id) == [("edr", 24)]
