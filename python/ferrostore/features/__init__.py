"""Feature store: Feast-shaped definitions and ``FeatureStore`` over the LMDB online store.

Example:
    >>> from datetime import timedelta
    >>> from ferrostore.features import Entity, FeatureView, Field, FileSource
    >>> from ferrostore.features.types import Int64
    >>> customer = Entity(name="customer_id", join_keys=["customer_id"])
    >>> view = FeatureView(name="tx", entities=[customer], ttl=timedelta(days=90),
    ...     schema=[Field(name="total", dtype=Int64)],
    ...     source=FileSource(path="data/tx.parquet", timestamp_field="event_timestamp"))
    >>> view.join_keys
    ['customer_id']
"""

from __future__ import annotations

from ferrostore.features import types
from ferrostore.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    FeatureViewProjection,
    Field,
    FileSource,
)
from ferrostore.features.online_response import OnlineResponse
from ferrostore.features.online_store import (
    FieldStatus,
    OnlineRead,
    OnlineStore,
    ViewSchema,
    WriteSummary,
)
from ferrostore.features.registry import RegistryDiff
from ferrostore.features.repo_config import RepoConfig
from ferrostore.features.store import FeatureStore, RetrievalJob
from ferrostore.features.types import ValueType

__all__ = [
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "FieldStatus",
    "FileSource",
    "OnlineRead",
    "OnlineResponse",
    "OnlineStore",
    "RegistryDiff",
    "RepoConfig",
    "RetrievalJob",
    "ValueType",
    "ViewSchema",
    "WriteSummary",
    "types",
]
