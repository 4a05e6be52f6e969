"""``plan``: the declared resources, the observed state, and the diff between them.

Every resource has a stable id ``kind.name`` and flat fields (nested mappings become dotted
keys, e.g. ``index.M`` or ``aliases.champion``). The desired side comes from
``ferrostore.yaml`` (and the feature repo's definitions modules); the observed side from the
metadata database, the vector catalogue and the folders, plus the ``stack_resources`` rows
that say what the stack last applied (deletes are only ever of those). A :class:`Plan` is
the per-resource diff, with field-level changes, replace markers, data-loss warnings and a
SHA-256 fingerprint of the observed state, so a saved plan can be refused once stale.

Example:
    >>> flatten({"a": {"b": 1}, "c": [1, 2]})
    {'a.b': 1, 'c': [1, 2]}
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ferrostore.errors import Conflict, InvalidArgument, NotFound
from ferrostore.metadata import MetadataDB
from ferrostore.metadata import tables as t
from ferrostore.stack.spec import StackSpec

__all__ = [
    "KINDS",
    "Change",
    "FieldChange",
    "Plan",
    "Resource",
    "StackContext",
    "flatten",
    "make_plan",
]

KINDS = (
    "metadata_database",
    "artifact_store",
    "feature_repo",
    "entity",
    "feature_view",
    "feature_service",
    "collection",
    "model",
    "serving",
    "monitoring",
)
"""Resource kinds in dependency order: created in this order, deleted in the reverse."""
_RANK = {k: i for i, k in enumerate(KINDS)}
_FEATURE_KINDS = ("entity", "feature_view", "feature_service")
_DIM_KEY = "ferrostore:dimension"
_INDEX_KEYS = {
    "M": "hnsw:M",
    "m": "hnsw:M",
    "construction_ef": "hnsw:construction_ef",
    "ef_construction": "hnsw:construction_ef",
    "search_ef": "hnsw:search_ef",
    "ef_search": "hnsw:search_ef",
}
_INDEX_FIELD = {
    "hnsw:M": "M",
    "hnsw:construction_ef": "construction_ef",
    "hnsw:search_ef": "search_ef",
}
_INDEX_DEFAULTS = {"M": 16, "construction_ef": 100, "search_ef": 100}
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", url)


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping of dotted keys (lists and scalars kept as values)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            out.update(flatten(item, f"{name}."))
        elif not (isinstance(item, Mapping) and not item):
            out[name] = item
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Resource:
    """One resource, desired or observed.

    Attributes:
        kind: One of :data:`KINDS`.
        name: Its name, unique within the kind.
        fields: Flat fields compared by the diff.
        protect: Whether destroying or replacing it is refused.
        spec: What apply writes (a feature definition's ``to_dict()``), if more than fields.
        info: Observed facts that are not compared (record counts, versions).
    """

    kind: str
    name: str
    fields: dict[str, Any]
    protect: bool = False
    spec: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The stable id ``kind.name``."""
        return f"{self.kind}.{self.name}"


@dataclass(frozen=True)
class FieldChange:
    """One field of a resource: ``old -> new`` (``None`` when absent)."""

    key: str
    old: Any
    new: Any
    forces_replace: bool = False


@dataclass(frozen=True)
class Change:
    """The planned change of one resource.

    Attributes:
        action: ``create``, ``update``, ``replace`` or ``delete``.
        kind: The resource's kind.
        name: The resource's name.
        fields: The changed fields (every field for a create or delete).
        protect: Whether the resource is protected.
        warnings: What would be lost.
    """

    action: str
    kind: str
    name: str
    fields: tuple[FieldChange, ...] = ()
    protect: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The stable id ``kind.name``."""
        return f"{self.kind}.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved plans, the journal, lineage)."""
        return {
            "action": self.action,
            "resource": self.id,
            "kind": self.kind,
            "name": self.name,
            "fields": [dataclasses.asdict(f) for f in self.fields],
            "protect": self.protect,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        """Rebuild a change from :meth:`to_dict`."""
        return cls(
            data["action"],
            data["kind"],
            data["name"],
            tuple(FieldChange(**f) for f in data["fields"]),
            bool(data["protect"]),
            tuple(data["warnings"]),
        )


_SYMBOL = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}


@dataclass
class Plan:
    """The difference between ``ferrostore.yaml`` and the current state.

    Attributes:
        stack: The stack's name.
        file: The stack file.
        spec_fingerprint: SHA-256 of the desired resources.
        state_fingerprint: SHA-256 of the observed state the plan was made from.
        changes: The changes, in dependency order (deletes in reverse order, last).
        warnings: Warnings not tied to a change (e.g. an alias pinned to a missing version).
        unchanged: How many declared resources need no change.
    """

    stack: str
    file: str
    spec_fingerprint: str
    state_fingerprint: str
    changes: list[Change]
    warnings: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def has_changes(self) -> bool:
        """Whether anything would change."""
        return bool(self.changes)

    def count(self, action: str) -> int:
        """How many changes of one action."""
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> str:
        """The summary line, e.g. ``Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy.``."""
        if not self.changes:
            return "No changes. The stack matches ferrostore.yaml."
        return (
            f"Plan: {self.count('create')} to add, {self.count('update')} to change, "
            f"{self.count('replace')} to replace, {self.count('delete')} to destroy."
        )

    def render(self) -> str:
        """The Terraform-style text: one block per change, warnings, the summary line."""
        lines = [f'Stack "{self.stack}" ({self.file})']
        if self.changes:
            lines.append("")
        for change in self.changes:
            note = ""
            if change.action == "replace":
                keys = [f.key for f in change.fields if f.forces_replace]
                note = f"  (replace: {', '.join(keys)} forces replacement)"
            elif change.action == "delete" and change.protect:
                note = "  (protected: never destroyed)"
            lines.append(f"  {_SYMBOL[change.action]} {change.id}{note}")
            for fc in change.fields:
                if change.action == "create":
                    lines.append(f"        {fc.key}: {_show(fc.new)}")
                elif change.action == "delete":
                    continue
                else:
                    mark = "   # forces replacement" if fc.forces_replace else ""
                    lines.append(f"        {fc.key}: {_show(fc.old)} -> {_show(fc.new)}{mark}")
        warnings = [w for c in self.changes for w in c.warnings] + self.warnings
        if warnings:
            lines += ["", "Warnings:"] + [f"  ! {w}" for w in warnings]
        if self.count("delete"):
            lines += ["", "Deletes run only with `apply --prune`."]
        lines += ["", self.summary()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as ``plan -out FILE`` saves it."""
        return {
            "format": "ferrostore.stack.plan/1",
            "stack": self.stack,
            "file": self.file,
            "spec_fingerprint": self.spec_fingerprint,
            "state_fingerprint": self.state_fingerprint,
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
            "unchanged": self.unchanged,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict`.

        Raises:
            InvalidArgument: Not a saved plan.
        """
        if not isinstance(data, Mapping) or data.get("format") != "ferrostore.stack.plan/1":
            raise InvalidArgument("not a saved ferrostore stack plan (format is missing)")
        return cls(
            data["stack"],
            data["file"],
            data["spec_fingerprint"],
            data["state_fingerprint"],
            [Change.from_dict(c) for c in data["changes"]],
            list(data.get("warnings", [])),
            int(data.get("unchanged", 0)),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the plan as JSON to ``path``."""
        out = Path(path)
        out.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True, default=str) + "\n")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plan:
        """Read a plan saved by :meth:`save`.

        Raises:
            NotFound: No such file.
            InvalidArgument: Not a saved plan.
        """
        src = Path(path)
        if not src.is_file():
            raise NotFound(f"plan file {str(src)!r} does not exist")
        try:
            data = json.loads(src.read_text())
        except json.JSONDecodeError as err:
            raise InvalidArgument(f"plan file {str(src)!r} is not JSON: {err}") from None
        return cls.from_dict(data)


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, default=str)


# --------------------------------------------------------------------------- context


class StackContext:
    """Where a stack's resources live, with handles opened on first use and closed together.

    Args:
        spec: The parsed stack.
    """

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        self.root = spec.path.parent
        self.vectors_path = self.root / "vectors"
        self._db: MetadataDB | None = None
        self._vdb: MetadataDB | None = None
        self._store: Any = None
        self._client: Any = None

    def db_exists(self) -> bool:
        """Whether the metadata database exists (always assumed for a server URL)."""
        if "://" in self.spec.database and not self.spec.database.startswith("sqlite"):
            return True
        return Path(self.spec.database).is_file()

    def db(self) -> MetadataDB:
        """The metadata database (created and migrated on first use)."""
        if self._db is None:
            self._db = MetadataDB(self.spec.database)
        return self._db

    def vector_db(self) -> MetadataDB | None:
        """The vector catalogue's database, or ``None`` if no collection folder exists yet."""
        if self._vdb is None:
            if not (self.vectors_path / "metadata.db").is_file():
                return None
            self._vdb = MetadataDB(self.vectors_path / "metadata.db")
        return self._vdb

    def vector_client(self) -> Any:
        """The ``PersistentClient`` holding the stack's collections (created on first use)."""
        if self._client is None:
            from ferrostore.vectors import PersistentClient

            self._client = PersistentClient(self.vectors_path)
        return self._client

    def feature_store(self) -> Any:
        """The feature repo's store, its registry in the stack's metadata database."""
        if self._store is None:
            from ferrostore.features import FeatureStore
            from ferrostore.features.repo_config import RepoConfig

            feats = self.spec.features
            if feats is None:
                raise InvalidArgument("the stack declares no feature repo")
            config = RepoConfig.load(feats.repo)
            changes: dict[str, Any] = {"registry": self.spec.database}
            if feats.online_store.get("path"):
                path = Path(str(feats.online_store["path"])).expanduser()
                changes["online_path"] = path if path.is_absolute() else feats.repo / path
            self._store = FeatureStore(config=dataclasses.replace(config, **changes))
        return self._store

    def close(self) -> None:
        """Close every handle opened."""
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._client is not None:
            self._client.close()
            self._client = None
        for db in (self._db, self._vdb):
            if db is not None:
                db.close()
        self._db = self._vdb = None

    def __enter__(self) -> StackContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- desired


def _import_definitions(repo: Path, paths: list[Path]) -> list[Any]:
    from ferrostore.features.definitions import Entity, FeatureService, FeatureView
    from ferrostore.features.repo_discovery import discover_objects

    if not paths:
        return discover_objects(repo)
    seen: dict[int, Any] = {}
    sys.path.insert(0, str(repo))
    try:
        for path in paths:
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
            name = f"_ferrostore_stack_{digest}_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise InvalidArgument(f"definitions module {str(path)!r} cannot be imported")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(name, None)
                raise InvalidArgument(
                    f"importing definitions module {str(path)!r} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            for value in vars(module).values():
                if isinstance(value, Entity | FeatureView | FeatureService):
                    seen.setdefault(id(value), value)
    finally:
        sys.path.remove(str(repo))
    order = {Entity: 0, FeatureView: 1, FeatureService: 2}
    return sorted(seen.values(), key=lambda o: (order[type(o)], o.name))


def _by_name(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {str(i["name"]): {k: v for k, v in i.items() if k != "name"} for i in items}


def feature_fields(
    kind: str, spec: Mapping[str, Any], join_keys: list[str] | None
) -> dict[str, Any]:
    """The flat fields of a feature definition's ``to_dict()`` (schema keyed by field name)."""
    data = {k: v for k, v in spec.items() if k != "name"}
    if kind == "feature_view":
        data["schema"] = _by_name(list(data.get("schema", [])))
        data["join_keys"] = join_keys
    if kind == "feature_service":
        data = {k: v for k, v in data.items() if k != "features"} | {
            "features": json.loads(json.dumps(spec.get("features"), default=str))
        }
    return flatten(data)


def _collection_fields(c: Any) -> dict[str, Any]:
    index = {"M": 16, "construction_ef": 100, "search_ef": 100}
    for key, value in c.index.items():
        if key not in _INDEX_KEYS:
            raise InvalidArgument(
                f"{c.name}: unknown index key {key!r}: expected M, construction_ef or search_ef"
            )
        index[_INDEX_FIELD[_INDEX_KEYS[key]]] = value
    return flatten(
        {"dimension": c.dimension, "space": c.space, "index": index, "metadata": c.metadata}
    )


def desired(ctx: StackContext) -> dict[str, Resource]:
    """The resources ``ferrostore.yaml`` declares, keyed by id, in dependency order.

    Raises:
        InvalidArgument: A definitions module fails to import, a bad collection name.
        NotFound: A view uses an undeclared entity, a missing Parquet source.
        SchemaMismatch: A view's fields do not match its source.
    """
    spec = ctx.spec
    out: list[Resource] = [
        Resource("metadata_database", spec.name, {"url": mask(spec.database)}),
        Resource("artifact_store", spec.name, {"root": str(spec.artifact_root)}),
    ]
    if spec.features is not None:
        store = ctx.feature_store()
        out.append(
            Resource(
                "feature_repo",
                store.project,
                flatten(
                    {
                        "repo": str(spec.features.repo),
                        "online_store": {
                            **spec.features.online_store,
                            "path": str(store.config.online_path),
                        },
                        "offline_store": spec.features.offline_store,
                    }
                ),
            )
        )
        out += _feature_resources(store, spec.features.repo, spec.features.definitions)
    from ferrostore.vectors import _validation

    for c in spec.collections:
        try:
            _validation.check_collection_name(c.name)
        except InvalidArgument as err:
            raise InvalidArgument(f"{spec.path}: collection {c.name!r}: {err}") from None
        out.append(Resource("collection", c.name, _collection_fields(c), c.protect))
    for m in spec.models:
        fields = flatten({"description": m.description, "tags": m.tags, "aliases": m.aliases})
        out.append(Resource("model", m.name, fields, m.protect))
    if spec.serving:
        out.append(Resource("serving", spec.name, flatten(spec.serving)))
    if spec.monitoring:
        out.append(Resource("monitoring", spec.name, flatten(spec.monitoring)))
    return {r.id: r for r in out}


def _feature_resources(store: Any, repo: Path, paths: list[Path]) -> list[Resource]:
    from ferrostore.features.definitions import Entity, FeatureView
    from ferrostore.features.registry import kind_of

    objects = _import_definitions(repo, paths)
    entities = {o.name for o in objects if isinstance(o, Entity)}
    out: dict[str, Resource] = {}
    for obj in objects:
        kind = kind_of(obj)
        if isinstance(obj, FeatureView):
            for entity in obj.entities:
                if entity.name not in entities:
                    raise NotFound(
                        f"feature view {obj.name!r} uses entity {entity.name!r}, which no "
                        "definitions module declares"
                    )
            store._check_source(obj)
        spec = obj.to_dict()
        keys = list(obj.join_keys) if isinstance(obj, FeatureView) else None
        res = Resource(
            kind, obj.name, feature_fields(kind, spec, keys), spec=spec, info={"obj": obj}
        )
        if res.id in out and out[res.id].spec != spec:
            raise InvalidArgument(f"two different definitions are named {res.id!r}")
        out[res.id] = res
    return list(out.values())


# --------------------------------------------------------------------------- observed


@dataclass
class Observed:
    """The current state: observed resources and the stack's ownership records."""

    resources: dict[str, Resource]
    owned: dict[str, Resource]

    def fingerprint(self) -> str:
        """SHA-256 of everything observed (what a saved plan is checked against)."""
        return _digest(
            {
                "observed": {
                    i: [r.fields, r.info.get("records")] for i, r in self.resources.items()
                },
                "owned": {i: [r.fields, r.protect] for i, r in self.owned.items()},
            }
        )


def read_owned(conn: Any, stack: str) -> dict[str, Resource]:
    """The ``stack_resources`` rows of ``stack``, as resources keyed by id."""
    sr = t.stack_resources.c
    out = {}
    for row in conn.execute(sa.select(t.stack_resources).where(sr.stack == stack)):
        kind, _, name = row.resource.partition(".")
        out[row.resource] = Resource(kind, name, json.loads(row.spec), bool(row.protect))
    return out


def observe(ctx: StackContext, want: Mapping[str, Resource]) -> Observed:
    """Read the current state of every resource declared in ``want`` or owned by the stack."""
    spec = ctx.spec
    found: dict[str, Resource] = {}
    owned: dict[str, Resource] = {}
    if ctx.db_exists():
        db = ctx.db()
        with db.transaction(readonly=True) as conn:
            owned = read_owned(conn, spec.name)
            ids = set(want) | set(owned)
            found.update(_observe_db(conn, spec, ids, want, owned))
        found[f"metadata_database.{spec.name}"] = Resource(
            "metadata_database", spec.name, {"url": mask(spec.database)}
        )
    ids = set(want) | set(owned)
    art = f"artifact_store.{spec.name}"
    if spec.artifact_root.is_dir():
        found[art] = Resource("artifact_store", spec.name, {"root": str(spec.artifact_root)})
    elif art in owned and Path(str(owned[art].fields.get("root"))).is_dir():
        found[art] = owned[art]
    for rid in ids:
        kind = rid.partition(".")[0]
        if kind == "feature_repo" and rid in owned:
            path = owned[rid].fields.get("online_store.path")
            if path and Path(str(path)).is_dir():
                found[rid] = owned[rid]
        elif kind in ("serving", "monitoring") and rid in owned:
            found[rid] = owned[rid]
    if rid_feature := next((i for i in want if i.startswith("feature_repo.")), None):
        path = want[rid_feature].fields.get("online_store.path")
        if rid_feature not in found and path and Path(str(path)).is_dir():
            found[rid_feature] = Resource(
                "feature_repo", rid_feature[13:], dict(want[rid_feature].fields)
            )
    names = {i.partition(".")[2] for i in ids if i.startswith("collection.")}
    vdb = ctx.vector_db() if names else None
    if vdb is not None:
        with vdb.transaction(readonly=True) as conn:
            found.update(_observe_collections(conn, names, want, owned))
    return Observed(found, owned)


def _managed(
    rid: str, prefix: str, want: Mapping[str, Resource], owned: Mapping[str, Resource]
) -> set[str]:
    keys: set[str] = set()
    for side in (want, owned):
        if rid in side:
            keys |= {k[len(prefix) :] for k in side[rid].fields if k.startswith(prefix)}
    return keys


def _observe_collections(
    conn: Any, names: set[str], want: Mapping[str, Resource], owned: Mapping[str, Resource]
) -> dict[str, Resource]:
    vc = t.vector_collections.c
    out = {}
    rows = conn.execute(sa.select(t.vector_collections).where(vc.name.in_(sorted(names))))
    for row in rows:
        rid = f"collection.{row.name}"
        meta = json.loads(row.metadata) if row.metadata else {}
        dim = row.dimension if row.dimension is not None else meta.get(_DIM_KEY)
        managed = _managed(rid, "metadata.", want, owned)
        user = {k: v for k, v in meta.items() if k in managed}
        fields = flatten(
            {
                "dimension": dim,
                "space": row.space,
                "index": {
                    "M": row.hnsw_m,
                    "construction_ef": row.hnsw_construction_ef,
                    "search_ef": row.hnsw_search_ef,
                },
                "metadata": user,
            }
        )
        out[rid] = Resource(
            "collection", row.name, fields, info={"records": row.record_count, "metadata": meta}
        )
    return out


def _observe_db(
    conn: Any,
    spec: StackSpec,
    ids: set[str],
    want: Mapping[str, Resource],
    owned: Mapping[str, Resource],
) -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    project = next((i.partition(".")[2] for i in ids if i.startswith("feature_repo.")), None)
    if project is not None:
        fo = t.feature_registry_objects.c
        rows = conn.execute(sa.select(fo.kind, fo.name, fo.spec).where(fo.project == project)).all()
        specs = {(r.kind, r.name): json.loads(r.spec) for r in rows}
        for (kind, name), item in specs.items():
            rid = f"{kind}.{name}"
            if rid not in ids:
                continue
            keys = None
            if kind == "feature_view":
                keys = []
                for entity in item.get("entities", []):
                    keys += specs.get(("entity", entity), {}).get("join_keys", [entity])
            out[rid] = Resource(kind, name, feature_fields(kind, item, keys), spec=item)
    models = sorted(i.partition(".")[2] for i in ids if i.startswith("model."))
    if models:
        rm, tg, al, mv = (
            t.registered_models.c,
            t.registered_model_tags.c,
            t.registered_model_aliases.c,
            t.model_versions.c,
        )
        rows = {
            r.name: r
            for r in conn.execute(sa.select(t.registered_models).where(rm.name.in_(models)))
        }
        tags: dict[str, dict[str, str]] = {n: {} for n in rows}
        for r in conn.execute(sa.select(tg.name, tg.key, tg.value).where(tg.name.in_(list(rows)))):
            tags[r.name][r.key] = r.value
        aliases: dict[str, dict[str, int]] = {n: {} for n in rows}
        for r in conn.execute(
            sa.select(al.name, al.alias, al.version).where(al.name.in_(list(rows)))
        ):
            aliases[r.name][r.alias] = int(r.version)
        versions: dict[str, list[int]] = {n: [] for n in rows}
        for r in conn.execute(sa.select(mv.name, mv.version).where(mv.name.in_(list(rows)))):
            versions[r.name].append(int(r.version))
        for name, row in rows.items():
            rid = f"model.{name}"
            mtags = _managed(rid, "tags.", want, owned)
            maliases = _managed(rid, "aliases.", want, owned)
            fields = flatten(
                {
                    "description": row.description,
                    "tags": {k: v for k, v in tags[name].items() if k in mtags},
                    "aliases": {k: v for k, v in aliases[name].items() if k in maliases},
                }
            )
            out[rid] = Resource(
                "model",
                name,
                fields,
                info={"versions": sorted(versions[name]), "records": len(versions[name])},
            )
    return out


# --------------------------------------------------------------------------- diff


def _forces(kind: str, key: str, old: Any, new: Any) -> bool:
    if old is None or new is None:
        return False
    if kind == "collection":
        return key in ("dimension", "space", "index.M", "index.construction_ef")
    if kind == "feature_view":
        return key in ("entities", "join_keys") or (
            key.startswith("schema.") and key.endswith(".dtype")
        )
    if kind == "entity":
        return key in ("join_keys", "value_type")
    return False


def _field_changes(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a != b:
            out.append(FieldChange(key, a, b, _forces(kind, key, a, b)))
    return out


def _loss(kind: str, res: Resource | None) -> str | None:
    if res is None:
        return None
    if kind == "collection":
        n = res.info.get("records") or 0
        return f"collection.{res.name}: its {n:,} records are deleted" if n else None
    if kind == "feature_view" and res.fields.get("online"):
        return f"feature_view.{res.name}: its online rows are deleted (materialize again)"
    if kind == "model" and res.info.get("records"):
        n = res.info["records"]
        return f"model.{res.name}: its {n} registered version(s) are deleted"
    return None


def _pending_aliases(res: Resource, seen: Resource | None, warnings: list[str]) -> Resource:
    versions = set(seen.info.get("versions", [])) if seen is not None else set()
    fields = dict(res.fields)
    for key, version in res.fields.items():
        if key.startswith("aliases.") and version not in versions:
            warnings.append(
                f"model.{res.name}: alias {key[8:]!r} pins version {version}, which is not "
                "registered yet: left as it is until it exists"
            )
            if seen is not None and key in seen.fields:
                fields[key] = seen.fields[key]
            else:
                fields.pop(key)
    return dataclasses.replace(res, fields=fields)


def diff(
    want: Mapping[str, Resource], seen: Observed, *, destroy: bool = False
) -> tuple[list[Change], list[str], int]:
    """The changes turning ``seen`` into ``want``; deletes only of owned resources.

    Returns:
        The changes (dependency order, deletes last in reverse order), global warnings and
        how many declared resources are unchanged.

    Raises:
        Conflict: A protected resource would be replaced.
    """
    changes: list[Change] = []
    deletes: list[Change] = []
    warnings: list[str] = []
    unchanged = 0
    for rid, res in want.items():
        current = seen.resources.get(rid)
        if res.kind == "model":
            res = _pending_aliases(res, current, warnings)
        if current is None:
            fields = tuple(FieldChange(k, None, v) for k, v in sorted(res.fields.items()))
            changes.append(Change("create", res.kind, res.name, fields, res.protect))
            continue
        fcs = _field_changes(res.kind, current.fields, res.fields)
        if not fcs:
            unchanged += 1
            continue
        if any(f.forces_replace for f in fcs):
            if res.protect:
                keys = ", ".join(f.key for f in fcs if f.forces_replace)
                raise Conflict(
                    f"{rid} is protected (protect: true) but changing {keys} forces its "
                    "replacement: revert the change, or remove protect first"
                )
            loss = _loss(res.kind, current)
            changes.append(
                Change(
                    "replace", res.kind, res.name, tuple(fcs), res.protect, (loss,) if loss else ()
                )
            )
        else:
            changes.append(Change("update", res.kind, res.name, tuple(fcs), res.protect))
    for rid, rec in seen.owned.items():
        if rid in want or (destroy and rec.kind in ("metadata_database", "artifact_store")):
            continue
        current = seen.resources.get(rid)
        fields = tuple(FieldChange(k, v, None) for k, v in sorted((current or rec).fields.items()))
        loss = _loss(rec.kind, current)
        notes = [loss] if loss else []
        if rec.protect:
            notes.append(f"{rid} is protected (protect: true): it is never destroyed")
        deletes.append(Change("delete", rec.kind, rec.name, fields, rec.protect, tuple(notes)))
    changes.sort(key=lambda c: (_RANK[c.kind], c.name))
    deletes.sort(key=lambda c: (-_RANK[c.kind], c.name))
    return changes + deletes, warnings, unchanged


def spec_fingerprint(want: Mapping[str, Resource]) -> str:
    """SHA-256 of the desired resources (what ``ferrostore.yaml`` declares)."""
    return _digest({i: [r.fields, r.protect, r.spec] for i, r in want.items()})


def make_plan(
    ctx: StackContext, *, destroy: bool = False
) -> tuple[Plan, dict[str, Resource], Observed]:
    """Plan the stack of ``ctx``: desired resources, observed state, and their diff.

    Args:
        ctx: The stack.
        destroy: Plan the removal of everything the stack declared or owns instead.

    Returns:
        The plan, the desired resources and the observed state.
    """
    want = desired(ctx)
    seen = observe(ctx, want)
    if destroy:
        owned = dict(seen.owned)
        for rid, res in want.items():
            if rid in seen.resources and rid not in owned:
                owned[rid] = dataclasses.replace(seen.resources[rid], protect=res.protect)
            elif rid in owned:
                owned[rid] = dataclasses.replace(
                    owned[rid], protect=owned[rid].protect or res.protect
                )
        changes, warnings, _ = diff({}, Observed(seen.resources, owned), destroy=True)
        protected = [c.id for c in changes if c.protect]
        if protected:
            raise Conflict(
                f"cannot destroy the stack: {', '.join(protected)} is protected (protect: true); "
                "remove protect from ferrostore.yaml and apply first"
            )
        plan = Plan(
            ctx.spec.name,
            str(ctx.spec.path),
            spec_fingerprint(want),
            seen.fingerprint(),
            changes,
            warnings,
        )
        return plan, want, seen
    changes, warnings, unchanged = diff(want, seen)
    plan = Plan(
        ctx.spec.name,
        str(ctx.spec.path),
        spec_fingerprint(want),
        seen.fingerprint(),
        changes,
        warnings,
        unchanged,
    )
    return plan, want, seen
