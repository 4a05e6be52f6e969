"""A plain, obviously correct point-in-time join: nested loops over Python values.

The property tests compare ``ferrostore.features.offline.point_in_time_join`` (the Rust kernel)
with :func:`reference_join`. Tie rules: among rows with equal key and event time the greatest
created time wins, a null created time being older than any real one; on a full tie the row
appearing later in the source wins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    raise TypeError(f"not a datetime: {value!r}")


def _key(value: Any) -> Any:
    return value


def reference_join(
    entities: pa.Table,
    features: pa.Table,
    *,
    entity_keys: Sequence[str],
    feature_keys: Sequence[str],
    entity_timestamp: str,
    feature_timestamp: str,
    created_timestamp: str | None,
    ttl_micros: int | None,
    columns: Sequence[tuple[str, str]],
) -> dict[str, list[Any]]:
    """Return ``{output name: values}`` with one value per entity row, by brute force."""
    ents = entities.to_pylist()
    rows = features.to_pylist()
    ttl = dt.timedelta(microseconds=ttl_micros) if ttl_micros else None
    out: dict[str, list[Any]] = {name: [] for _, name in columns}
    for ent in ents:
        ets = _utc(ent[entity_timestamp])
        key = tuple(ent[k] for k in entity_keys)
        best = None
        best_rank = None
        if ets is not None and None not in key:
            for row in rows:
                if tuple(row[k] for k in feature_keys) != key:
                    continue
                fts = _utc(row[feature_timestamp])
                if fts is None or fts > ets:
                    continue
                if ttl is not None and fts < ets - ttl:
                    continue
                created = _utc(row[created_timestamp]) if created_timestamp else None
                rank = (fts, created is not None, created or _EPOCH)
                # ``>=``: on a full tie the later source row wins.
                if best_rank is None or rank >= best_rank:
                    best, best_rank = row, rank
        for src, name in columns:
            out[name].append(None if best is None else best[src])
    return out
