"""The corpus products the component and encoder tests run on, ingested once per session
(both test modules share the ``compute`` xdist group, so one worker ingests them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from catalog.compute import Source
from catalog.products import ProductInfo, get_product
from catalog.sea_areas import SeaAreaInfo, resolve_area, save_areas
from ingest import ingest, load_spec
from ingest.corpus import corpus_path
from ingest.vector import read_geojson
from oceanmart.db import transaction
from oceanmart.errors import CorpusUnavailable
from tests.conftest import ROOT, Env, _make_env, unavailable

PRODUCTS = ("navy-winds-monthly", "coads-climatology", "levitus-climatology", "ocean-atlas-monthly")
SOURCES = {
    "navy-winds-monthly": "monthly_navy_winds.cdf",
    "coads-climatology": "coads_climatology.cdf",
    "levitus-climatology": "levitus_climatology.cdf",
    "ocean-atlas-monthly": "ocean_atlas_subset.nc",
}


@pytest.fixture(scope="session")
def compute_env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Iterator[Env]:
    made, _ = _make_env("sqlite", tmp_path_factory.mktemp("compute"), corpus_dir)
    try:
        for product in PRODUCTS:
            spec = load_spec(ROOT / "ingest" / "specs" / f"{product}.yaml")
            ingest(spec, sessions=made.sessions, store=made.store, corpus_dir=corpus_dir)
    except CorpusUnavailable as exc:
        unavailable(f"corpus: {exc.detail}")
    with transaction(made.sessions) as s:
        save_areas(s, read_geojson(ROOT / "ingest" / "specs" / "sea-areas.geojson"))
    yield made
    made.sessions.kw["bind"].dispose()


@pytest.fixture(scope="session")
def source(compute_env: Env) -> Source:
    def product(product_id: str) -> ProductInfo:
        with compute_env.sessions() as s:
            return get_product(s, product_id)

    def area(area_id: str) -> SeaAreaInfo:
        with compute_env.sessions() as s:
            return resolve_area(s, area_id)

    return Source(compute_env.store, product, area)


@pytest.fixture(scope="session")
def source_file(corpus_dir: Path) -> Callable[[str], Path]:
    """The corpus file a product was ingested from."""

    def path(product: str) -> Path:
        return corpus_path(SOURCES[product], corpus_dir)

    return path
