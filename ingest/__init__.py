"""Ingest: read source files, normalise them to CF, and publish versioned Zarr products."""

from ingest.pipeline import IngestResult, ingest
from ingest.spec import ProductSpec, infer_spec, load_spec

__all__ = ["IngestResult", "ProductSpec", "infer_spec", "ingest", "load_spec"]
