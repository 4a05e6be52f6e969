"""Lineage and provenance: ML Metadata's model on ferrostore's shared metadata database.

Types with typed properties; artifacts, executions and contexts; events, attributions,
associations and parent contexts; :class:`MetadataStore` with MLMD's ``put_*`` / ``get_*``
calls and recursive-SQL lineage queries. The feature store, the registry and the stack
record their lineage here on their own (see :mod:`ferrostore.lineage.recording`), and
:mod:`ferrostore.lineage.questions` answers the lesson's questions in one call each.

Example:
    >>> from ferrostore.lineage import MetadataStore, ArtifactType
    >>> with MetadataStore("sqlite://") as store:
    ...     store.put_artifact_type(ArtifactType("Dataset"))
    1
"""

from __future__ import annotations

from ferrostore.lineage.store import MetadataStore, NodeRef
from ferrostore.lineage.types import (
    Artifact,
    ArtifactState,
    ArtifactType,
    Association,
    Attribution,
    Context,
    ContextType,
    Direction,
    Event,
    EventType,
    Execution,
    ExecutionState,
    ExecutionType,
    LineageGraph,
    ParentContext,
    PropertyType,
    PropertyValue,
)

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
    "MetadataStore",
    "NodeRef",
    "ParentContext",
    "PropertyType",
    "PropertyValue",
]
