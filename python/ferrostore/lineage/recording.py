"""Lineage recorded without user code: the registry, the feature store, vectors and the stack.

The registry records its events through :func:`record_registry_event`, inside the
transaction that makes each change, so a run, a model version, a stage transition or an
alias move and its lineage commit together (this module does not import the registry;
the registry loads it by name). The feature store calls
:func:`record_training_set` at the end of ``get_historical_features`` and
:func:`record_materialization` after each view's materialization; the stack calls
:func:`record_stack_apply`; the vector store may call :func:`record_collection_write`.

The graph it builds (types are named ``ferrostore.*``)::

    DataSource -> [FeatureViewDefinition] -> FeatureView -> [TrainingSetBuild] -> TrainingSet
    TrainingSet -> [Run] -> ModelVersion -> [StageTransition] / [AliasMove]
    FeatureView -> [Materialization] -> OnlineTable
    DocumentSource -> [VectorWrite] -> VectorCollection;   StackSpec -> [StackApply]

with contexts ``ferrostore.Experiment``, ``ferrostore.RegisteredModel``,
``ferrostore.FeatureProject`` and ``ferrostore.Stack``. A run names the training sets it
used by the run tag :data:`TRAINING_SET_TAG` (their ``training-sets:/...`` URIs, comma
separated); a training set built while a run is active is linked to it automatically.

Recording never fails the call that triggered it: errors are logged (on the
``ferrostore.lineage`` logger; for a registry event on ``ferrostore.registry``, and the
registry change is made again without its lineage).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import Connection

from ferrostore.errors import NotFound, StorageError
from ferrostore.lineage.store import MetadataStore, _Batch, now_ms
from ferrostore.lineage.types import (
    Artifact,
    ArtifactState,
    ArtifactType,
    Context,
    ContextType,
    Event,
    EventType,
    Execution,
    ExecutionState,
    ExecutionType,
)
from ferrostore.metadata import MetadataDB
from ferrostore.metadata import tables as t
from ferrostore.metadata.db import SQL, DriverConnection

if TYPE_CHECKING:
    # Only training sets are fingerprinted: recording a vector or registry write must not
    # load Arrow.
    import pyarrow as pa

__all__ = [
    "ARTIFACT_TYPES",
    "CONTEXT_TYPES",
    "EXECUTION_TYPES",
    "TRAINING_SET_TAG",
    "ensure_types",
    "lineage_store",
    "prepare_registry_recording",
    "record_collection_write",
    "record_materialization",
    "record_registry_event",
    "record_stack_apply",
    "record_training_set",
]

T = TypeVar("T")

TRAINING_SET_TAG = "ferrostore.training_set"
"""Run tag naming the training sets a run used: ``training-sets:/...`` URIs, comma separated."""

_S, _I, _J, _B = "STRING", "INT", "STRUCT", "BOOLEAN"
ARTIFACT_TYPES: tuple[ArtifactType, ...] = (
    ArtifactType("ferrostore.DataSource", {"path": _S, "timestamp_field": _S}),
    ArtifactType(
        "ferrostore.FeatureView",
        {"project": _S, "view": _S, "entities": _J, "features": _J, "ttl_seconds": _I},
    ),
    ArtifactType(
        "ferrostore.TrainingSet",
        {
            "project": _S,
            "feature_refs": _J,
            "feature_views": _J,
            "entity_fingerprint": _S,
            "row_count": _I,
        },
        base_type="Dataset",
    ),
    ArtifactType("ferrostore.OnlineTable", {"project": _S, "view": _S}),
    ArtifactType(
        "ferrostore.ModelVersion",
        {"model_name": _S, "version": _I, "source": _S, "run_id": _S},
        base_type="Model",
    ),
    ArtifactType("ferrostore.VectorCollection", {"collection": _S, "dimension": _I, "space": _S}),
    ArtifactType("ferrostore.DocumentSource", {"source": _S}),
    ArtifactType("ferrostore.StackSpec", {"stack": _S, "fingerprint": _S, "spec": _J}),
)
"""The artifact types ferrostore records."""

EXECUTION_TYPES: tuple[ExecutionType, ...] = (
    ExecutionType(
        "ferrostore.Run",
        {"run_id": _S, "run_name": _S, "user": _S, "experiment_id": _S, "status": _S},
        base_type="Train",
    ),
    ExecutionType("ferrostore.FeatureViewDefinition", {"project": _S, "view": _S}),
    ExecutionType("ferrostore.TrainingSetBuild", {"project": _S}),
    ExecutionType(
        "ferrostore.Materialization",
        {"project": _S, "view": _S, "start": _S, "end": _S, "rows": _I},
    ),
    ExecutionType(
        "ferrostore.StageTransition",
        {
            "model_name": _S,
            "version": _I,
            "from_stage": _S,
            "to_stage": _S,
            "approved_by": _S,
            "timestamp": _I,
        },
    ),
    ExecutionType(
        "ferrostore.AliasMove",
        {
            "model_name": _S,
            "alias": _S,
            "version": _I,
            "previous_version": _I,
            "action": _S,
            "approved_by": _S,
            "timestamp": _I,
        },
    ),
    ExecutionType("ferrostore.VectorWrite", {"collection": _S, "count": _I}),
    ExecutionType(
        "ferrostore.StackApply",
        {"stack": _S, "fingerprint": _S, "spec": _J, "changes": _J, "applied_by": _S},
    ),
)
"""The execution types ferrostore records."""

CONTEXT_TYPES: tuple[ContextType, ...] = (
    ContextType("ferrostore.Experiment", {"experiment_id": _S}),
    ContextType("ferrostore.RegisteredModel"),
    ContextType("ferrostore.FeatureProject"),
    ContextType("ferrostore.Stack"),
)
"""The context types ferrostore records."""

_logger = logging.getLogger("ferrostore.lineage")
_stores: weakref.WeakKeyDictionary[MetadataDB, MetadataStore] = weakref.WeakKeyDictionary()
_ready: weakref.WeakSet[MetadataStore] = weakref.WeakSet()
_lock = threading.Lock()


def lineage_store(db: MetadataDB) -> MetadataStore:
    """Return the (cached) lineage store on an open metadata database, types declared.

    Args:
        db: The metadata database (not closed by the store).

    Returns:
        A :class:`MetadataStore` sharing ``db``.
    """
    with _lock:
        store = _stores.get(db)
        if store is None:
            store = MetadataStore(db)
            _stores[db] = store
    if store not in _ready:
        ensure_types(store)
        _ready.add(store)
    return store


def ensure_types(store: MetadataStore) -> None:
    """Declare ferrostore's artifact, execution and context types in ``store`` (idempotent)."""

    def work(conn: Connection) -> None:
        for type_ in (*ARTIFACT_TYPES, *EXECUTION_TYPES, *CONTEXT_TYPES):
            store._put_type(conn, type_)

    store.db.run_in_transaction(work)


def _safely(what: str, fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception:
        _logger.exception("could not record lineage of %s", what)
        return None


# ---------------------------------------------------------------------------- registry


def prepare_registry_recording(store: Any) -> None:
    """Declare lineage types for a registry store, before its first recorded transaction.

    The registry calls this outside any transaction: declaring types writes, and a
    recorder runs inside the registry's own write transaction.

    Args:
        store: The registry store.
    """
    lineage_store(store.db)


def record_registry_event(
    event_name: str, payload: Mapping[str, Any], driver: DriverConnection
) -> None:
    """Record one registry event inside the registry transaction that makes it.

    The change and its lineage commit together or not at all (the registry's recorder,
    see ``ferrostore.registry._hooks``).

    Args:
        event_name: The event.
        payload: Its details; ``payload["store"]`` is the registry store that made it.
        driver: The registry transaction's connection.
    """
    handler = _HANDLERS.get(event_name)
    store = payload.get("store")
    if handler is None or store is None:
        return
    with _lock:
        ms = _stores.get(store.db)
    if ms is None or ms not in _ready:
        # Declaring the types now would write from a second connection and wait on this
        # transaction's own lock.
        raise StorageError(
            f"lineage types are not declared in {store.db!r}: "
            "prepare_registry_recording was not called or failed"
        )
    handler(ms, payload, driver)


def _run_execution(run_id: str, **extra: Any) -> Execution:
    return Execution(
        type="ferrostore.Run",
        name=run_id,
        external_id=f"run:{run_id}",
        properties={"run_id": run_id, **extra},
    )


def _model_artifact(name: str, version: int, **props: Any) -> Artifact:
    return Artifact(
        type="ferrostore.ModelVersion",
        name=f"{name}/v{version}",
        uri=f"models:/{name}/{version}",
        external_id=f"model_version:{name}/{version}",
        properties={"model_name": name, "version": int(version), **props},
    )


def _model_context(name: str) -> Context:
    return Context(type="ferrostore.RegisteredModel", name=name, external_id=f"model:{name}")


def _run_state(status: str) -> ExecutionState:
    return {
        "RUNNING": ExecutionState.RUNNING,
        "SCHEDULED": ExecutionState.NEW,
        "FINISHED": ExecutionState.COMPLETE,
        "FAILED": ExecutionState.FAILED,
        "KILLED": ExecutionState.CANCELED,
    }.get(status, ExecutionState.UNKNOWN)


# The registry rows a recorder needs, read in its own transaction (one statement each).
_RUN_FACTS = SQL(
    "SELECT runs.run_name, runs.user_id, runs.experiment_id, runs.status, experiments.name, "
    "run_tags.value FROM runs "
    "JOIN experiments ON experiments.experiment_id = runs.experiment_id "
    'LEFT OUTER JOIN run_tags ON run_tags.run_id = runs.run_id AND run_tags."key" = ? '
    "WHERE runs.run_id = ?"
)
_VERSION_FACTS = SQL(
    "SELECT source, run_id, user_id FROM model_versions WHERE name = ? AND version = ?"
)


def _link_named_training_sets(
    ms: MetadataStore, driver: DriverConnection, named: str | None, exec_id: int, batch: _Batch
) -> None:
    uris = list(dict.fromkeys(u.strip() for u in (named or "").split(",") if u.strip()))
    if not uris:
        return
    by_uri = SQL(f"SELECT id FROM lineage_artifacts WHERE uri IN ({', '.join('?' * len(uris))})")
    now = now_ms()
    for (artifact_id,) in driver.all(by_uri, uris):
        ms._put_event(driver, Event(EventType.INPUT, int(artifact_id), exec_id), now, batch=batch)


def _on_run(ms: MetadataStore, payload: Mapping[str, Any], driver: DriverConnection) -> None:
    run_id = payload["run_id"]
    info = driver.first(_RUN_FACTS, (TRAINING_SET_TAG, run_id))
    if info is None:
        raise NotFound(f"run {run_id!r} (or its experiment) does not exist")
    run_name, user_id, experiment_id, status, experiment_name, training_sets = info
    now = now_ms()
    batch = _Batch()
    execution = _run_execution(
        run_id, run_name=run_name, user=user_id, experiment_id=experiment_id, status=status
    )
    execution.last_known_state = _run_state(status)
    exec_id = ms._put_node(driver, execution, now, batch=batch)
    ctx = Context(
        type="ferrostore.Experiment",
        name=experiment_name,
        external_id=f"experiment:{experiment_id}",
        properties={"experiment_id": experiment_id},
    )
    ctx_id = ms._put_node(driver, ctx, now, batch=batch)
    batch.link(t.lineage_associations, [{"context_id": ctx_id, "execution_id": exec_id}])
    _link_named_training_sets(ms, driver, training_sets, exec_id, batch)
    batch.flush(driver)


def _on_model_version(
    ms: MetadataStore, payload: Mapping[str, Any], driver: DriverConnection
) -> None:
    name, version = payload["name"], int(payload["version"])
    mv = driver.first(_VERSION_FACTS, (name, version))
    if mv is None:
        raise NotFound(f"registered model {name!r} has no version {version}")
    source, run_id, user_id = mv
    now = now_ms()
    batch = _Batch()
    props = {"source": source}
    if run_id:
        props["run_id"] = run_id
    artifact = _model_artifact(name, version, **props)
    artifact.custom_properties = {"registered_by": user_id or ""}
    artifact_id = ms._put_node(driver, artifact, now, batch=batch)
    ctx_id = ms._ensure_node(driver, _model_context(name), now, batch=batch)
    batch.link(t.lineage_attributions, [{"context_id": ctx_id, "artifact_id": artifact_id}])
    if run_id:
        run = _run_execution(run_id)
        run.last_known_state = ExecutionState.UNKNOWN
        exec_id = ms._ensure_node(driver, run, now, batch=batch)
        ms._put_event(driver, Event(EventType.OUTPUT, artifact_id, exec_id), now, batch=batch)
    batch.flush(driver)


def _on_approval(
    ms: MetadataStore, payload: Mapping[str, Any], driver: DriverConnection, kind: str
) -> None:
    name, version = payload["name"], int(payload["version"])
    when = now_ms()
    if kind == "stage":
        execution = Execution(
            type="ferrostore.StageTransition",
            last_known_state=ExecutionState.COMPLETE,
            properties={
                "model_name": name,
                "version": version,
                "from_stage": str(payload.get("from_stage") or "None"),
                "to_stage": str(payload.get("to_stage") or "None"),
                "approved_by": str(payload.get("approved_by") or "unknown"),
                "timestamp": when,
            },
        )
    else:
        props: dict[str, Any] = {
            "model_name": name,
            "alias": str(payload["alias"]),
            "version": version,
            "action": "set" if kind == "alias_set" else "deleted",
            "approved_by": str(payload.get("approved_by") or "unknown"),
            "timestamp": when,
        }
        if payload.get("previous_version") is not None:
            props["previous_version"] = int(payload["previous_version"])
        execution = Execution(
            type="ferrostore.AliasMove", last_known_state=ExecutionState.COMPLETE, properties=props
        )

    now = when
    batch = _Batch()
    exec_id = ms._put_node(driver, execution, now, batch=batch)
    artifact_id = ms._ensure_node(driver, _model_artifact(name, version), now, batch=batch)
    ms._put_event(driver, Event(EventType.INPUT, artifact_id, exec_id), now, batch=batch)
    ctx_id = ms._ensure_node(driver, _model_context(name), now, batch=batch)
    batch.link(t.lineage_associations, [{"context_id": ctx_id, "execution_id": exec_id}])
    batch.flush(driver)


def _on_version_deleted(
    ms: MetadataStore, payload: Mapping[str, Any], driver: DriverConnection
) -> None:
    artifact = _model_artifact(payload["name"], int(payload["version"]))
    artifact.state = ArtifactState.DELETED
    ms._put_node(driver, artifact, now_ms())


_HANDLERS: dict[str, Callable[[MetadataStore, Mapping[str, Any], DriverConnection], None]] = {
    "run_started": _on_run,
    "run_ended": _on_run,
    "model_version_created": _on_model_version,
    "stage_transitioned": lambda ms, p, d: _on_approval(ms, p, d, "stage"),
    "alias_set": lambda ms, p, d: _on_approval(ms, p, d, "alias_set"),
    "alias_deleted": lambda ms, p, d: _on_approval(ms, p, d, "alias_deleted"),
    "model_version_deleted": _on_version_deleted,
}


# ------------------------------------------------------------------------ feature store


def _feature_db(feature_store: Any) -> MetadataDB:
    feature_store.registry  # noqa: B018 - opens the metadata database on first use
    db = feature_store._db
    assert isinstance(db, MetadataDB)
    return db


def _record_view(
    ms: MetadataStore, conn: Connection, fs: Any, view: Any, now: int, batch: _Batch
) -> int:
    """Record a feature view with its source and definition; return the view's artifact id."""
    from ferrostore.features import offline

    project = fs.project
    path = str(offline.resolve_path(view.source, fs.repo_path))
    source_id = ms._put_node(
        conn,
        Artifact(
            type="ferrostore.DataSource",
            name=path,
            uri=path,
            external_id=f"source:{path}",
            properties={"path": path, "timestamp_field": view.source.timestamp_field or ""},
            custom_properties={"name": getattr(view.source, "name", None) or path},
        ),
        now,
        batch=batch,
    )
    view_id = ms._put_node(
        conn,
        Artifact(
            type="ferrostore.FeatureView",
            name=f"{project}/{view.name}",
            uri=f"feature-views:/{project}/{view.name}",
            external_id=f"feature_view:{project}/{view.name}",
            properties={
                "project": project,
                "view": view.name,
                "entities": [e.name for e in view.entities],
                "features": {f.name: str(f.dtype) for f in view.features},
                "ttl_seconds": int(view.ttl.total_seconds()) if view.ttl else 0,
            },
        ),
        now,
        batch=batch,
    )
    define_id = ms._put_node(
        conn,
        Execution(
            type="ferrostore.FeatureViewDefinition",
            name=f"{project}/{view.name}",
            external_id=f"feature_view_definition:{project}/{view.name}",
            last_known_state=ExecutionState.COMPLETE,
            properties={"project": project, "view": view.name},
        ),
        now,
        batch=batch,
    )
    ms._put_event(conn, Event(EventType.INPUT, source_id, define_id), now, batch=batch)
    ms._put_event(conn, Event(EventType.OUTPUT, view_id, define_id), now, batch=batch)
    ctx_id = _project_context(ms, conn, project, now, batch)
    batch.link(t.lineage_attributions, [{"context_id": ctx_id, "artifact_id": view_id}])
    batch.link(t.lineage_associations, [{"context_id": ctx_id, "execution_id": define_id}])
    return view_id


def _project_context(
    ms: MetadataStore, conn: Connection, project: str, now: int, batch: _Batch
) -> int:
    ctx = Context(type="ferrostore.FeatureProject", name=project, external_id=f"project:{project}")
    return ms._put_node(conn, ctx, now, batch=batch)


def _fingerprint(table: pa.Table) -> str:
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _write_training_set(
    ms: MetadataStore,
    fs: Any,
    requests: Sequence[tuple[Any, Sequence[str]]],
    fingerprint: str,
    rows: int,
    run_id: str | None,
) -> tuple[str, int]:
    project = fs.project
    refs = [f"{view.name}:{feature}" for view, feats in requests for feature in feats]
    digest = hashlib.sha256(json.dumps([project, refs, fingerprint]).encode()).hexdigest()[:16]
    uri = f"training-sets:/{project}/{digest}"

    def work(conn: Connection) -> int:
        now = now_ms()
        batch = _Batch()
        view_ids = [_record_view(ms, conn, fs, view, now, batch) for view, _ in requests]
        set_id = ms._put_node(
            conn,
            Artifact(
                type="ferrostore.TrainingSet",
                name=f"{project}/{digest}",
                uri=uri,
                external_id=f"training_set:{project}/{digest}",
                properties={
                    "project": project,
                    "feature_refs": refs,
                    "feature_views": [view.name for view, _ in requests],
                    "entity_fingerprint": fingerprint,
                    "row_count": rows,
                },
            ),
            now,
            batch=batch,
        )
        build_id = ms._put_node(
            conn,
            Execution(
                type="ferrostore.TrainingSetBuild",
                name=f"{project}/{digest}",
                external_id=f"training_set_build:{project}/{digest}",
                last_known_state=ExecutionState.COMPLETE,
                properties={"project": project},
            ),
            now,
            batch=batch,
        )
        for view_id in view_ids:
            ms._put_event(conn, Event(EventType.INPUT, view_id, build_id), now, batch=batch)
        ms._put_event(conn, Event(EventType.OUTPUT, set_id, build_id), now, batch=batch)
        ctx_id = _project_context(ms, conn, project, now, batch)
        batch.link(t.lineage_attributions, [{"context_id": ctx_id, "artifact_id": set_id}])
        batch.link(t.lineage_associations, [{"context_id": ctx_id, "execution_id": build_id}])
        if run_id is not None:
            run = _run_execution(run_id)
            run.last_known_state = ExecutionState.RUNNING
            run_exec = ms._ensure_node(conn, run, now, batch=batch)
            ms._put_event(conn, Event(EventType.INPUT, set_id, run_exec), now, batch=batch)
        batch.flush(conn)
        return set_id

    return uri, ms.db.run_in_transaction(work)


def record_training_set(
    feature_store: Any,
    entity_table: pa.Table,
    requests: Sequence[tuple[Any, Sequence[str]]],
    job: T,
) -> T:
    """Record a training set built by ``get_historical_features``; return ``job`` unchanged.

    The training set (feature references, the entity rows' fingerprint and row count) is an
    artifact output by a build execution whose inputs are the feature views, each linked to
    its data source. When a tracking run is active in this thread, the run is linked as a
    consumer of the training set (in the run's metadata database too, if it is another).
    The job gets ``training_set_uri``, the value a run can name in the
    :data:`TRAINING_SET_TAG` tag.

    Args:
        feature_store: The :class:`~ferrostore.features.FeatureStore`.
        entity_table: The entity rows as Arrow.
        requests: ``(feature view, [feature names])`` pairs.
        job: The retrieval job, returned as is.

    Returns:
        ``job``.
    """

    def record() -> None:
        fingerprint = _fingerprint(entity_table)
        run_store, run_id = _active_run()
        db = _feature_db(feature_store)
        same_db = run_store is not None and run_store.db.url == db.url
        uri, artifact_id = _write_training_set(
            lineage_store(db),
            feature_store,
            requests,
            fingerprint,
            entity_table.num_rows,
            run_id if same_db else None,
        )
        if run_store is not None and not same_db:
            _write_training_set(
                lineage_store(run_store.db),
                feature_store,
                requests,
                fingerprint,
                entity_table.num_rows,
                run_id,
            )
        job.training_set_uri = uri  # type: ignore[attr-defined]
        job.lineage_artifact_id = artifact_id  # type: ignore[attr-defined]

    _safely("a training set", record)
    return job


def _active_run() -> tuple[Any, str | None]:
    tracking = sys.modules.get("ferrostore.registry.tracking")
    if tracking is None:
        return None, None
    run = tracking.active_run()
    if run is None:
        return None, None
    return run._store, run.info.run_id


def record_materialization(
    feature_store: Any, view: Any, start: dt.datetime, end: dt.datetime, rows: int
) -> None:
    """Record one view's materialization: feature view in, online table out.

    Args:
        feature_store: The :class:`~ferrostore.features.FeatureStore`.
        view: The materialized feature view.
        start: Start of the event time window.
        end: End of the window.
        rows: Rows read.
    """

    def record() -> None:
        ms = lineage_store(_feature_db(feature_store))
        project = feature_store.project

        def work(conn: Connection) -> None:
            now = now_ms()
            batch = _Batch()
            view_id = _record_view(ms, conn, feature_store, view, now, batch)
            online = Artifact(
                type="ferrostore.OnlineTable",
                name=f"{project}/{view.name}",
                uri=str(Path(feature_store.config.online_path)),
                external_id=f"online_table:{project}/{view.name}",
                properties={"project": project, "view": view.name},
            )
            online_id = ms._put_node(conn, online, now, batch=batch)
            exec_id = ms._put_node(
                conn,
                Execution(
                    type="ferrostore.Materialization",
                    last_known_state=ExecutionState.COMPLETE,
                    properties={
                        "project": project,
                        "view": view.name,
                        "start": start.isoformat(),
                        "end": end.isoformat(),
                        "rows": int(rows),
                    },
                ),
                now,
                batch=batch,
            )
            ms._put_event(conn, Event(EventType.INPUT, view_id, exec_id), now, batch=batch)
            ms._put_event(conn, Event(EventType.OUTPUT, online_id, exec_id), now, batch=batch)
            ctx_id = _project_context(ms, conn, project, now, batch)
            batch.link(t.lineage_associations, [{"context_id": ctx_id, "execution_id": exec_id}])
            batch.flush(conn)

        ms.db.run_in_transaction(work)

    _safely(f"the materialization of {getattr(view, 'name', view)!r}", record)


# ------------------------------------------------------------------------ vectors, stack


def record_collection_write(
    db: MetadataDB,
    collection: str,
    *,
    dimension: int,
    space: str,
    sources: Sequence[str],
    count: int,
) -> int | None:
    """Record documents written to a vector collection, with the sources they came from.

    Args:
        db: The metadata database.
        collection: The collection's name.
        dimension: Its vector dimension.
        space: Its distance (``cosine``, ``l2``, ``ip``).
        sources: The documents' source URIs (files, tables), distinct.
        count: How many records were written.

    Returns:
        The write execution's id (``None`` if recording failed; the error is logged).
    """

    def record() -> int:
        ms = lineage_store(db)

        def work(conn: Connection) -> int:
            now = now_ms()
            batch = _Batch()
            coll_id = ms._put_node(
                conn,
                Artifact(
                    type="ferrostore.VectorCollection",
                    name=collection,
                    uri=f"collections:/{collection}",
                    external_id=f"collection:{collection}",
                    properties={"collection": collection, "dimension": dimension, "space": space},
                ),
                now,
                batch=batch,
            )
            exec_id = ms._put_node(
                conn,
                Execution(
                    type="ferrostore.VectorWrite",
                    last_known_state=ExecutionState.COMPLETE,
                    properties={"collection": collection, "count": int(count)},
                ),
                now,
                batch=batch,
            )
            for source in dict.fromkeys(sources):
                source_id = ms._put_node(
                    conn,
                    Artifact(
                        type="ferrostore.DocumentSource",
                        name=source,
                        uri=source,
                        external_id=f"document_source:{source}",
                        properties={"source": source},
                    ),
                    now,
                    batch=batch,
                )
                ms._put_event(conn, Event(EventType.INPUT, source_id, exec_id), now, batch=batch)
            ms._put_event(conn, Event(EventType.OUTPUT, coll_id, exec_id), now, batch=batch)
            batch.flush(conn)
            return exec_id

        return ms.db.run_in_transaction(work)

    return _safely(f"a write to collection {collection!r}", record)


def record_stack_apply(
    db: MetadataDB,
    stack: str,
    *,
    spec: Mapping[str, Any],
    fingerprint: str,
    changes: Sequence[Mapping[str, Any]],
    applied_by: str,
    conn: Connection | None = None,
) -> int:
    """Record an ``apply`` of a declared stack: the spec it applied and what it changed.

    Unlike the other recorders this one raises: the stack records inside its own apply
    transaction (pass ``conn``), so the history and the state never disagree.

    Args:
        db: The metadata database.
        stack: The stack's name.
        spec: The spec applied (JSON-able).
        fingerprint: The spec's fingerprint.
        changes: The changes made (JSON-able dicts).
        applied_by: Who applied it.
        conn: A connection inside the caller's transaction; default: a new transaction.

    Returns:
        The apply execution's id.
    """
    ms = lineage_store(db)

    def work(c: Connection) -> int:
        now = now_ms()
        batch = _Batch()
        spec_id = ms._put_node(
            c,
            Artifact(
                type="ferrostore.StackSpec",
                name=f"{stack}/{fingerprint[:16]}",
                uri=f"stacks:/{stack}/{fingerprint[:16]}",
                external_id=f"stack_spec:{stack}/{fingerprint}",
                properties={"stack": stack, "fingerprint": fingerprint, "spec": dict(spec)},
            ),
            now,
            batch=batch,
        )
        exec_id = ms._put_node(
            c,
            Execution(
                type="ferrostore.StackApply",
                last_known_state=ExecutionState.COMPLETE,
                properties={
                    "stack": stack,
                    "fingerprint": fingerprint,
                    "spec": dict(spec),
                    "changes": [dict(ch) for ch in changes],
                    "applied_by": applied_by,
                },
            ),
            now,
            batch=batch,
        )
        ms._put_event(c, Event(EventType.INPUT, spec_id, exec_id), now, batch=batch)
        ctx = Context(type="ferrostore.Stack", name=stack, external_id=f"stack:{stack}")
        ctx_id = ms._put_node(c, ctx, now, batch=batch)
        batch.link(t.lineage_associations, [{"context_id": ctx_id, "execution_id": exec_id}])
        batch.link(t.lineage_attributions, [{"context_id": ctx_id, "artifact_id": spec_id}])
        batch.flush(c)
        return exec_id

    if conn is not None:
        return work(conn)
    return ms.db.run_in_transaction(work)
