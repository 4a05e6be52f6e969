"""The lineage data model, shaped like ML Metadata's protos.

Types declare typed properties; artifacts, executions and contexts are instances of a type
with declared ``properties`` (checked against the type) and free ``custom_properties``.
:class:`Event` links an artifact to an execution (read or written), attributions and
associations put artifacts and executions in contexts, and contexts nest in parent contexts.

Example:
    >>> t = ArtifactType(name="Dataset", properties={"rows": PropertyType.INT})
    >>> a = Artifact(type="Dataset", uri="s3://bucket/data.parquet", properties={"rows": 10})
    >>> a.state
    <ArtifactState.LIVE: 'LIVE'>
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from ferrostore.errors import InvalidArgument

__all__ = [
    "Artifact",
    "ArtifactState",
    "ArtifactType",
    "Association",
    "Attribution",
    "Context",
    "ContextType",
    "Direction",
    "Event",
    "EventType",
    "Execution",
    "ExecutionState",
    "ExecutionType",
    "LineageGraph",
    "ParentContext",
    "PropertyType",
    "PropertyValue",
]

PropertyValue = int | float | str | bool | dict[str, Any] | list[Any]
"""A property's value: INT, DOUBLE, STRING, BOOLEAN or STRUCT (JSON: a dict or a list)."""


class PropertyType(enum.StrEnum):
    """The type of a declared property (MLMD's ``PropertyType``)."""

    INT = "INT"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    STRUCT = "STRUCT"


class ArtifactState(enum.StrEnum):
    """An artifact's state (MLMD's ``Artifact.State``)."""

    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    LIVE = "LIVE"
    MARKED_FOR_DELETION = "MARKED_FOR_DELETION"
    DELETED = "DELETED"
    ABANDONED = "ABANDONED"
    REFERENCE = "REFERENCE"


class ExecutionState(enum.StrEnum):
    """An execution's last known state (MLMD's ``Execution.State``)."""

    UNKNOWN = "UNKNOWN"
    NEW = "NEW"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CACHED = "CACHED"
    CANCELED = "CANCELED"


class EventType(enum.StrEnum):
    """How an execution used an artifact (MLMD's ``Event.Type``)."""

    DECLARED_OUTPUT = "DECLARED_OUTPUT"
    DECLARED_INPUT = "DECLARED_INPUT"
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    INTERNAL_INPUT = "INTERNAL_INPUT"
    INTERNAL_OUTPUT = "INTERNAL_OUTPUT"

    @property
    def is_input(self) -> bool:
        """Whether the artifact flows into the execution (an ``*INPUT`` event)."""
        return self.value.endswith("INPUT")


class Direction(enum.StrEnum):
    """Which way :meth:`MetadataStore.get_lineage_subgraph` walks from its start node.

    ``UPSTREAM`` follows data back to what produced it (artifact -> the execution that
    output it -> that execution's inputs); ``DOWNSTREAM`` follows it forward; ``BOTH``
    ignores the direction of events, as MLMD's bidirectional query does.
    """

    UPSTREAM = "UPSTREAM"
    DOWNSTREAM = "DOWNSTREAM"
    BOTH = "BOTH"


@dataclass
class _Type:
    name: str
    properties: dict[str, PropertyType] = field(default_factory=dict)
    description: str | None = None
    base_type: str | None = None
    id: int | None = None

    kind: str = dataclasses.field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidArgument(f"type name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.properties, dict):
            raise InvalidArgument(
                f"properties of type {self.name!r} must be a dict of name to PropertyType, "
                f"got {self.properties!r}"
            )
        checked: dict[str, PropertyType] = {}
        for key, value in self.properties.items():
            if not isinstance(key, str) or not key:
                raise InvalidArgument(f"type {self.name!r}: property name {key!r} is invalid")
            try:
                checked[key] = PropertyType(value)
            except ValueError:
                raise InvalidArgument(
                    f"type {self.name!r}: property {key!r} has type {value!r}; expected one "
                    f"of {', '.join(p.value for p in PropertyType)}"
                ) from None
        self.properties = checked


@dataclass
class ArtifactType(_Type):
    """An artifact type: a name and the typed properties its artifacts carry.

    Attributes:
        name: Unique among artifact types.
        properties: Property name to :class:`PropertyType`.
        description: Free text.
        base_type: MLMD's system base type (``Dataset``, ``Model``...), informational.
        id: Set when read from a store.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "artifact"


@dataclass
class ExecutionType(_Type):
    """An execution type (a trainer, a join, a promotion); see :class:`ArtifactType`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "execution"


@dataclass
class ContextType(_Type):
    """A context type (an experiment, a project, a stack); see :class:`ArtifactType`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kind = "context"


@dataclass
class _Node:
    type_id: int | None = None
    type: str | None = None
    name: str | None = None
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    custom_properties: dict[str, PropertyValue] = field(default_factory=dict)
    external_id: str | None = None
    id: int | None = None
    create_time_since_epoch: int | None = None
    last_update_time_since_epoch: int | None = None


@dataclass
class Artifact(_Node):
    """An artifact: a dataset, a model, a feature view, a training set...

    Give its type by ``type_id`` or by ``type`` (the type's name). ``external_id`` is a
    caller-chosen unique key: putting an artifact whose ``external_id`` exists updates that
    artifact instead of creating another, so concurrent publishers converge.

    Attributes:
        uri: Where the artifact lives.
        state: :class:`ArtifactState` (default LIVE).
    """

    uri: str | None = None
    state: ArtifactState = ArtifactState.LIVE


@dataclass
class Execution(_Node):
    """An execution: a run, a join, a materialization, a promotion, a stack apply.

    Attributes:
        last_known_state: :class:`ExecutionState` (default NEW).
    """

    last_known_state: ExecutionState = ExecutionState.NEW


@dataclass
class Context(_Node):
    """A context grouping artifacts and executions: an experiment, a registered model...

    Its name is required and unique within its type.
    """


@dataclass
class Event:
    """An execution read (``*INPUT``) or wrote (``*OUTPUT``) an artifact.

    Attributes:
        artifact_id: The artifact (``None`` inside :meth:`MetadataStore.put_execution`).
        execution_id: The execution (``None`` inside ``put_execution``).
        type: :class:`EventType`.
        path: Where in the execution's inputs or outputs: a list of indexes and keys,
            e.g. ``["examples", 0]``.
        milliseconds_since_epoch: When; set by the store when ``None``.
    """

    type: EventType
    artifact_id: int | None = None
    execution_id: int | None = None
    path: list[int | str] = field(default_factory=list)
    milliseconds_since_epoch: int | None = None


@dataclass(frozen=True)
class Attribution:
    """An artifact belongs to a context."""

    context_id: int
    artifact_id: int


@dataclass(frozen=True)
class Association:
    """An execution belongs to a context."""

    context_id: int
    execution_id: int


@dataclass(frozen=True)
class ParentContext:
    """A context nested in another one."""

    child_id: int
    parent_id: int


@dataclass
class LineageGraph:
    """A subgraph returned by :meth:`MetadataStore.get_lineage_subgraph`.

    Attributes:
        artifacts: The artifacts reached, sorted by id.
        executions: The executions reached, sorted by id.
        events: The events between them.
        contexts: The contexts they belong to (empty unless asked for).
        attributions: Artifact-context links among them.
        associations: Execution-context links among them.
        hops: ``("artifact" | "execution", id)`` to its distance from the start.
    """

    artifacts: list[Artifact] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)
    attributions: list[Attribution] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)
    hops: dict[tuple[str, int], int] = field(default_factory=dict)

    def artifact(self, artifact_id: int) -> Artifact:
        """Return the artifact with this id. Raises KeyError when not in the graph."""
        for artifact in self.artifacts:
            if artifact.id == artifact_id:
                return artifact
        raise KeyError(artifact_id)

    def execution(self, execution_id: int) -> Execution:
        """Return the execution with this id. Raises KeyError when not in the graph."""
        for execution in self.executions:
            if execution.id == execution_id:
                return execution
        raise KeyError(execution_id)
