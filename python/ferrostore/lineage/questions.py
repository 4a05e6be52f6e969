"""The lesson's four questions, one call each.

* :func:`why` — which dataset trained this model, from which features and raw data, in which
  run, and who approved it (``ferrostore lineage why models:/fraud-detector/Production``).
* :func:`serving` — which version of each model is in Production, or holds each alias, now.
* :func:`uses` — what was built from a data source (feature views, training sets, runs,
  models, online tables).

Current stages and aliases come from the registry's tables (the source of truth); the rest
from the lineage graph, walked by recursive SQL.

Example:
    >>> from ferrostore.metadata import MetadataDB
    >>> with MetadataDB("sqlite://") as db:
    ...     serving(db)
    []
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ferrostore.errors import InvalidArgument, NotFound
from ferrostore.lineage.recording import lineage_store
from ferrostore.lineage.store import MetadataStore
from ferrostore.lineage.types import Artifact, Direction, Execution, LineageGraph
from ferrostore.metadata import MetadataDB
from ferrostore.metadata import tables as t

__all__ = ["ModelLineage", "ServingEntry", "SourceUsage", "serving", "uses", "why"]

_MAX_HOPS = 16


@dataclass
class ModelLineage:
    """The answer to "why is this model what it is": :func:`why`'s result.

    Attributes:
        uri: The model URI asked about.
        name: The registered model.
        version: The version the URI resolves to.
        stage: Its current stage.
        aliases: Its aliases now.
        model: Its lineage artifact.
        runs: The runs that produced it.
        training_sets: The training sets those runs used.
        features: The feature references of those training sets.
        feature_views: The feature views they were built from.
        data_sources: The raw data behind those views.
        approvals: Stage transitions and alias moves of this version, oldest first.
        approved_by: Who approved what the URI names (its stage or alias), if recorded.
        graph: The whole subgraph (upstream, plus the approvals).
    """

    uri: str
    name: str
    version: int
    stage: str
    aliases: list[str]
    model: Artifact
    runs: list[Execution] = field(default_factory=list)
    training_sets: list[Artifact] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    feature_views: list[Artifact] = field(default_factory=list)
    data_sources: list[Artifact] = field(default_factory=list)
    approvals: list[Execution] = field(default_factory=list)
    approved_by: str | None = None
    graph: LineageGraph = field(default_factory=LineageGraph)


@dataclass(frozen=True)
class ServingEntry:
    """A model version serving now, in a stage or under an alias (:func:`serving`).

    Attributes:
        model: The registered model.
        version: The version.
        slot: ``"Production"`` (a stage) or ``"@champion"`` (an alias).
        approved_by: Who moved it there (from lineage, else the registry's history).
        approved_at: When, in ms since the epoch (``None`` if unknown).
        run_id: The run that produced the version, if any.
    """

    model: str
    version: int
    slot: str
    approved_by: str | None
    approved_at: int | None
    run_id: str | None


@dataclass
class SourceUsage:
    """What was built from a data source (:func:`uses`).

    Attributes:
        source: What was asked about.
        sources: The matching artifacts.
        feature_views: Feature views built on them.
        training_sets: Training sets built from those views.
        runs: Runs that used those training sets.
        model_versions: Model versions those runs produced.
        online_tables: Online tables materialized from them.
        graph: The downstream subgraph.
    """

    source: str
    sources: list[Artifact]
    feature_views: list[Artifact] = field(default_factory=list)
    training_sets: list[Artifact] = field(default_factory=list)
    runs: list[Execution] = field(default_factory=list)
    model_versions: list[Artifact] = field(default_factory=list)
    online_tables: list[Artifact] = field(default_factory=list)
    graph: LineageGraph = field(default_factory=LineageGraph)


def _open(db: MetadataDB | str | os.PathLike[str]) -> tuple[MetadataDB, bool]:
    if isinstance(db, MetadataDB):
        return db, False
    return MetadataDB(db), True


def _resolve(conn: Any, uri: str) -> tuple[str, int, str]:
    from ferrostore.registry.uris import parse_model_uri

    parsed = parse_model_uri(uri)
    if parsed.scheme != "models" or parsed.name is None:
        raise InvalidArgument(f"model URI {uri!r}: expected models:/<name>/<version|stage|@alias>")
    name = parsed.name
    mv = t.model_versions.c
    if (
        conn.execute(
            sa.select(t.registered_models.c.name).where(t.registered_models.c.name == name)
        ).first()
        is None
    ):
        raise NotFound(f"model URI {uri!r}: registered model {name!r} does not exist")
    query = sa.select(mv.version, mv.current_stage).where(mv.name == name)
    if parsed.version is not None:
        query = query.where(mv.version == parsed.version)
    elif parsed.alias is not None:
        al = t.registered_model_aliases.c
        query = query.where(
            mv.version
            == sa.select(al.version)
            .where(al.name == name, al.alias == parsed.alias)
            .scalar_subquery()
        )
    elif parsed.stage and parsed.stage.lower() != "latest":
        from ferrostore.registry.store import check_stage

        query = query.where(mv.current_stage == check_stage(parsed.stage))
    row = conn.execute(query.order_by(mv.version.desc()).limit(1)).first()
    if row is None:
        if parsed.alias is not None:
            what = f"under alias {parsed.alias!r}"
        elif parsed.version is not None:
            what = f"numbered {parsed.version}"
        else:
            what = f"in stage {parsed.stage!r}"
        raise NotFound(f"model URI {uri!r}: model {name!r} has no version {what}")
    return name, int(row.version), str(row.current_stage)


def _aliases(conn: Any, name: str, version: int) -> list[str]:
    al = t.registered_model_aliases.c
    rows = conn.execute(
        sa.select(al.alias).where(al.name == name, al.version == version).order_by(al.alias)
    )
    return [str(r[0]) for r in rows]


def _merge(first: LineageGraph, second: LineageGraph) -> LineageGraph:
    artifacts = {a.id: a for a in [*first.artifacts, *second.artifacts]}
    executions = {e.id: e for e in [*first.executions, *second.executions]}
    events = {(e.artifact_id, e.execution_id, e.type): e for e in [*first.events, *second.events]}
    return LineageGraph(
        artifacts=[artifacts[k] for k in sorted(artifacts, key=lambda x: x or 0)],
        executions=[executions[k] for k in sorted(executions, key=lambda x: x or 0)],
        events=list(events.values()),
        hops={**second.hops, **first.hops},
    )


def why(db: MetadataDB | str | os.PathLike[str], model_uri: str) -> ModelLineage:
    """Answer "which dataset, features, raw data and run made this model; who approved it".

    Args:
        db: The metadata database (open, or a path / URL).
        model_uri: ``models:/name/Production``, ``models:/name/3`` or ``models:/name@alias``.

    Returns:
        The model's lineage.

    Raises:
        InvalidArgument: A malformed URI.
        NotFound: No such model or version, or it has no recorded lineage.
    """
    database, owned = _open(db)
    try:
        store = lineage_store(database)
        name, version, stage = database.run_in_transaction(
            lambda conn: _resolve(conn, model_uri), readonly=True
        )
        aliases = database.run_in_transaction(
            lambda conn: _aliases(conn, name, version), readonly=True
        )
        found = store.get_artifacts(external_ids=[f"model_version:{name}/{version}"])
        if not found:
            raise NotFound(
                f"model URI {model_uri!r}: version {version} of {name!r} has no lineage "
                "recorded (registered before lineage was installed?)"
            )
        model = found[0]
        upstream = store.get_lineage_subgraph(model, _MAX_HOPS, Direction.UPSTREAM)
        around = store.get_lineage_subgraph(model, 1, Direction.DOWNSTREAM)
        approvals = sorted(
            (
                e
                for e in around.executions
                if e.type in ("ferrostore.StageTransition", "ferrostore.AliasMove")
            ),
            key=lambda e: (int(e.properties.get("timestamp", 0)), e.id or 0),  # type: ignore[arg-type]
        )
        answer = ModelLineage(
            uri=model_uri,
            name=name,
            version=version,
            stage=stage,
            aliases=aliases,
            model=model,
            graph=_merge(upstream, around),
            approvals=approvals,
        )
        by_type = _by_type(upstream)
        answer.runs = by_type.get("ferrostore.Run", [])
        answer.training_sets = by_type.get("ferrostore.TrainingSet", [])
        answer.feature_views = by_type.get("ferrostore.FeatureView", [])
        answer.data_sources = by_type.get("ferrostore.DataSource", [])
        refs: dict[str, None] = {}
        for ts in answer.training_sets:
            refs.update(dict.fromkeys(ts.properties.get("feature_refs", [])))  # type: ignore[arg-type]
        answer.features = list(refs)
        answer.approved_by = _approver(approvals, model_uri, stage)
        return answer
    finally:
        if owned:
            database.close()


def _approver(approvals: list[Execution], uri: str, stage: str) -> str | None:
    from ferrostore.registry.uris import parse_model_uri

    parsed = parse_model_uri(uri)
    for execution in reversed(approvals):
        props = execution.properties
        if parsed.alias is not None:
            if props.get("alias") == parsed.alias and props.get("action") == "set":
                return str(props.get("approved_by"))
        elif props.get("to_stage") == stage:
            return str(props.get("approved_by"))
    return None


def _by_type(graph: LineageGraph) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in [*graph.artifacts, *graph.executions]:
        out.setdefault(node.type or "", []).append(node)
    return out


def _latest_approval(
    store: MetadataStore, type_name: str, props: dict[str, Any]
) -> tuple[str, int] | None:
    found = store.get_executions(type_name=type_name, properties=props, limit=1, descending=True)
    if not found:
        return None
    p = found[0].properties
    return str(p.get("approved_by")), int(p.get("timestamp", 0))  # type: ignore[arg-type]


def serving(db: MetadataDB | str | os.PathLike[str]) -> list[ServingEntry]:
    """Answer "which version of each model is serving": Production versions and aliases now.

    Args:
        db: The metadata database (open, or a path / URL).

    Returns:
        One entry per Production version and per alias, by model then slot.
    """
    database, owned = _open(db)
    try:
        store = lineage_store(database)

        def read(conn: Any) -> tuple[list[Any], list[Any]]:
            mv, al = t.model_versions.c, t.registered_model_aliases.c
            prod = conn.execute(
                sa.select(mv.name, mv.version, mv.run_id)
                .where(mv.current_stage == "Production")
                .order_by(mv.name, mv.version)
            ).all()
            aliases = conn.execute(
                sa.select(al.name, al.alias, al.version, mv.run_id)
                .join(t.model_versions, sa.and_(mv.name == al.name, mv.version == al.version))
                .order_by(al.name, al.alias)
            ).all()
            return prod, aliases

        prod, aliases = database.run_in_transaction(read, readonly=True)
        entries = []
        for row in prod:
            found = _latest_approval(
                store,
                "ferrostore.StageTransition",
                {"model_name": row.name, "version": int(row.version), "to_stage": "Production"},
            ) or _registry_approval(database, row.name, int(row.version), to_stage="Production")
            entries.append(
                ServingEntry(
                    row.name,
                    int(row.version),
                    "Production",
                    found[0] if found else None,
                    found[1] if found else None,
                    row.run_id,
                )
            )
        for row in aliases:
            found = _latest_approval(
                store,
                "ferrostore.AliasMove",
                {
                    "model_name": row.name,
                    "version": int(row.version),
                    "alias": row.alias,
                    "action": "set",
                },
            ) or _registry_approval(database, row.name, int(row.version), alias=row.alias)
            entries.append(
                ServingEntry(
                    row.name,
                    int(row.version),
                    f"@{row.alias}",
                    found[0] if found else None,
                    found[1] if found else None,
                    row.run_id,
                )
            )
        entries.sort(key=lambda e: (e.model, e.slot != "Production", e.slot))
        return entries
    finally:
        if owned:
            database.close()


def _registry_approval(
    db: MetadataDB,
    name: str,
    version: int,
    *,
    to_stage: str | None = None,
    alias: str | None = None,
) -> tuple[str, int] | None:
    ev = t.model_registry_events.c
    query = sa.select(ev.actor, ev.timestamp).where(ev.name == name, ev.version == version)
    query = query.where(ev.to_stage == to_stage) if to_stage else query.where(ev.alias == alias)
    row = db.run_in_transaction(
        lambda conn: conn.execute(query.order_by(ev.id.desc()).limit(1)).first(), readonly=True
    )
    return (str(row.actor), int(row.timestamp)) if row is not None else None


def uses(db: MetadataDB | str | os.PathLike[str], source: str) -> SourceUsage:
    """Answer "what was built from this data": everything downstream of a source.

    Args:
        db: The metadata database (open, or a path / URL).
        source: A data source's path (absolute, or relative to the working directory), its
            name, or the name or URI of any artifact.

    Returns:
        What was built from it, by kind, and the downstream graph.

    Raises:
        NotFound: No artifact matches ``source``.
    """
    if not isinstance(source, str) or not source:
        raise InvalidArgument(f"source must be a non-empty string, got {source!r}")
    database, owned = _open(db)
    try:
        store = lineage_store(database)
        matches: dict[int, Artifact] = {}
        candidates = [source]
        if "://" not in source and ":/" not in source:
            candidates.append(os.path.abspath(source))
        for value in candidates:
            for found in (
                store.get_artifacts(uri=value),
                store.get_artifacts(name=value),
                store.get_artifacts(custom_properties={"name": value}),
            ):
                matches.update({a.id or 0: a for a in found})
        if not matches:
            raise NotFound(
                f"no recorded data source or artifact is named {source!r} (give a source's "
                "path or name, or an artifact's name or URI)"
            )
        sources = [matches[k] for k in sorted(matches)]
        graph = store.get_lineage_subgraph(sources, _MAX_HOPS, Direction.DOWNSTREAM)  # type: ignore[arg-type]
        by_type = _by_type(graph)
        starts = {a.id for a in sources}
        return SourceUsage(
            source=source,
            sources=sources,
            feature_views=[
                a for a in by_type.get("ferrostore.FeatureView", []) if a.id not in starts
            ],
            training_sets=[
                a for a in by_type.get("ferrostore.TrainingSet", []) if a.id not in starts
            ],
            runs=by_type.get("ferrostore.Run", []),
            model_versions=by_type.get("ferrostore.ModelVersion", []),
            online_tables=by_type.get("ferrostore.OnlineTable", []),
            graph=graph,
        )
    finally:
        if owned:
            database.close()
