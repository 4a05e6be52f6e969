"""The offline store: Parquet scans (projected, time-filtered) and the point-in-time join.

The join itself runs in the Rust core (``ferrostore._core.point_in_time_join``: parallel,
GIL released).

Example:
    >>> import datetime as dt, pyarrow as pa
    >>> from ferrostore.features.offline import point_in_time_join
    >>> entities = pa.table({"id": [1], "ts": [dt.datetime(2024, 1, 2)]})
    >>> rows = pa.table({"id": [1, 1], "ts": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 3)],
    ...                  "x": [10, 30]})
    >>> point_in_time_join(entities, rows, entity_keys=["id"], feature_keys=["id"],
    ...     entity_timestamp="ts", feature_timestamp="ts", created_timestamp=None,
    ...     ttl_micros=None, columns=[("x", "x")]).column("x").to_pylist()
    [10]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.types as pat

from ferrostore import _core
from ferrostore.errors import InvalidArgument, NotFound, SchemaMismatch, StorageError
from ferrostore.features.definitions import FeatureView, FileSource

__all__ = [
    "entity_timestamp_column",
    "historical_features",
    "point_in_time_join",
    "scan_batches",
    "source_schema",
    "to_utc_micros",
]

_UTC_US = pa.timestamp("us", tz="UTC")
# Parquet's pre-buffering keeps every byte range it read until the whole file is done:
# a streamed scan of one large file would end up holding all of it.
_STREAMING_READS = ds.ParquetFragmentScanOptions(pre_buffer=False)


def to_utc_micros(column: pa.Array | pa.ChunkedArray, *, what: str = "column") -> pa.Array:
    """A timestamp column as int64 microseconds since the epoch (UTC; naive is UTC).

    Args:
        column: A timestamp column of any unit and zone, or dates.
        what: How to name the column in errors.

    Returns:
        An int64 array with the column's nulls.

    Raises:
        SchemaMismatch: The column does not hold timestamps.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    if not (pat.is_timestamp(t) or pat.is_date(t)):
        raise SchemaMismatch(f"{what} has type {t}: expected a timestamp")
    if pat.is_timestamp(t) and t.tz is None:
        column = column.cast(pa.timestamp(t.unit, tz="UTC"))
    return column.cast(_UTC_US, safe=False).cast(pa.int64())


def _require(schema: pa.Schema, names: Sequence[str], what: str) -> None:
    missing = [n for n in names if n not in schema.names]
    if missing:
        raise SchemaMismatch(f"{what} lacks column(s) {missing}: it has columns {schema.names}")


def point_in_time_join(
    entities: pa.Table | pa.RecordBatch,
    features: pa.Table | pa.RecordBatchReader,
    *,
    entity_keys: Sequence[str],
    feature_keys: Sequence[str],
    entity_timestamp: str,
    feature_timestamp: str,
    created_timestamp: str | None,
    ttl_micros: int | None,
    columns: Sequence[tuple[str, str]],
) -> pa.RecordBatch:
    """Join feature rows to entity rows as of each entity row's time.

    For each entity row: the feature row with the same key whose event time is ``<=`` the
    entity time and ``>=`` the entity time minus ttl (no lower bound for ``None``/0); ties on
    event time go to the greatest created time (a null created time is older than any real
    one), then to the row appearing later in ``features``; nulls when none matches. Exactly
    one output row per entity row, in input order. Runs in the Rust core (GIL released).

    Args:
        entities: The entity rows (keys and timestamp at least).
        features: The feature rows (keys, event time, created time, feature columns), as
            a table or a stream of batches (read once).
        entity_keys: Key columns of ``entities``.
        feature_keys: The matching key columns of ``features``.
        entity_timestamp: The entity rows' time column.
        feature_timestamp: The feature rows' event time column.
        created_timestamp: The feature rows' created time column, or ``None``.
        ttl_micros: The window length in microseconds, or ``None``/0 for no lower bound.
        columns: ``(feature column, output name)`` pairs.

    Returns:
        One batch with one column per output name.

    Raises:
        SchemaMismatch: A missing column, a non-timestamp time column, or keys of
            different kinds (integer against string).
    """
    if isinstance(entities, pa.RecordBatch):
        entities = pa.Table.from_batches([entities])
    _require(entities.schema, [*entity_keys, entity_timestamp], "the entity rows")
    needed = [*feature_keys, feature_timestamp, *(src for src, _ in columns)]
    _require(
        features.schema, needed + ([created_timestamp] if created_timestamp else []), "the source"
    )
    if len(entity_keys) != len(feature_keys):
        raise InvalidArgument(f"entity_keys {entity_keys} and feature_keys {feature_keys} differ")
    return _core.point_in_time_join(
        entities,
        features,
        entity_keys=list(entity_keys),
        feature_keys=list(feature_keys),
        entity_timestamp=entity_timestamp,
        feature_timestamp=feature_timestamp,
        created_timestamp=created_timestamp,
        ttl_micros=ttl_micros or None,
        columns=[(src, out) for src, out in columns],
    )


def resolve_path(source: FileSource, root: str | os.PathLike[str]) -> Path:
    """The source's path, relative paths resolved against the repo root ``root``."""
    path = Path(source.path).expanduser()
    return path if path.is_absolute() else Path(root) / path


def _dataset(source: FileSource, root: str | os.PathLike[str]) -> ds.Dataset:
    path = resolve_path(source, root)
    if not path.exists():
        raise NotFound(
            f"Parquet source {source.path!r} does not exist (looked for {str(path)!r}): "
            "expected a Parquet file or a folder of Parquet files"
        )
    try:
        return ds.dataset(str(path), format="parquet")
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"Parquet source {str(path)!r} cannot be read: {exc}") from exc


def source_schema(source: FileSource, root: str | os.PathLike[str]) -> pa.Schema:
    """The Arrow schema of a source's Parquet data, column names as in the files.

    Raises:
        NotFound: The path does not exist.
        StorageError: It is not readable Parquet.
    """
    return _dataset(source, root).schema


def _bound(value: int, ts_type: pa.DataType) -> pa.Scalar:
    scalar = pa.scalar(value, pa.int64()).cast(_UTC_US)
    target = ts_type if ts_type.tz is not None else pa.timestamp(ts_type.unit, tz="UTC")
    scalar = scalar.cast(target, safe=False)
    return scalar if ts_type.tz is not None else scalar.cast(ts_type)


def _filter(schema: pa.Schema, column: str, start: int | None, end: int | None) -> Any:
    if column not in schema.names:
        raise SchemaMismatch(
            f"timestamp column {column!r} is not in the source: it has columns {schema.names}"
        )
    ts_type = schema.field(column).type
    if not pat.is_timestamp(ts_type):
        raise SchemaMismatch(
            f"timestamp column {column!r} has type {ts_type}: expected a timestamp"
        )
    expr = None
    if start is not None:
        expr = ds.field(column) >= _bound(start, ts_type)
    if end is not None:
        upper = ds.field(column) <= _bound(end, ts_type)
        expr = upper if expr is None else expr & upper
    return expr


def _project(source: FileSource, view_columns: Sequence[str]) -> list[str]:
    src = [source.source_column(c) for c in view_columns]
    extra = [source.timestamp_field]
    if source.created_timestamp_column:
        extra.append(source.created_timestamp_column)
    return list(dict.fromkeys([*src, *extra]))


def _rename(table: pa.Table, source: FileSource) -> pa.Table:
    if not source.field_mapping:
        return table
    return table.rename_columns([source.field_mapping.get(n, n) for n in table.column_names])


def scan_batches(
    source: FileSource,
    root: str | os.PathLike[str],
    view_columns: Sequence[str],
    *,
    start: int | None,
    end: int | None,
    batch_size: int = 65_536,
) -> Iterator[pa.Table]:
    """Stream a source's rows in ``[start, end]`` (µs, UTC), projected, renamed to view names.

    Args:
        source: The source.
        root: The repo root for relative paths.
        view_columns: Key and feature names (as the view names them) to read; the timestamp
            columns are added.
        start: Lowest event time kept, or ``None``.
        end: Highest event time kept, or ``None``.
        batch_size: Rows per batch at most.

    Yields:
        Tables of at most ``batch_size`` rows.

    Raises:
        NotFound: The path does not exist.
        SchemaMismatch: A column is missing from the source.
    """
    dataset = _dataset(source, root)
    columns = _project(source, view_columns)
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise SchemaMismatch(
            f"source {source.path!r} lacks column(s) {missing}: it has {dataset.schema.names}"
        )
    expr = _filter(dataset.schema, source.timestamp_field, start, end)
    try:
        # Little readahead: the consumer writes slower than Parquet decodes, and every
        # batch queued ahead is memory held until it is written.
        batches = dataset.to_batches(
            columns=columns,
            filter=expr,
            batch_size=batch_size,
            batch_readahead=1,
            fragment_readahead=1,
            fragment_scan_options=_STREAMING_READS,
        )
        for batch in batches:
            if batch.num_rows:
                yield _rename(pa.Table.from_batches([batch]), source)
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"reading Parquet source {source.path!r} failed: {exc}") from exc


def scan(
    source: FileSource,
    root: str | os.PathLike[str],
    view_columns: Sequence[str],
    *,
    start: int | None,
    end: int | None,
) -> pa.RecordBatchReader:
    """A stream of the rows of a source that may hold event times in ``[start, end]``.

    As :func:`scan_batches`, except that only whole row groups are skipped here (by their
    statistics) and the batches come as the scan decodes them: the point-in-time join
    keeps the rows of each batch inside its window as it reads them, so neither a row
    filter pass nor a copy of every column is paid here and the rows outside the window
    are never held all at once.
    """
    dataset = _dataset(source, root)
    columns = _project(source, view_columns)
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise SchemaMismatch(
            f"source {source.path!r} lacks column(s) {missing}: it has {dataset.schema.names}"
        )
    expr = _filter(dataset.schema, source.timestamp_field, start, end)
    mapping = source.field_mapping or {}
    try:
        if expr is not None:
            row_groups = [
                row_group
                for fragment in dataset.get_fragments(filter=expr)
                for row_group in fragment.split_by_row_group(expr)
            ]
            dataset = ds.FileSystemDataset(
                row_groups, dataset.schema, dataset.format, dataset.filesystem
            )
        projection = {mapping.get(c, c): ds.field(c) for c in columns}
        # Little readahead: decoded batches queued ahead of the join are memory held twice.
        scanner = dataset.scanner(
            columns=projection,
            batch_readahead=1,
            fragment_readahead=1,
            fragment_scan_options=_STREAMING_READS,
        )
        return scanner.to_reader()
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"reading Parquet source {source.path!r} failed: {exc}") from exc


def entity_timestamp_column(schema: pa.Schema) -> str:
    """The entity rows' time column: ``event_timestamp``, else the only timestamp column.

    Raises:
        SchemaMismatch: No ``event_timestamp`` and not exactly one timestamp column.
    """
    if "event_timestamp" in schema.names:
        return "event_timestamp"
    candidates = [f.name for f in schema if pat.is_timestamp(f.type) or pat.is_date(f.type)]
    if len(candidates) == 1:
        return candidates[0]
    raise SchemaMismatch(
        "entity_df needs an 'event_timestamp' column or exactly one datetime column: "
        f"it has datetime columns {candidates} among {schema.names}"
    )


def _micros_td(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def historical_features(
    entity: pa.Table,
    requests: Sequence[tuple[FeatureView, Sequence[str]]],
    *,
    root: str | os.PathLike[str],
    full_feature_names: bool = False,
) -> pa.Table:
    """Every column of ``entity`` followed by the requested features, point-in-time correct.

    Args:
        entity: The entity rows, with each view's join keys and a timestamp column.
        requests: ``(view, feature names)`` pairs.
        root: The repo root for relative source paths.
        full_feature_names: Name outputs ``view__feature`` instead of ``feature``.

    Returns:
        A table with one row per entity row, in order.

    Raises:
        InvalidArgument: No entity rows, or two outputs with the same name.
        SchemaMismatch: A missing join key or timestamp column, mismatched key types.
        NotFound: A missing Parquet source.
    """
    if entity.num_rows == 0:
        raise InvalidArgument("entity_df has no rows: expected at least one entity row")
    ts_col = entity_timestamp_column(entity.schema)
    outputs: list[str] = []
    for view, feats in requests:
        outputs += [f"{view.name}__{f}" if full_feature_names else f for f in feats]
    seen: set[str] = set(entity.column_names)
    for name in outputs:
        if name in seen:
            hint = "" if full_feature_names else "; pass full_feature_names=True"
            raise InvalidArgument(
                f"output column {name!r} would appear twice (in entity_df or another view){hint}"
            )
        seen.add(name)
    ets = to_utc_micros(entity.column(ts_col), what=f"entity_df column {ts_col!r}")
    bounds = pc.min_max(ets).as_py()
    lo, hi = bounds["min"], bounds["max"]
    result = entity
    for view, feats in requests:
        keys = view.join_keys
        missing = [k for k in keys if k not in entity.column_names]
        if missing:
            raise SchemaMismatch(
                f"entity_df lacks join key(s) {missing} of feature view {view.name!r}: it has "
                f"columns {entity.column_names}"
            )
        ttl = _micros_td(view.ttl)
        src = view.source
        if lo is None:
            table = scan(src, root, [*keys, *feats], start=0, end=-1)
        else:
            start = lo - ttl if ttl else None
            table = scan(src, root, [*keys, *feats], start=start, end=hi)
        names = [f"{view.name}__{f}" if full_feature_names else f for f in feats]
        joined = point_in_time_join(
            entity.select([*keys, ts_col]),
            table,
            entity_keys=keys,
            feature_keys=keys,
            entity_timestamp=ts_col,
            feature_timestamp=src.timestamp_field,
            created_timestamp=src.created_timestamp_column,
            ttl_micros=ttl or None,
            columns=list(zip(feats, names, strict=True)),
        )
        for feat, name in zip(feats, names, strict=True):
            column = joined.column(name)
            wanted = view.feature(feat).dtype.to_arrow()
            if column.type != wanted:
                with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    column = column.cast(wanted)
            result = result.append_column(name, column)
    return result
