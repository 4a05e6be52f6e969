"""Feature definitions, shaped like Feast's: entities, fields, sources, views, services.

Definitions are plain values: they describe data and are stored in the registry as JSON by
:meth:`ferrostore.features.FeatureStore.apply`. Unlike Feast, an entity may have several join
keys (a composite key).

Example:
    >>> from datetime import timedelta
    >>> from ferrostore.features import Entity, FeatureView, Field, FileSource
    >>> from ferrostore.features.types import Int64
    >>> customer = Entity(name="customer_id", join_keys=["customer_id"])
    >>> source = FileSource(path="data/tx.parquet", timestamp_field="event_timestamp")
    >>> view = FeatureView(name="tx", entities=[customer], ttl=timedelta(days=1),
    ...                    schema=[Field(name="total", dtype=Int64)], source=source)
    >>> view[["total"]].features
    ('total',)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ferrostore.errors import InvalidArgument, NotFound
from ferrostore.features.types import FeastType, ValueType, from_name

__all__ = [
    "Entity",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FileSource",
    "fingerprint",
]


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidArgument(f"{what} {value!r} is invalid: expected a non-empty string")
    if ":" in value:
        raise InvalidArgument(f"{what} {value!r} contains ':': reserved for 'view:feature'")
    return value


def _tags(tags: Mapping[str, str] | None, what: str) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise InvalidArgument(f"tags of {what} must map strings to strings, got {tags!r}")
    return dict(tags)


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, got {value!r}")
    return value


def fingerprint(spec: Mapping[str, Any]) -> str:
    """The SHA-256 of a definition's canonical JSON: equal specs have equal fingerprints.

    Args:
        spec: A definition's ``to_dict()``.

    Returns:
        A hex digest.
    """
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Entity:
    """The "who" of a feature lookup: a name and its join key columns.

    Args:
        name: The entity's unique name.
        join_keys: The key columns, in key order; defaults to ``[name]``. Several columns
            make a composite key (Feast allows one).
        value_type: The key type (``Int64``, ``String``... or a :class:`ValueType`);
            inferred from the source's schema at apply time when omitted. With a
            composite key it applies to every column.
        description: Free text.
        tags: String labels.
        owner: Who owns it.

    Raises:
        InvalidArgument: An empty name or join key, duplicate join keys, an unsupported type.
    """

    def __init__(
        self,
        name: str,
        *,
        join_keys: Sequence[str] | None = None,
        value_type: FeastType | ValueType | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = _name(name, "entity name")
        if join_keys is None:
            join_keys = [name]
        if isinstance(join_keys, str) or not isinstance(join_keys, Sequence) or not join_keys:
            raise InvalidArgument(
                f"join_keys of entity {name!r} must be a non-empty list of column names, "
                f"got {join_keys!r}"
            )
        self.join_keys = [_name(k, f"join key of entity {name!r}") for k in join_keys]
        if len(set(self.join_keys)) != len(self.join_keys):
            raise InvalidArgument(f"entity {name!r} repeats a join key: {self.join_keys}")
        if isinstance(value_type, ValueType):
            value_type = value_type.to_type()
        if value_type is not None and (
            not isinstance(value_type, FeastType)
            or value_type.online_type not in ("int32", "int64", "string", "bytes")
        ):
            raise InvalidArgument(
                f"value_type {value_type!r} of entity {name!r} is not a key type: expected "
                "Int32, Int64, String or Bytes"
            )
        self.value_type: FeastType | None = value_type
        self.description = _text(description, "description")
        self.tags = _tags(tags, f"entity {name!r}")
        self.owner = _text(owner, "owner")

    @property
    def join_key(self) -> str:
        """The first join key (Feast's single-key attribute)."""
        return self.join_keys[0]

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data."""
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "value_type": None if self.value_type is None else self.value_type.name,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entity:
        """Rebuild an entity from :meth:`to_dict`."""
        vt = data.get("value_type")
        return cls(
            name=data["name"],
            join_keys=data["join_keys"],
            value_type=None if vt is None else from_name(vt),
            description=data.get("description", ""),
            tags=data.get("tags"),
            owner=data.get("owner", ""),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(("Entity", self.name))

    def __repr__(self) -> str:
        return f"Entity(name={self.name!r}, join_keys={self.join_keys!r})"


class Field:
    """A named, typed column of a feature view.

    Args:
        name: The column's name.
        dtype: Its type, from :mod:`ferrostore.features.types`.
        description: Free text.
        tags: String labels.

    Raises:
        InvalidArgument: An empty name or a dtype that is not a feature type.
    """

    def __init__(
        self,
        name: str,
        dtype: FeastType,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.name = _name(name, "field name")
        if not isinstance(dtype, FeastType):
            raise InvalidArgument(
                f"dtype of field {name!r} must be a type from ferrostore.features.types "
                f"(Int64, Float32, String...), got {dtype!r}"
            )
        self.dtype = dtype
        self.description = _text(description, "description")
        self.tags = _tags(tags, f"field {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data."""
        return {
            "name": self.name,
            "dtype": self.dtype.name,
            "description": self.description,
            "tags": self.tags,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Field:
        """Rebuild a field from :meth:`to_dict`."""
        return cls(
            name=data["name"],
            dtype=from_name(data["dtype"]),
            description=data.get("description", ""),
            tags=data.get("tags"),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(("Field", self.name))

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, dtype={self.dtype!r})"


class FileSource:
    """A Parquet file or folder of Parquet files holding feature rows over time.

    Args:
        path: The file or folder; a relative path resolves against the repo root.
        timestamp_field: The event timestamp column.
        created_timestamp_column: An optional column breaking ties between rows with the
            same event timestamp (the greatest wins).
        field_mapping: Source column name to feature (or key) name, to rename columns.
        name: The source's name; defaults to the path.
        description: Free text.
        tags: String labels.
        owner: Who owns it.
        event_timestamp_column: Feast's old name of ``timestamp_field``.

    Raises:
        InvalidArgument: An empty path or timestamp field.
    """

    def __init__(
        self,
        path: str,
        *,
        timestamp_field: str = "",
        created_timestamp_column: str | None = None,
        field_mapping: Mapping[str, str] | None = None,
        name: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        event_timestamp_column: str = "",
    ) -> None:
        if not isinstance(path, str) or not path:
            raise InvalidArgument(f"FileSource path must be a non-empty string, got {path!r}")
        self.path = path
        timestamp_field = timestamp_field or event_timestamp_column
        if not isinstance(timestamp_field, str) or not timestamp_field:
            raise InvalidArgument(
                f"FileSource({path!r}) needs timestamp_field: the event timestamp column"
            )
        self.timestamp_field = timestamp_field
        self.created_timestamp_column = created_timestamp_column or None
        if field_mapping is not None and (
            not isinstance(field_mapping, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in field_mapping.items())
        ):
            raise InvalidArgument(
                f"field_mapping of FileSource({path!r}) must map column names to names"
            )
        self.field_mapping = dict(field_mapping or {})
        self.name = _text(name, "name") or path
        self.description = _text(description, "description")
        self.tags = _tags(tags, f"source {path!r}")
        self.owner = _text(owner, "owner")

    def source_column(self, name: str) -> str:
        """The source's column holding feature/key ``name`` (undoing ``field_mapping``)."""
        for src, dst in self.field_mapping.items():
            if dst == name:
                return src
        return name

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data."""
        return {
            "path": self.path,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "field_mapping": self.field_mapping,
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileSource:
        """Rebuild a source from :meth:`to_dict`."""
        data = dict(data)
        return cls(data.pop("path"), **data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileSource) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(("FileSource", self.path))

    def __repr__(self) -> str:
        return f"FileSource(path={self.path!r}, timestamp_field={self.timestamp_field!r})"


def _ttl(ttl: Any, view: str) -> dt.timedelta:
    if ttl is None:
        return dt.timedelta(0)
    if isinstance(ttl, int | float) and not isinstance(ttl, bool):
        ttl = dt.timedelta(seconds=ttl)
    if not isinstance(ttl, dt.timedelta) or ttl < dt.timedelta(0):
        raise InvalidArgument(
            f"ttl of feature view {view!r} must be a timedelta >= 0 (0 or None: no limit), "
            f"got {ttl!r}"
        )
    return ttl


class FeatureView:
    """A group of features of the same entities, read from one source, with a ttl.

    ``schema`` fields named like a join key of the entities declare that key's type; the
    others are the view's features.

    Args:
        name: The view's unique name.
        entities: The entities whose join keys identify a row (none: a global view is not
            supported, at least one is needed).
        ttl: How far back a feature row may be from the time it is read for (training or
            serving); ``0``/``None`` means no limit.
        schema: The fields; defaults to none (every source column is not inferred).
        source: Where the rows come from.
        online: Whether :meth:`FeatureStore.materialize` loads it into the online store.
        tags: String labels.
        description: Free text.
        owner: Who owns it.

    Raises:
        InvalidArgument: Bad names, no entity, no feature, a repeated field, a bad ttl.
    """

    def __init__(
        self,
        name: str,
        *,
        entities: Sequence[Entity] | None = None,
        ttl: dt.timedelta | float | None = dt.timedelta(0),
        schema: Sequence[Field] | None = None,
        source: FileSource,
        online: bool = True,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        owner: str = "",
    ) -> None:
        self.name = _name(name, "feature view name")
        entities = list(entities or [])
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise InvalidArgument(
                f"feature view {name!r} needs entities=[Entity(...), ...], got {entities!r}"
            )
        self.entities: list[Entity] = entities
        self.ttl = _ttl(ttl, name)
        if not isinstance(source, FileSource):
            raise InvalidArgument(
                f"source of feature view {name!r} must be a FileSource, got {source!r}"
            )
        self.source = source
        fields = list(schema or [])
        if not all(isinstance(f, Field) for f in fields):
            raise InvalidArgument(f"schema of feature view {name!r} must be a list of Field")
        names = [f.name for f in fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidArgument(f"feature view {name!r} repeats fields {dupes}")
        keys = self.join_keys
        if len(set(keys)) != len(keys):
            raise InvalidArgument(f"the entities of feature view {name!r} repeat join keys {keys}")
        self.entity_columns = [f for f in fields if f.name in keys]
        self.features = [f for f in fields if f.name not in keys]
        if not self.features:
            raise InvalidArgument(f"feature view {name!r} has no features in its schema")
        reserved = {source.timestamp_field, source.created_timestamp_column}
        clash = [f.name for f in self.features if f.name in reserved]
        if clash:
            raise InvalidArgument(
                f"feature view {name!r}: fields {clash} are the source's timestamp columns"
            )
        if not isinstance(online, bool):
            raise InvalidArgument(f"online of feature view {name!r} must be a bool")
        self.online = online
        self.tags = _tags(tags, f"feature view {name!r}")
        self.description = _text(description, "description")
        self.owner = _text(owner, "owner")

    @property
    def join_keys(self) -> list[str]:
        """The join key columns of every entity, in entity then key order."""
        return [k for e in self.entities for k in e.join_keys]

    @property
    def schema(self) -> list[Field]:
        """Entity columns declared in the schema, then the features."""
        return [*self.entity_columns, *self.features]

    @property
    def feature_names(self) -> list[str]:
        """The features' names, in schema order."""
        return [f.name for f in self.features]

    def feature(self, name: str) -> Field:
        """The feature ``name``; raises :class:`~ferrostore.errors.NotFound`."""
        for f in self.features:
            if f.name == name:
                return f
        raise NotFound(
            f"feature {name!r} is not in feature view {self.name!r}: it has {self.feature_names}"
        )

    def __getitem__(self, features: Sequence[str]) -> FeatureViewProjection:
        """A projection of this view on some of its features: ``view[["f1", "f2"]]``."""
        if isinstance(features, str):
            features = [features]
        return FeatureViewProjection(self, features)

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data (entities by name)."""
        return {
            "name": self.name,
            "entities": [e.name for e in self.entities],
            "ttl_micros": self.ttl // dt.timedelta(microseconds=1),
            "schema": [f.to_dict() for f in self.schema],
            "source": self.source.to_dict(),
            "online": self.online,
            "tags": self.tags,
            "description": self.description,
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], entities: Mapping[str, Entity]) -> FeatureView:
        """Rebuild a view from :meth:`to_dict` and the entities by name.

        Raises:
            NotFound: An entity of the view is not in ``entities``.
        """
        missing = [e for e in data["entities"] if e not in entities]
        if missing:
            raise NotFound(
                f"feature view {data['name']!r} uses unknown entities {missing}: "
                f"known entities are {sorted(entities)}"
            )
        return cls(
            name=data["name"],
            entities=[entities[e] for e in data["entities"]],
            ttl=dt.timedelta(microseconds=data["ttl_micros"]),
            schema=[Field.from_dict(f) for f in data["schema"]],
            source=FileSource.from_dict(data["source"]),
            online=data["online"],
            tags=data.get("tags"),
            description=data.get("description", ""),
            owner=data.get("owner", ""),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureView) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(("FeatureView", self.name))

    def __repr__(self) -> str:
        return f"FeatureView(name={self.name!r}, features={self.feature_names!r})"


class FeatureViewProjection:
    """Some features of one view, as ``view[["f1", "f2"]]`` makes.

    Args:
        view: The view.
        features: Names of its features.

    Raises:
        NotFound: A feature is not in the view.
        InvalidArgument: No feature, or a repeated one.
    """

    def __init__(self, view: FeatureView, features: Sequence[str]) -> None:
        features = list(features)
        if not features or len(set(features)) != len(features):
            raise InvalidArgument(
                f"projection of feature view {view.name!r} needs distinct feature names, "
                f"got {features!r}"
            )
        for f in features:
            view.feature(f)
        self.view = view
        self.name = view.name
        self.features = tuple(features)

    def to_dict(self) -> dict[str, Any]:
        """The projection as JSON-ready data."""
        return {"view": self.name, "features": list(self.features)}

    def __repr__(self) -> str:
        return f"FeatureViewProjection({self.name!r}, {list(self.features)!r})"


class FeatureService:
    """A named set of features (whole views or projections) for one model.

    Args:
        name: The service's unique name.
        features: Feature views and projections (``view[["f1"]]``).
        tags: String labels.
        description: Free text.
        owner: Who owns it.

    Raises:
        InvalidArgument: Bad name, or entries that are not views or projections.
    """

    def __init__(
        self,
        name: str,
        *,
        features: Sequence[FeatureView | FeatureViewProjection],
        tags: Mapping[str, str] | None = None,
        description: str = "",
        owner: str = "",
    ) -> None:
        self.name = _name(name, "feature service name")
        projections: list[FeatureViewProjection] = []
        for item in features or []:
            if isinstance(item, FeatureView):
                projections.append(FeatureViewProjection(item, item.feature_names))
            elif isinstance(item, FeatureViewProjection):
                projections.append(item)
            else:
                raise InvalidArgument(
                    f"feature service {name!r}: {item!r} is not a FeatureView or a projection"
                )
        if not projections:
            raise InvalidArgument(f"feature service {name!r} has no features")
        self.feature_view_projections = projections
        self.tags = _tags(tags, f"feature service {name!r}")
        self.description = _text(description, "description")
        self.owner = _text(owner, "owner")

    def feature_refs(self) -> list[str]:
        """The service's features as ``view:feature`` references."""
        return [f"{p.name}:{f}" for p in self.feature_view_projections for f in p.features]

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data (views by name)."""
        return {
            "name": self.name,
            "features": [p.to_dict() for p in self.feature_view_projections],
            "tags": self.tags,
            "description": self.description,
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], views: Mapping[str, FeatureView]) -> FeatureService:
        """Rebuild a service from :meth:`to_dict` and the views by name.

        Raises:
            NotFound: A view of the service is not in ``views``.
        """
        projections = []
        for p in data["features"]:
            if p["view"] not in views:
                raise NotFound(
                    f"feature service {data['name']!r} uses unknown feature view {p['view']!r}"
                )
            projections.append(FeatureViewProjection(views[p["view"]], p["features"]))
        return cls(
            name=data["name"],
            features=projections,
            tags=data.get("tags"),
            description=data.get("description", ""),
            owner=data.get("owner", ""),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureService) and other.to_dict() == self.to_dict()

    def __hash__(self) -> int:
        return hash(("FeatureService", self.name))

    def __repr__(self) -> str:
        return f"FeatureService(name={self.name!r}, features={self.feature_refs()!r})"
