"""The feature registry in the metadata database: definitions as JSON, and materializations.

Every change of an ``apply`` is one transaction; definitions are keyed by
``(project, kind, name)`` and carry the fingerprint of their JSON, so a plan compares
fingerprints instead of whole objects.

Example:
    >>> from ferrostore.features import Entity
    >>> from ferrostore.features.registry import SqlRegistry
    >>> from ferrostore.metadata import MetadataDB
    >>> registry = SqlRegistry(MetadataDB("sqlite://"), "demo")
    >>> registry.apply([Entity(name="customer_id")]).created
    [('entity', 'customer_id')]
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ferrostore.errors import AlreadyExists, InvalidArgument, NotFound
from ferrostore.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FileSource,
    fingerprint,
)
from ferrostore.metadata import MetadataDB
from ferrostore.metadata.tables import feature_materializations, feature_registry_objects

__all__ = [
    "ENTITY",
    "FEATURE_SERVICE",
    "FEATURE_VIEW",
    "MaterializationInterval",
    "RegistryDiff",
    "SqlRegistry",
]

ENTITY = "entity"
FEATURE_VIEW = "feature_view"
FEATURE_SERVICE = "feature_service"
_KINDS = (ENTITY, FEATURE_VIEW, FEATURE_SERVICE)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Definition = Entity | FeatureView | FeatureService


def to_micros(when: dt.datetime) -> int:
    """Microseconds since the epoch of ``when``; naive datetimes are UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - _EPOCH) // dt.timedelta(microseconds=1)


def from_micros(micros: int) -> dt.datetime:
    """The UTC datetime ``micros`` microseconds after the epoch."""
    return _EPOCH + dt.timedelta(microseconds=micros)


def kind_of(obj: Any) -> str:
    """The registry kind of a definition object.

    Raises:
        InvalidArgument: ``obj`` is not an Entity, FeatureView or FeatureService.
    """
    if isinstance(obj, Entity):
        return ENTITY
    if isinstance(obj, FeatureView):
        return FEATURE_VIEW
    if isinstance(obj, FeatureService):
        return FEATURE_SERVICE
    raise InvalidArgument(
        f"{obj!r} cannot be applied: expected Entity, FeatureView or FeatureService objects"
    )


@dataclass
class RegistryDiff:
    """What an apply changes (or, for a plan, would change): ``(kind, name)`` pairs."""

    created: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    unchanged: list[tuple[str, str]] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        """Whether anything is created, updated or deleted."""
        return bool(self.created or self.updated or self.deleted)

    def lines(self) -> list[str]:
        """One human-readable line per change, e.g. ``+ feature_view customer_transactions``."""
        out = [f"+ {k} {n} (create)" for k, n in self.created]
        out += [f"~ {k} {n} (update)" for k, n in self.updated]
        out += [f"- {k} {n} (delete)" for k, n in self.deleted]
        out += [f"  {k} {n} (unchanged)" for k, n in self.unchanged]
        return out


@dataclass(frozen=True)
class MaterializationInterval:
    """One materialization of a view: the event time interval loaded and the rows read."""

    feature_view: str
    start: dt.datetime
    end: dt.datetime
    rows: int
    created_at: dt.datetime


class SqlRegistry:
    """Feature definitions of one project, stored in the metadata database.

    Args:
        db: The metadata database.
        project: The project's name.
    """

    def __init__(self, db: MetadataDB, project: str) -> None:
        self.db = db
        self.project = project

    def _rows(self, conn: Connection, kind: str | None = None) -> list[Any]:
        t = feature_registry_objects
        query = sa.select(t.c.kind, t.c.name, t.c.spec, t.c.fingerprint).where(
            t.c.project == self.project
        )
        if kind is not None:
            query = query.where(t.c.kind == kind)
        return list(conn.execute(query.order_by(t.c.kind, t.c.name)))

    def _load(self, rows: Sequence[Any]) -> dict[str, dict[str, Any]]:
        specs: dict[str, dict[str, Any]] = {k: {} for k in _KINDS}
        for row in rows:
            specs[row.kind][row.name] = json.loads(row.spec)
        entities = {n: Entity.from_dict(s) for n, s in specs[ENTITY].items()}
        views = {n: FeatureView.from_dict(s, entities) for n, s in specs[FEATURE_VIEW].items()}
        services = {
            n: FeatureService.from_dict(s, views) for n, s in specs[FEATURE_SERVICE].items()
        }
        return {ENTITY: entities, FEATURE_VIEW: views, FEATURE_SERVICE: services}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every definition of the project: ``{kind: {name: object}}``."""
        with self.db.transaction(readonly=True) as conn:
            return self._load(self._rows(conn))

    def list(self, kind: str) -> list[Any]:
        """The definitions of one kind, sorted by name."""
        objects = self.snapshot()[kind]
        return [objects[n] for n in sorted(objects)]

    def get(self, kind: str, name: str) -> Any:
        """One definition by kind and name.

        Raises:
            NotFound: No such definition in the project.
        """
        objects = self.snapshot()[kind]
        if name not in objects:
            known = ", ".join(sorted(objects)) or "none"
            raise NotFound(
                f"{kind.replace('_', ' ')} {name!r} is not registered in project "
                f"{self.project!r} (known: {known})"
            )
        return objects[name]

    def _diff(
        self,
        conn: Connection,
        objects: Sequence[Definition],
        delete: Sequence[Definition],
        partial: bool,
    ) -> tuple[RegistryDiff, dict[tuple[str, str], tuple[dict[str, Any], str]]]:
        current = {(r.kind, r.name): r.fingerprint for r in self._rows(conn)}
        wanted: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        for obj in objects:
            key = (kind_of(obj), obj.name)
            spec = obj.to_dict()
            fp = fingerprint(spec)
            if key in wanted and wanted[key][1] != fp:
                raise AlreadyExists(
                    f"two different {key[0].replace('_', ' ')} definitions are named "
                    f"{key[1]!r}: names must be unique"
                )
            wanted[key] = (spec, fp)
        diff = RegistryDiff()
        for key, (_, fp) in sorted(wanted.items()):
            if key not in current:
                diff.created.append(key)
            elif current[key] != fp:
                diff.updated.append(key)
            else:
                diff.unchanged.append(key)
        doomed = {(kind_of(o), o.name) for o in delete}
        if not partial:
            doomed |= set(current) - set(wanted)
        diff.deleted = sorted(k for k in doomed if k in current and k not in wanted)
        return diff, wanted

    def _check_references(self, conn: Connection, diff: RegistryDiff, wanted: Any) -> None:
        """Rebuild the resulting registry, raising NotFound on a dangling reference."""
        rows = {(r.kind, r.name): r for r in self._rows(conn)}
        for key in diff.deleted:
            rows.pop(key, None)
        merged = [_Row(k[0], k[1], r.spec) for k, r in rows.items() if k not in wanted] + [
            _Row(k[0], k[1], json.dumps(spec)) for k, (spec, _) in wanted.items()
        ]
        self._load(merged)

    def plan(
        self,
        objects: Sequence[Definition],
        *,
        objects_to_delete: Sequence[Definition] = (),
        partial: bool = True,
    ) -> RegistryDiff:
        """What :meth:`apply` would change, without changing anything.

        Raises:
            AlreadyExists: Two different definitions of one kind share a name.
            NotFound: A view uses an unknown entity, a service an unknown view.
        """
        with self.db.transaction(readonly=True) as conn:
            diff, wanted = self._diff(conn, objects, objects_to_delete, partial)
            self._check_references(conn, diff, wanted)
            return diff

    def apply(
        self,
        objects: Sequence[Definition],
        *,
        objects_to_delete: Sequence[Definition] = (),
        partial: bool = True,
    ) -> RegistryDiff:
        """Store definitions in one transaction: created, updated, and deleted ones.

        Args:
            objects: Definitions to create or update.
            objects_to_delete: Definitions to remove.
            partial: When ``False``, also remove every registered definition not in
                ``objects`` (what ``ferrostore apply`` does for a repo).

        Returns:
            The changes made.

        Raises:
            AlreadyExists: Two different definitions of one kind share a name.
            NotFound: A view uses an unknown entity, a service an unknown view.
        """

        def work(conn: Connection) -> RegistryDiff:
            diff, wanted = self._diff(conn, objects, objects_to_delete, partial)
            self._check_references(conn, diff, wanted)
            t = feature_registry_objects
            now = int(time.time() * 1e6)
            for kind, name in diff.deleted:
                conn.execute(
                    t.delete().where(
                        (t.c.project == self.project) & (t.c.kind == kind) & (t.c.name == name)
                    )
                )
            for kind, name in diff.created:
                spec, fp = wanted[(kind, name)]
                conn.execute(
                    t.insert().values(
                        project=self.project,
                        kind=kind,
                        name=name,
                        spec=json.dumps(spec, sort_keys=True),
                        fingerprint=fp,
                        created_at=now,
                        updated_at=now,
                    )
                )
            for kind, name in diff.updated:
                spec, fp = wanted[(kind, name)]
                conn.execute(
                    t.update()
                    .where((t.c.project == self.project) & (t.c.kind == kind) & (t.c.name == name))
                    .values(spec=json.dumps(spec, sort_keys=True), fingerprint=fp, updated_at=now)
                )
            return diff

        return self.db.run_in_transaction(work)

    def record_materialization(
        self, view: str, start: dt.datetime, end: dt.datetime, rows: int
    ) -> None:
        """Record that ``view`` was materialized over ``[start, end]``."""
        with self.db.transaction() as conn:
            conn.execute(
                feature_materializations.insert().values(
                    project=self.project,
                    feature_view=view,
                    start_ts=to_micros(start),
                    end_ts=to_micros(end),
                    rows=rows,
                    created_at=int(time.time() * 1e6),
                )
            )

    def materializations(self, view: str) -> list[MaterializationInterval]:
        """The materialized intervals of ``view``, oldest first."""
        t = feature_materializations
        with self.db.transaction(readonly=True) as conn:
            rows = conn.execute(
                sa.select(t)
                .where((t.c.project == self.project) & (t.c.feature_view == view))
                .order_by(t.c.id)
            )
            return [
                MaterializationInterval(
                    view,
                    from_micros(r.start_ts),
                    from_micros(r.end_ts),
                    r.rows,
                    from_micros(r.created_at),
                )
                for r in rows
            ]

    def last_materialized_end(self, view: str) -> dt.datetime | None:
        """The end of the latest materialized interval of ``view``, or ``None``."""
        t = feature_materializations
        with self.db.transaction(readonly=True) as conn:
            end = conn.execute(
                sa.select(sa.func.max(t.c.end_ts)).where(
                    (t.c.project == self.project) & (t.c.feature_view == view)
                )
            ).scalar()
        return None if end is None else from_micros(int(end))


@dataclass(frozen=True)
class _Row:
    kind: str
    name: str
    spec: str


def sources_of(objects: Sequence[Any]) -> list[FileSource]:
    """The sources of the feature views among ``objects``."""
    return [o.source for o in objects if isinstance(o, FeatureView)]
