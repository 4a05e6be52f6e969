"""``FeatureStore``: the Feast-shaped entry point of a feature repo.

Example:
    >>> from ferrostore.features import FeatureStore
    >>> store = FeatureStore(repo_path="feature_repo/")  # doctest: +SKIP
    >>> store.get_online_features(  # doctest: +SKIP
    ...     features=["customer_transactions:total_transactions_30d"],
    ...     entity_rows=[{"customer_id": 1001}],
    ... ).to_dict()
    {'customer_id': [1001], 'total_transactions_30d': [42]}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import pyarrow as pa
import pyarrow.types as pat

from ferrostore import _core
from ferrostore._arrow import to_table
from ferrostore.errors import InvalidArgument, NotFound, SchemaMismatch
from ferrostore.features import offline
from ferrostore.features._progress import Progress
from ferrostore.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
)
from ferrostore.features.online_response import OnlineResponse
from ferrostore.features.online_store import OnlineStore
from ferrostore.features.registry import (
    ENTITY,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    MaterializationInterval,
    RegistryDiff,
    SqlRegistry,
    from_micros,
    kind_of,
    to_micros,
)
from ferrostore.features.repo_config import RepoConfig
from ferrostore.lineage import recording as lineage
from ferrostore.metadata import MetadataDB

__all__ = ["FeatureStore", "RetrievalJob"]

_REGISTRY_CACHE_S = 5.0
# Rows per chunk when materializing, the bound on its memory (about 100 MB per chunk; the
# store holds up to three at once: one written, one queued, one being prepared). A chunk
# is deduplicated and sorted, then merged into the store by one cursor walk over the
# stored rows of its key range, so larger chunks mean fewer walks.
_MATERIALIZE_CHUNK_ROWS = 1 << 20
# Rows per batch read from Parquet; batches are gathered into chunks without copies.
_MATERIALIZE_BATCH_ROWS = 262_144


class RetrievalJob:
    """A lazy training set: nothing is read until :meth:`to_arrow` or :meth:`to_df`.

    Args:
        compute: Builds the result table when first asked.
    """

    def __init__(self, compute: Callable[[], pa.Table]) -> None:
        self._compute = compute
        self._result: pa.Table | None = None

    def to_arrow(self) -> pa.Table:
        """The training set as a :class:`pyarrow.Table` (computed once, then cached)."""
        if self._result is None:
            self._result = self._compute()
        return self._result

    def to_df(self) -> Any:
        """The training set as a pandas DataFrame: entity_df's columns, then the features."""
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        """The training set as a polars DataFrame (needs ``polars`` installed).

        Raises:
            InvalidArgument: polars is not installed.
        """
        try:
            import polars as pl
        except ImportError as exc:
            raise InvalidArgument("to_polars() needs polars: pip install polars") from exc
        return pl.from_arrow(self.to_arrow())


def _utc(when: Any, what: str) -> dt.datetime:
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when)
        except ValueError as exc:
            raise InvalidArgument(f"{what}={when!r} is not an ISO 8601 datetime") from exc
    if hasattr(when, "to_pydatetime"):
        when = when.to_pydatetime()
    if isinstance(when, dt.date) and not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day)
    if not isinstance(when, dt.datetime):
        raise InvalidArgument(f"{what}={when!r} is not a datetime")
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _as_list(objects: Any) -> list[Any]:
    if objects is None:
        return []
    if isinstance(objects, Entity | FeatureView | FeatureService):
        return [objects]
    if isinstance(objects, str | bytes) or not isinstance(objects, Sequence):
        raise InvalidArgument(
            f"objects={objects!r}: expected a list of Entity, FeatureView and FeatureService"
        )
    return list(objects)


def _python_values(values: Any) -> list[Any]:
    """A column of key values (list, NumPy, pandas or Arrow) as a list of Python values."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.to_pylist()
    if hasattr(values, "tolist"):
        return list(values.tolist())
    return list(values)


class _OnlinePlan(NamedTuple):
    """Feature references resolved for online reads (cached per registry snapshot)."""

    requests: list[tuple[FeatureView, list[str]]]
    """Each view read and its features, in reference order."""
    names: list[str]
    """The output column of each feature."""
    plan: _core.KeyReadPlan
    """The same, for the engine."""
    join_keys: frozenset[str]
    """Every join key an entity row needs."""


class FeatureStore:
    """A feature repo: its registry in the metadata database, Parquet sources, LMDB online store.

    Args:
        repo_path: The repo's root folder (holding ``feature_store.yaml``); default: the
            working directory.
        config: A configuration to use instead of reading ``feature_store.yaml``.

    Raises:
        NotFound: No ``feature_store.yaml`` in ``repo_path``.
        InvalidArgument: An invalid configuration.
        StorageError: The metadata database cannot be opened.
    """

    def __init__(
        self,
        repo_path: str | os.PathLike[str] | None = None,
        *,
        config: RepoConfig | None = None,
    ) -> None:
        self.config = config or RepoConfig.load(repo_path if repo_path is not None else ".")
        self.repo_path: Path = self.config.repo_path
        self.project: str = self.config.project
        self._db: MetadataDB | None = None
        self._registry: SqlRegistry | None = None
        self._online: OnlineStore | None = None
        self._cache: tuple[float, dict[str, dict[str, Any]]] | None = None
        # Resolved feature references of online reads, per registry snapshot: the serving
        # path asks for the same features on every call.
        self._online_plans: dict[tuple[Any, ...], tuple[Any, _OnlinePlan]] = {}

    # -- plumbing -------------------------------------------------------------------------

    @property
    def registry(self) -> SqlRegistry:
        """The SQL registry of this project (opened on first use)."""
        if self._registry is None:
            self._db = self.config.open_metadata()
            self._registry = SqlRegistry(self._db, self.project)
        return self._registry

    @property
    def online_store(self) -> OnlineStore:
        """The LMDB online store of this repo (opened on first use)."""
        if self._online is None:
            self._online = OnlineStore(
                self.config.online_path, cache_bytes=self.config.online_cache_bytes
            )
        return self._online

    def close(self) -> None:
        """Release the metadata database connections."""
        if self._db is not None:
            self._db.close()
            self._db = None
            self._registry = None
        self._online = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore(repo_path={str(self.repo_path)!r}, project={self.project!r})"

    def _snapshot(self, *, cached: bool = False) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        if cached and self._cache is not None and now - self._cache[0] < _REGISTRY_CACHE_S:
            return self._cache[1]
        snap = self.registry.snapshot()
        self._cache = (now, snap)
        return snap

    # -- listing --------------------------------------------------------------------------

    def list_entities(self) -> list[Entity]:
        """Every registered entity, sorted by name."""
        return self.registry.list(ENTITY)

    def list_feature_views(self) -> list[FeatureView]:
        """Every registered feature view, sorted by name."""
        return self.registry.list(FEATURE_VIEW)

    def list_all_feature_views(self) -> list[FeatureView]:
        """Every registered feature view (Feast's name), sorted by name."""
        return self.list_feature_views()

    def list_feature_services(self) -> list[FeatureService]:
        """Every registered feature service, sorted by name."""
        return self.registry.list(FEATURE_SERVICE)

    def get_entity(self, name: str) -> Entity:
        """The entity ``name``; raises :class:`~ferrostore.errors.NotFound`."""
        return self.registry.get(ENTITY, name)

    def get_feature_view(self, name: str) -> FeatureView:
        """The feature view ``name``; raises :class:`~ferrostore.errors.NotFound`."""
        return self.registry.get(FEATURE_VIEW, name)

    def get_feature_service(self, name: str) -> FeatureService:
        """The feature service ``name``; raises :class:`~ferrostore.errors.NotFound`."""
        return self.registry.get(FEATURE_SERVICE, name)

    def list_materializations(self, feature_view: str) -> list[MaterializationInterval]:
        """The materialized intervals of a view, oldest first."""
        return self.registry.materializations(feature_view)

    # -- apply / plan ---------------------------------------------------------------------

    def _validate(self, objects: Sequence[Any], progress: Progress | None = None) -> None:
        """Check each view against its Parquet source: columns present, types compatible."""
        known = {e.name: e for e in self._snapshot()[ENTITY].values()}
        known.update({o.name: o for o in objects if isinstance(o, Entity)})
        for obj in objects:
            kind_of(obj)
            if isinstance(obj, FeatureView):
                for entity in obj.entities:
                    if entity.name not in known:
                        raise NotFound(
                            f"feature view {obj.name!r} uses entity {entity.name!r}, which is "
                            "neither applied nor registered"
                        )
                self._check_source(obj)
            if progress is not None:
                progress.advance()

    def _check_source(self, view: FeatureView) -> pa.Schema:
        src = view.source
        schema = offline.source_schema(src, self.repo_path)
        for col in filter(None, [src.timestamp_field, src.created_timestamp_column]):
            if col not in schema.names:
                raise SchemaMismatch(
                    f"feature view {view.name!r}: timestamp column {col!r} is not in source "
                    f"{src.path!r} (columns: {schema.names})"
                )
            if not pat.is_timestamp(schema.field(col).type):
                raise SchemaMismatch(
                    f"feature view {view.name!r}: column {col!r} of {src.path!r} has type "
                    f"{schema.field(col).type}: expected a timestamp"
                )
        for name in view.join_keys:
            col = src.source_column(name)
            if col not in schema.names:
                raise SchemaMismatch(
                    f"feature view {view.name!r}: join key {name!r} is not in source "
                    f"{src.path!r} (columns: {schema.names})"
                )
        for field in view.schema:
            col = src.source_column(field.name)
            if col not in schema.names:
                raise SchemaMismatch(
                    f"feature view {view.name!r}: field {field.name!r} is not in source "
                    f"{src.path!r} (columns: {schema.names})"
                )
            found = schema.field(col).type
            if not field.dtype.accepts(found):
                raise SchemaMismatch(
                    f"feature view {view.name!r}: field {field.name!r} is declared "
                    f"{field.dtype!r} but column {col!r} of {src.path!r} has type {found}"
                )
        self._key_types(view, schema)
        return schema

    def _key_types(self, view: FeatureView, schema: pa.Schema | None) -> list[tuple[str, str]]:
        declared = {f.name: f.dtype for f in view.entity_columns}
        out: list[tuple[str, str]] = []
        for entity in view.entities:
            for key in entity.join_keys:
                dtype = declared.get(key) or entity.value_type
                if dtype is not None:
                    out.append((key, dtype.online_type))
                    continue
                if schema is None:
                    schema = offline.source_schema(view.source, self.repo_path)
                arrow_type = schema.field(view.source.source_column(key)).type
                if pat.is_dictionary(arrow_type):
                    arrow_type = arrow_type.value_type
                if pat.is_integer(arrow_type):
                    out.append((key, "int64"))
                elif pat.is_string(arrow_type) or pat.is_large_string(arrow_type):
                    out.append((key, "string"))
                elif pat.is_binary(arrow_type) or pat.is_large_binary(arrow_type):
                    out.append((key, "bytes"))
                else:
                    raise SchemaMismatch(
                        f"feature view {view.name!r}: join key {key!r} has type {arrow_type} "
                        "in the source: expected integers, strings or bytes"
                    )
        return out

    def _register_online(self, view: FeatureView, *, replace: bool) -> None:
        self.online_store.register_view(
            view.name,
            self._key_types(view, None),
            [(f.name, f.dtype.online_type) for f in view.features],
            ttl=view.ttl or None,
            on_schema_change="new_version" if replace else "error",
        )

    def plan(self, objects: Any, *, partial: bool = True) -> RegistryDiff:
        """What :meth:`apply` would change, after validating the definitions.

        Args:
            objects: Entities, feature views and feature services.
            partial: When ``False``, registered objects missing from ``objects`` count as
                deleted.

        Returns:
            The created, updated, deleted and unchanged definitions.

        Raises:
            NotFound: An unknown entity or view, a missing Parquet source.
            SchemaMismatch: A field missing from the source, or of another type.
            AlreadyExists: Two different definitions of one kind share a name.
        """
        objects = _as_list(objects)
        self._validate(objects)
        return self.registry.plan(objects, partial=partial)

    def apply(
        self,
        objects: Any,
        objects_to_delete: Sequence[Any] | None = None,
        partial: bool = True,
    ) -> RegistryDiff:
        """Validate definitions and store them in the registry, in one transaction.

        Online feature views are registered in the online store (with their ttl); a view
        whose layout changed starts a new version there, and deleted views lose their rows.

        Args:
            objects: Entities, feature views and feature services (one or a list).
            objects_to_delete: Definitions to remove.
            partial: When ``False``, remove registered objects missing from ``objects``.

        Returns:
            The changes made.

        Raises:
            NotFound: An unknown entity or view, a missing Parquet source.
            SchemaMismatch: A field missing from the source, or of another type.
            AlreadyExists: Two different definitions of one kind share a name.
            InvalidArgument: Something that is not a definition.
        """
        objects = _as_list(objects)
        doomed = _as_list(objects_to_delete)
        with Progress("validating", len(objects)) as bar:
            self._validate(objects, bar)
        before = self._snapshot()[FEATURE_VIEW]
        diff = self.registry.apply(objects, objects_to_delete=doomed, partial=partial)
        self._cache = None
        for kind, name in diff.deleted:
            if kind == FEATURE_VIEW and before.get(name) is not None:
                with contextlib.suppress(NotFound):
                    self.online_store.delete_view(name)
        for obj in objects:
            if isinstance(obj, FeatureView):
                if obj.online:
                    self._register_online(obj, replace=True)
                else:
                    with contextlib.suppress(NotFound):
                        self.online_store.delete_view(obj.name)
        return diff

    # -- references -----------------------------------------------------------------------

    def _resolve(
        self, features: Any, snapshot: Mapping[str, Mapping[str, Any]]
    ) -> list[tuple[FeatureView, list[str]]]:
        views = snapshot[FEATURE_VIEW]
        if isinstance(features, FeatureService):
            refs = features.feature_refs()
        elif isinstance(features, str) or not isinstance(features, Sequence):
            raise InvalidArgument(
                f"features={features!r}: expected a list of 'view:feature' strings or a "
                "FeatureService"
            )
        else:
            refs = list(features)
        if not refs:
            raise InvalidArgument("features is empty: expected at least one 'view:feature'")
        grouped: dict[str, list[str]] = {}
        for ref in refs:
            if not isinstance(ref, str) or ref.count(":") != 1 or ref.startswith(":"):
                raise InvalidArgument(
                    f"feature reference {ref!r} is invalid: expected 'view:feature'"
                )
            view_name, feature = ref.split(":")
            if view_name not in views:
                known = ", ".join(sorted(views)) or "none"
                raise NotFound(
                    f"feature view {view_name!r} of reference {ref!r} is not registered in "
                    f"project {self.project!r} (known: {known})"
                )
            views[view_name].feature(feature)
            feats = grouped.setdefault(view_name, [])
            if feature in feats:
                raise InvalidArgument(f"feature reference {ref!r} is given twice")
            feats.append(feature)
        return [(views[name], feats) for name, feats in grouped.items()]

    # -- offline --------------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[str] | FeatureService,
        full_feature_names: bool = False,
    ) -> RetrievalJob:
        """A point-in-time correct training set: one row per entity row, in order.

        For each entity row and view, the feature row with the same join key whose event
        time is within ``[entity time - ttl, entity time]`` (inclusive; no lower bound when
        ttl is 0), ties broken by the greatest created time; nulls when none matches. Unlike
        Feast's local engine, rows sharing key and time are not collapsed and rows without a
        match are not dropped.

        Args:
            entity_df: pandas, pyarrow or polars data with the join keys and an
                ``event_timestamp`` column (or exactly one datetime column); naive times are
                UTC.
            features: ``"view:feature"`` references, or a :class:`FeatureService`.
            full_feature_names: Name outputs ``view__feature`` instead of ``feature``.

        Returns:
            A lazy job; its ``to_df()`` / ``to_arrow()`` / ``to_polars()`` run the join.

        Raises:
            InvalidArgument: Empty entity_df, bad references, colliding output names.
            NotFound: An unknown view or feature, a missing Parquet source.
            SchemaMismatch: A missing join key or timestamp column, a key of another type.
        """
        table = to_table(entity_df, what="entity_df")
        if table.num_rows == 0:
            raise InvalidArgument("entity_df has no rows: expected at least one entity row")
        requests = self._resolve(features, self._snapshot())
        offline.entity_timestamp_column(table.schema)
        for view, _ in requests:
            missing = [k for k in view.join_keys if k not in table.column_names]
            if missing:
                raise SchemaMismatch(
                    f"entity_df lacks join key(s) {missing} of feature view {view.name!r}: it "
                    f"has columns {table.column_names}"
                )
        root = self.repo_path

        def compute() -> pa.Table:
            return offline.historical_features(
                table, requests, root=root, full_feature_names=full_feature_names
            )

        return lineage.record_training_set(self, table, requests, RetrievalJob(compute))

    # -- materialization ------------------------------------------------------------------

    def _online_views(self, names: Sequence[str] | None) -> list[FeatureView]:
        views = self._snapshot()[FEATURE_VIEW]
        if names is None:
            return [v for _, v in sorted(views.items()) if v.online]
        if isinstance(names, str):
            names = [names]
        out = []
        for name in names:
            if name not in views:
                raise NotFound(
                    f"feature view {name!r} is not registered in project {self.project!r} "
                    f"(known: {', '.join(sorted(views)) or 'none'})"
                )
            if not views[name].online:
                raise InvalidArgument(f"feature view {name!r} has online=False: not materialized")
            out.append(views[name])
        return out

    def _cast_for_online(self, view: FeatureView, table: pa.Table) -> pa.Table:
        for feature in view.features:
            if feature.name not in table.column_names:
                continue
            i = table.column_names.index(feature.name)
            column, wanted = table.column(i), feature.dtype.to_arrow()
            if column.type != wanted and pat.is_floating(wanted):
                table = table.set_column(i, feature.name, column.cast(wanted, safe=False))
        return table

    def _materialize_view(self, view: FeatureView, start: dt.datetime, end: dt.datetime) -> int:
        self._register_online(view, replace=False)
        src = view.source
        columns = [*view.join_keys, *view.feature_names]
        with Progress(f"materializing {view.name}", 0) as bar:

            def chunks() -> Iterator[pa.Table]:
                gathered: list[pa.Table] = []
                size = 0
                for batch in offline.scan_batches(
                    src,
                    self.repo_path,
                    columns,
                    start=to_micros(start),
                    end=to_micros(end),
                    batch_size=_MATERIALIZE_BATCH_ROWS,
                ):
                    gathered.append(self._cast_for_online(view, batch))
                    size += batch.num_rows
                    if size >= _MATERIALIZE_CHUNK_ROWS:
                        yield pa.concat_tables(gathered, promote_options="permissive")
                        bar.advance(size)
                        gathered, size = [], 0
                if gathered:
                    yield pa.concat_tables(gathered, promote_options="permissive")
                    bar.advance(size)

            # One transaction for the whole view: all of it or, on failure, none of it.
            rows = self.online_store.write_chunks(
                view.name,
                chunks(),
                timestamp_column=src.timestamp_field,
                created_column=src.created_timestamp_column,
            ).rows
        self.registry.record_materialization(view.name, start, end, rows)
        lineage.record_materialization(self, view, start, end, rows)
        return rows

    def materialize(
        self,
        start_date: dt.datetime,
        end_date: dt.datetime,
        feature_views: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Load the latest row per entity with event time in ``[start_date, end_date]``.

        Rows stream from Parquet in bounded chunks; the online store keeps, per entity, the
        newest row (event time, then created time), so older data never overwrites newer and
        re-running is harmless. Each view's interval is recorded in the registry.

        Args:
            start_date: Start of the event time window (naive: UTC).
            end_date: End of the window, inclusive.
            feature_views: View names; default: every online view.

        Returns:
            View name to rows read.

        Raises:
            InvalidArgument: ``end_date`` before ``start_date``, an offline-only view.
            NotFound: An unknown view, a missing Parquet source.
        """
        start, end = _utc(start_date, "start_date"), _utc(end_date, "end_date")
        if end < start:
            raise InvalidArgument(
                f"end_date {end.isoformat()} is before start_date {start.isoformat()}"
            )
        return {
            v.name: self._materialize_view(v, start, end) for v in self._online_views(feature_views)
        }

    def materialize_incremental(
        self,
        end_date: dt.datetime,
        feature_views: Sequence[str] | None = None,
    ) -> dict[str, int]:
        """Materialize each view from where its last materialization ended up to ``end_date``.

        The first time, a view starts at ``now - ttl`` (the epoch when it has no ttl).

        Args:
            end_date: End of the window, inclusive (naive: UTC).
            feature_views: View names; default: every online view.

        Returns:
            View name to rows read.

        Raises:
            NotFound: An unknown view, a missing Parquet source.
        """
        end = _utc(end_date, "end_date")
        now = dt.datetime.now(dt.UTC)
        done: dict[str, int] = {}
        for view in self._online_views(feature_views):
            last = self.registry.last_materialized_end(view.name)
            if last is not None:
                start = last
            elif view.ttl:
                start = now - view.ttl
            else:
                start = from_micros(0)
            done[view.name] = self._materialize_view(view, min(start, end), end)
        return done

    # -- online ---------------------------------------------------------------------------

    def write_to_online_store(self, feature_view_name: str, df: Any, **_: Any) -> int:
        """Write rows straight to the online store (newer rows win per entity).

        Args:
            feature_view_name: The view.
            df: pandas, pyarrow or polars data with the join keys, the features and the
                source's timestamp column (or ``event_timestamp``); source column names
                are mapped as the source's ``field_mapping`` says.

        Returns:
            Entities written.

        Raises:
            NotFound: Unknown view.
            SchemaMismatch: A missing column or a value of the wrong type.
        """
        view = self._online_views([feature_view_name])[0]
        table = to_table(df, what="df")
        src = view.source
        if src.field_mapping:
            table = table.rename_columns([src.field_mapping.get(n, n) for n in table.column_names])
        ts = src.timestamp_field if src.timestamp_field in table.column_names else "event_timestamp"
        created = src.created_timestamp_column
        if created and created not in table.column_names:
            created = None
        self._register_online(view, replace=False)
        summary = self.online_store.write(
            view.name,
            self._cast_for_online(view, table),
            timestamp_column=ts,
            created_column=created,
        )
        return summary.written

    def _online_plan(
        self, features: Sequence[str] | FeatureService, full_feature_names: bool
    ) -> _OnlinePlan:
        """Resolve references and output names once per registry snapshot."""
        snapshot = self._snapshot(cached=True)
        key: tuple[Any, ...] | None = None
        if type(features) is list or type(features) is tuple:
            # Only lists of references are cached, so a hit needs no per-item type check.
            key = (*features, full_feature_names)
            try:
                hit = self._online_plans.get(key)
            except TypeError:  # an unhashable item: rejected by _resolve below
                hit = key = None
            if hit is not None and hit[0] is snapshot:
                return hit[1]
            if not all(isinstance(f, str) for f in features):
                key = None
        requests = self._resolve(features, snapshot)
        names: list[str] = []
        planned = []
        for view, feats in requests:
            view_names = [f"{view.name}__{f}" if full_feature_names else f for f in feats]
            planned.append((view.name, view.join_keys, list(feats), view_names))
            names += view_names
        if len(set(names)) != len(names):
            clash = next(n for n in names if names.count(n) > 1)
            raise InvalidArgument(
                f"output column {clash!r} would appear twice; pass full_feature_names=True"
            )
        join_keys = frozenset(k for view, _ in requests for k in view.join_keys)
        resolved = _OnlinePlan(requests, names, _core.KeyReadPlan(planned), join_keys)
        if key is not None:
            if len(self._online_plans) > 256:
                self._online_plans.clear()
            self._online_plans[key] = (snapshot, resolved)
        return resolved

    @staticmethod
    def _entity_columns(
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
    ) -> tuple[dict[str, list[Any]], int]:
        """Entity rows (dicts, or a dict of columns) as key columns and their length."""
        if type(entity_rows) is list and entity_rows and type(entity_rows[0]) is dict:
            # The serving path: rows of plain dicts with the same keys skip the checks below.
            n = len(entity_rows)
            if n == 1:
                return {k: [v] for k, v in entity_rows[0].items()}, 1
            try:
                columns = {k: [r[k] for r in entity_rows] for k in entity_rows[0]}
            except (KeyError, TypeError):
                pass
            else:
                if sum(map(len, entity_rows)) == n * len(columns):
                    return columns, n
        if isinstance(entity_rows, Mapping):
            columns = {k: _python_values(entity_rows[k]) for k in entity_rows}
            n = len(next(iter(columns.values()))) if columns else 0
            if any(len(c) != n for c in columns.values()):
                raise InvalidArgument(
                    f"entity_rows columns have different lengths: "
                    f"{ {k: len(c) for k, c in columns.items()} }"
                )
            return columns, n
        if isinstance(entity_rows, str) or not isinstance(entity_rows, Sequence):
            raise InvalidArgument(
                f"entity_rows={entity_rows!r}: expected a list of dicts of join keys"
            )
        rows = list(entity_rows)
        if not all(isinstance(r, Mapping) for r in rows):
            raise InvalidArgument("entity_rows must be dicts of join key values")
        keys = list(dict.fromkeys(k for r in rows for k in r))
        columns = {}
        for k in keys:
            missing = [i for i, r in enumerate(rows) if k not in r]
            if missing:
                raise SchemaMismatch(f"entity row {missing[0]} lacks join key {k!r}")
            columns[k] = [r[k] for r in rows]
        return columns, len(rows)

    def get_online_features(
        self,
        features: Sequence[str] | FeatureService,
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        full_feature_names: bool = False,
    ) -> OnlineResponse:
        """Read the latest features of some entities from the online store.

        Values older than their view's ttl are null with status ``OUTSIDE_MAX_AGE`` (Feast's
        local stores ignore ttl online).

        Args:
            features: ``"view:feature"`` references, or a :class:`FeatureService`.
            entity_rows: One dict of join key values per entity (Feast's shape), or a dict
                of key columns.
            full_feature_names: Name outputs ``view__feature`` instead of ``feature``.

        Returns:
            The values and per-value statuses; ``to_dict()`` gives Feast's shape.

        Raises:
            InvalidArgument: No entity rows, bad references, colliding output names.
            NotFound: An unknown view or feature.
            SchemaMismatch: A missing join key, a key value of the wrong type.
        """
        requests, names, plan, join_keys = self._online_plan(features, full_feature_names)
        columns, n = self._entity_columns(entity_rows)
        if n == 0:
            raise InvalidArgument("entity_rows is empty: expected at least one entity")
        if not columns.keys() >= join_keys:
            for view, _ in requests:
                missing_keys = [k for k in view.join_keys if k not in columns]
                if missing_keys:
                    raise SchemaMismatch(
                        f"entity_rows lack join key(s) {missing_keys} of feature view "
                        f"{view.name!r}: they have {list(columns)}"
                    )
        if not columns.keys().isdisjoint(names):
            clash = next(name for name in names if name in columns)
            raise InvalidArgument(
                f"output column {clash!r} would appear twice; pass full_feature_names=True"
            )
        out: dict[str, Any] = dict(columns)
        statuses: dict[str, Any] = {}
        self.online_store.read_into(plan, columns, n, out, statuses)
        return OnlineResponse._of(out, statuses, names)
