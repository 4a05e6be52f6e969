"""A Feast online store backed by ferrostore's LMDB store.

Point a Feast repo at it in ``feature_store.yaml``::

    online_store:
      type: ferrostore.feast.LmdbOnlineStore
      path: data/online_lmdb      # a folder; relative paths are under the repo

Each Feast feature view becomes one ferrostore online view named as Feast names its tables
(``{project}_{view}``), keyed by one ``bytes`` column holding Feast's serialized entity key
(``serialize_entity_key``, ``entity_key_serialization_version`` 3 by default) and holding each
feature as ``bytes``: the serialized ``ValueProto``, as Feast's own SQLite store keeps them.
Event and created timestamps are passed through, so per entity the row that is newest by
(event timestamp, created timestamp) wins, whatever order the writes come in.

Needs the ``feast`` package (``pip install 'ferrostore[feast]'`` or ``pip install feast``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

try:
    from feast import Entity, FeatureView
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import compute_table_id
    from feast.infra.online_stores.online_store import OnlineStore as FeastOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from feast.repo_config import FeastConfigBaseModel, RepoConfig
except ImportError as exc:  # pragma: no cover - exercised only without feast
    raise ImportError(
        "ferrostore.feast needs the 'feast' package: pip install feast "
        f"(importing it failed: {exc})"
    ) from exc

import pyarrow as pa
from pydantic import StrictInt, StrictStr

from ferrostore.errors import NotFound
from ferrostore.features.online_store import FieldStatus
from ferrostore.features.online_store import OnlineStore as FerroOnlineStore

__all__ = ["ENTITY_KEY_COLUMN", "LmdbOnlineStore", "LmdbOnlineStoreConfig"]

#: The join key column of every view this store registers: Feast's serialized entity key.
ENTITY_KEY_COLUMN = "__feast_entity_key"

_TS = pa.timestamp("us", tz="UTC")
_EVENT = "__event_timestamp"
_CREATED = "__created_timestamp"


class LmdbOnlineStoreConfig(FeastConfigBaseModel):
    """The ``online_store`` block of a Feast ``feature_store.yaml`` for :class:`LmdbOnlineStore`.

    Attributes:
        type: The store's class path, ``ferrostore.feast.LmdbOnlineStore``.
        path: The LMDB folder; relative paths are resolved against the Feast repo.
        map_size: Bytes of address space LMDB may use (a multiple of 4096); ``None`` for
            ferrostore's default (16 GiB, used only as data grows).
        cache_bytes: Bytes of memory a process may use to keep the views it reads in
            memory; ``None`` for ferrostore's default (256 MiB), 0 for none.
    """

    type: Literal["ferrostore.feast.LmdbOnlineStore"] = "ferrostore.feast.LmdbOnlineStore"
    path: StrictStr = "data/online_lmdb"
    map_size: StrictInt | None = None
    cache_bytes: StrictInt | None = None


def _naive_utc_to_aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class LmdbOnlineStore(FeastOnlineStore):
    """Feast's ``OnlineStore`` interface over ferrostore's LMDB online store.

    One ferrostore view per Feast feature view; rows are keyed by Feast's serialized entity
    key and hold serialized ``ValueProto`` features. Writes keep, per entity, the newest row
    by (event timestamp, created timestamp). Feast applies no ttl on online reads, and
    neither does this store.
    """

    def __init__(self) -> None:
        self._stores: dict[str, FerroOnlineStore] = {}
        # (view name, feature names) already registered by this instance.
        self._registered: set[tuple[str, tuple[str, ...]]] = set()

    @staticmethod
    def _config(config: RepoConfig) -> LmdbOnlineStoreConfig:
        online = config.online_store
        if not isinstance(online, LmdbOnlineStoreConfig):
            raise TypeError(
                f"online_store has type {type(online).__name__}: expected LmdbOnlineStoreConfig "
                "(online_store.type: ferrostore.feast.LmdbOnlineStore)"
            )
        return online

    @classmethod
    def store_path(cls, config: RepoConfig) -> Path:
        """The LMDB folder for ``config``: ``path``, relative ones under the Feast repo."""
        path = Path(cls._config(config).path).expanduser()
        if not path.is_absolute() and config.repo_path is not None:
            path = Path(config.repo_path) / path
        return path

    def _store(self, config: RepoConfig) -> FerroOnlineStore:
        path = os.fspath(self.store_path(config))
        store = self._stores.get(path)
        if store is None:
            online = self._config(config)
            store = FerroOnlineStore(path, map_size=online.map_size, cache_bytes=online.cache_bytes)
            self._stores[path] = store
        return store

    @staticmethod
    def view_name(config: RepoConfig, table: FeatureView) -> str:
        """The ferrostore view holding ``table``: Feast's table id, ``{project}_{view}``."""
        versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
        return compute_table_id(config.project, table, versioning)

    def _register(self, config: RepoConfig, table: FeatureView) -> str:
        name = self.view_name(config, table)
        features = tuple(f.name for f in table.features)
        if (name, features) not in self._registered:
            self._store(config).register_view(
                name,
                [(ENTITY_KEY_COLUMN, "bytes")],
                [(f, "bytes") for f in features],
                on_schema_change="new_version",
            )
            self._registered.add((name, features))
        return name

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], dt.datetime, dt.datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Write rows in one LMDB transaction; per entity the newest row wins.

        Args:
            config: The Feast repo config.
            table: The feature view the rows belong to.
            data: ``(entity key, {feature: value}, event time, created time or None)``
                rows; naive times are UTC. A feature missing from a row is stored as null.
            progress: Called with the number of rows once they are written.
        """
        if not data:
            return
        name = self._register(config, table)
        version = config.entity_key_serialization_version
        features = [f.name for f in table.features]
        keys: list[bytes] = []
        values: dict[str, list[bytes | None]] = {f: [] for f in features}
        events: list[dt.datetime] = []
        created: list[dt.datetime | None] = []
        for entity_key, row, event_ts, created_ts in data:
            keys.append(serialize_entity_key(entity_key, entity_key_serialization_version=version))
            for feature in features:
                value = row.get(feature)
                values[feature].append(None if value is None else value.SerializeToString())
            events.append(_naive_utc_to_aware(event_ts))
            created.append(None if created_ts is None else _naive_utc_to_aware(created_ts))
        columns: dict[str, pa.Array] = {ENTITY_KEY_COLUMN: pa.array(keys, pa.binary())}
        for feature in features:
            columns[feature] = pa.array(values[feature], pa.binary())
        columns[_EVENT] = pa.array(events, _TS)
        columns[_CREATED] = pa.array(created, _TS)
        self._store(config).write(
            name, pa.table(columns), timestamp_column=_EVENT, created_column=_CREATED
        )
        if progress:
            progress(len(data))

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[dt.datetime | None, dict[str, ValueProto] | None]]:
        """Read the entities' rows in one LMDB read transaction.

        Args:
            config: The Feast repo config.
            table: The feature view to read.
            entity_keys: The entities, in the order wanted.
            requested_features: The features wanted; all of the view's when ``None``.

        Returns:
            One ``(event time in UTC, {feature: ValueProto})`` per entity key, in order;
            ``(None, None)`` for an entity never written. Null features are left out.
        """
        if not entity_keys:
            return []
        name = self.view_name(config, table)
        version = config.entity_key_serialization_version
        keys = [
            serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys
        ]
        wanted = list(requested_features) if requested_features else None
        store = self._store(config)
        try:
            read = store.read(
                pa.table({ENTITY_KEY_COLUMN: pa.array(keys, pa.binary())}), {name: wanted}
            )
        except NotFound:
            # Never applied nor written: every entity is missing.
            return [(None, None)] * len(keys)
        prefix = f"{name}:"
        names = [c[len(prefix) :] for c in read.values.column_names]
        columns = [read.values.column(i).to_pylist() for i in range(len(names))]
        statuses = [read.statuses.column(i).to_pylist() for i in range(len(names))]
        times = read.event_timestamps.column(0).to_pylist()
        not_found = int(FieldStatus.NOT_FOUND)
        result: list[tuple[dt.datetime | None, dict[str, ValueProto] | None]] = []
        for row, event_ts in enumerate(times):
            if event_ts is None or all(s[row] == not_found for s in statuses):
                result.append((None, None))
                continue
            found: dict[str, ValueProto] = {}
            for feature, column in zip(names, columns, strict=True):
                raw = column[row]
                if raw is not None:
                    value = ValueProto()
                    value.ParseFromString(raw)
                    found[feature] = value
            result.append((_naive_utc_to_aware(event_ts).astimezone(dt.UTC), found))
        return result

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        """Register a view for each kept feature view; delete the deleted ones' views.

        A kept feature view whose features changed gets a new view version, which deletes
        its stored rows (materialize again). Entities need no storage of their own.
        """
        store = self._store(config)
        for table in tables_to_keep:
            self._register(config, table)
        for table in tables_to_delete:
            name = self.view_name(config, table)
            with contextlib.suppress(NotFound):
                store.delete_view(name)
            self._registered = {r for r in self._registered if r[0] != name}

    def teardown(
        self,
        config: RepoConfig,
        tables: Sequence[FeatureView],
        entities: Sequence[Entity],
    ) -> None:
        """Delete the views of ``tables`` and their rows (the LMDB folder stays)."""
        self.update(config, tables, [], entities, [], partial=True)
