"""Conversion of caller data (pyarrow, pandas, polars, dicts) to Arrow, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ferrostore.errors import InvalidArgument

__all__ = ["to_record_batch", "to_table"]


def to_table(data: Any, *, what: str = "data") -> pa.Table:
    """Return ``data`` as a :class:`pyarrow.Table` without copying where possible.

    Accepts pyarrow tables and record batches, pandas DataFrames (the index is dropped),
    anything exporting the Arrow PyCapsule stream or array interface (polars, DuckDB...),
    and a mapping of column name to values.

    Raises:
        InvalidArgument: ``data`` is none of these.
    """
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    try:
        if module == "pandas":
            return pa.Table.from_pandas(data, preserve_index=False)
        if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
            return pa.table(data)
        if isinstance(data, Mapping):
            return pa.table(dict(data))
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} could not be converted to Arrow: {exc}") from exc
    raise InvalidArgument(
        f"{what} of type {type(data).__name__} is not supported: expected a pyarrow Table or "
        "RecordBatch, a pandas or polars DataFrame, or a dict of columns"
    )


def to_record_batch(data: Any, *, what: str = "data") -> pa.RecordBatch:
    """Return ``data`` as one :class:`pyarrow.RecordBatch` (chunks are combined)."""
    if isinstance(data, pa.RecordBatch):
        return data
    table = to_table(data, what=what)
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return batches[0]
