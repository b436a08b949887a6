"""Keep xarray from importing ``dask.array`` when no dask array is in play.

xarray asks "is this a dask array?" whenever it wraps data in a variable
(``as_compatible_data``, on every indexing of a coordinate), and its answer imports
``dask.array`` to get the class, which pulls in scipy's fft and sparse modules: ~0.4 s
of CPU, a fifth of a small file's whole ingest (ETOPO5), for a question whose answer is
"no" in a process that has no dask array. ``defer_dask_array_import`` gives xarray's
cache of duck-array types a stand-in class whose ``isinstance`` asks the real
``dask.array.Array`` only once ``dask.array`` has been imported (by the dask path, or
anyone else), so the answer stays exact either way.
"""

from __future__ import annotations

import sys
from typing import Any


class _DaskArrayCheck(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        module = sys.modules.get("dask.array")
        return module is not None and isinstance(obj, module.Array)


class _DaskArray(metaclass=_DaskArrayCheck):
    """Stands for ``dask.array.Array`` in ``isinstance`` checks."""


def defer_dask_array_import() -> bool:
    """Install the stand-in unless xarray already knows dask's array type; True when the
    stand-in is (now) in place. Harmless when xarray's internals differ: nothing changes."""
    try:
        import dask
        from packaging.version import Version
        from xarray.namedarray import pycompat

        cache = pycompat._cached_duck_array_modules
        known = cache.get("dask")
        if known is not None:
            return known.type == (_DaskArray,)
        entry = object.__new__(pycompat.DuckArrayModule)
        entry.module = dask
        entry.version = Version(dask.__version__)
        entry.type = (_DaskArray,)
        entry.available = True
        cache["dask"] = entry
    except (ImportError, AttributeError):
        return False
    return True
