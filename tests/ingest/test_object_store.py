"""A data folder on an object store: ingest to S3 (a local moto S3 server), serve from it.

The same source gives the same version on S3 as on a local folder; a publish cut short
(some objects copied, no marker) is not a version, and the next run finishes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
import xarray as xr
from moto.server import ThreadedMotoServer

from catalog.store import MARKER, DataStore
from ingest import ingest, load_spec
from oceanmart.accounts import create_account, create_key
from oceanmart.db import make_engine, make_sessionmaker, transaction, upgrade
from oceanmart.settings import Settings
from pricing.entitlements import grant
from tests.conftest import LEVITUS_SPEC, Env, running, unique


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, object]]:
    """A real S3 API on a local port, and the storage options that reach one bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    ).create_bucket(Bucket="ocean")
    yield {
        "key": "test-key",
        "secret": "test-secret",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    server.stop()


def _s3_env(tmp_path: Path, corpus: Path, options: dict[str, object]) -> Env:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'om.db'}",
        data_url=f"s3://ocean/{unique('data')}",
        data_storage_options=json.dumps(options),
        var_dir=tmp_path / "var",
        corpus_dir=corpus,
        log_format="json",
    )
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return Env("sqlite", settings, make_sessionmaker(engine), DataStore.from_settings(settings))


def test_ingest_to_s3_and_serve_a_subset_from_it(
    s3: dict[str, object], tmp_path: Path, corpus_dir: Path, levitus_file: Path
) -> None:
    env = _s3_env(tmp_path, corpus_dir, s3)
    spec = load_spec(LEVITUS_SPEC)
    remote = ingest(spec, sessions=env.sessions, store=env.store, corpus_dir=corpus_dir)
    local_store = DataStore(tmp_path / "local")
    local = ingest(spec, sessions=env.sessions, store=local_store, corpus_dir=corpus_dir)
    assert remote.version_id == local.version_id
    final = env.store.location(remote.store_path)
    assert final.startswith("s3://ocean/") and env.store.exists(f"{final}/{MARKER}")
    assert not env.store.staging_runs()
    for copy in ("map", "series"):
        a = env.store.open_version(remote.store_path, copy).load()
        b = local_store.open_version(local.store_path, copy).load()
        xr.testing.assert_identical(a, b)

    with transaction(env.sessions) as s:
        create_account(s, "s3-buyer", "research")
        grant(s, "s3-buyer", spec.id, granted_by="test")
        key = create_key(s, "s3-buyer", "catalog:read,data:read")[1]
    with running(env.settings) as url:
        r = httpx.get(
            f"{url}/v1/products/{spec.id}/subset",
            params={"bbox": "-10,-5,10,5", "depth": "0,50", "variables": "TEMP"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
    assert r.status_code == 200, r.text
    (tmp_path / "subset.nc").write_bytes(r.content)
    got = xr.open_dataset(tmp_path / "subset.nc").load()
    want = b.TEMP.sel(longitude=slice(-10, 10), latitude=slice(-5, 5), depth=slice(0, 50))
    np.testing.assert_array_equal(got.TEMP.values, want.values)


def test_a_publish_cut_short_on_s3_is_not_a_version_and_is_finished_next_time(
    s3: dict[str, object], tmp_path: Path, corpus_dir: Path, levitus_file: Path
) -> None:
    env = _s3_env(tmp_path, corpus_dir, s3)
    spec = load_spec(LEVITUS_SPEC)
    first = ingest(spec, sessions=env.sessions, store=env.store, corpus_dir=corpus_dir)
    final = env.store.location(first.store_path)
    # As if the copy had stopped half way: the marker and some objects are missing.
    objects = sorted(env.store.fs.find(final))
    marker = next(o for o in objects if o.endswith(MARKER))
    env.store.fs.rm([marker, *objects[len(objects) // 2 :]])
    assert not env.store.is_published(final)
    with pytest.raises(Exception, match="missing"):
        DataStore.from_settings(env.settings).open_version(first.store_path)

    again = ingest(spec, sessions=env.sessions, store=env.store, corpus_dir=corpus_dir)
    assert again.version_id == first.version_id
    assert sorted(env.store.fs.find(final)) == objects
    reopened = DataStore.from_settings(env.settings).open_version(again.store_path).load()
    assert reopened.TEMP.count() > 0


def test_bad_storage_options_are_a_configuration_error(tmp_path: Path) -> None:
    from oceanmart.errors import ConfigurationError

    settings = Settings(data_url="s3://ocean/x", data_storage_options="[1, 2]")
    with pytest.raises(ConfigurationError, match="OCEANMART_DATA_STORAGE_OPTIONS"):
        DataStore.from_settings(settings)
    with pytest.raises(ConfigurationError, match="OCEANMART_DATA_URL"):
        DataStore("nosuchprotocol://x/y")
