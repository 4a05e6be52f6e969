"""The tables of the shared metadata schema, as SQLAlchemy Core objects.

Every area of ferrostore (feature registry, model registry, tracking, lineage, vector catalogue)
declares its tables on :data:`metadata` here, and adds an Alembic migration under
``ferrostore/metadata/migrations/versions`` that creates them. The naming convention gives
every constraint a stable name, which SQLite batch migrations need to alter them later.

Example:
    >>> from ferrostore.metadata.tables import counters, metadata
    >>> counters.name in metadata.tables
    True
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["NAMING_CONVENTION", "counters", "ferrostore_info", "metadata"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names used by every table of the schema (and by the migrations)."""

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""The one :class:`sqlalchemy.MetaData` holding every table of the shared schema."""

ferrostore_info = sa.Table(
    "ferrostore_info",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
"""Facts about the database itself: ``instance_id`` (a UUID) and ``created_at`` (ISO 8601)."""

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
"""Named monotonic counters, advanced by :meth:`ferrostore.metadata.MetadataDB.next_value`."""


# --- Tracking and model registry (ferrostore.registry; migration 0002_tracking_registry) ---

_BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("artifact_location", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.Text, nullable=False),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("last_update_time", sa.BigInteger, nullable=False),
)
"""Tracking experiments: MLflow's, ids are decimal strings from the ``experiment_id`` counter."""

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column(
        "experiment_id",
        sa.Text,
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
"""Tags of experiments."""

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column(
        "experiment_id",
        sa.Text,
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("run_name", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("lifecycle_stage", sa.Text, nullable=False),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("parent_run_id", sa.Text, nullable=True),
)
"""Tracking runs (MLflow's RunInfo); ``run_id`` is a 32-character hex UUID."""

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column(
        "run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index("ix_run_params_key_value", "key", "value", "run_id"),
    sqlite_with_rowid=False,
)
"""Run parameters: written once per key.

Stored by (run_id, key) (on SQLite ``WITHOUT ROWID``: a run's data is one B-tree search); the
(key, value) index holds the run id, so a filter finds its runs from the index alone (0007).
"""

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column(
        "run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index("ix_run_tags_key_value", "key", "value", "run_id"),
    sqlite_with_rowid=False,
)
"""Run tags: the last value set wins. Stored and indexed as :data:`run_params`."""

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("value", sa.Float(precision=53), nullable=True),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Index("ix_run_metrics_run_id_key", "run_id", "key"),
)
"""Every logged metric point, append-only (NaN kept as ``is_nan``: SQLite stores NaN as NULL)."""

run_latest_metrics = sa.Table(
    "run_latest_metrics",
    metadata,
    sa.Column(
        "run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Float(precision=53), nullable=True),
    sa.Column("is_nan", sa.Boolean, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Index("ix_run_latest_metrics_key_value", "key", "value", "is_nan", "run_id"),
    sqlite_with_rowid=False,
)
"""The latest point of each metric of a run (greatest step, then timestamp), kept on write.

Stored and indexed as :data:`run_params` (the index also holds ``is_nan``, which filters test).
"""

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column(
        "run_id", sa.Text, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
)
"""The artifact manifest of each run: artifact path -> content hash in the artifact store."""

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("last_updated_time", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
)
"""Registered models of the model registry."""

registered_model_tags = sa.Table(
    "registered_model_tags",
    metadata,
    sa.Column(
        "name",
        sa.Text,
        sa.ForeignKey("registered_models.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
"""Tags of registered models."""

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column(
        "name",
        sa.Text,
        sa.ForeignKey("registered_models.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("last_updated_time", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("current_stage", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=True, index=True),
    sa.Column("run_link", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Index("ix_model_versions_name_current_stage", "name", "current_stage"),
)
"""Model versions; numbers come from the ``model_version:<name>`` counter, never reused."""

model_version_tags = sa.Table(
    "model_version_tags",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
    sa.Index("ix_model_version_tags_key_value", "key", "value"),
)
"""Tags of model versions."""

registered_model_aliases = sa.Table(
    "registered_model_aliases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("alias", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
)
"""Aliases: a name pointing at one version of a registered model."""

model_registry_events = sa.Table(
    "model_registry_events",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("from_stage", sa.Text, nullable=True),
    sa.Column("to_stage", sa.Text, nullable=True),
    sa.Column("alias", sa.Text, nullable=True),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Index("ix_model_registry_events_name_version", "name", "version"),
)
"""Append-only history of versions created/deleted, stage changes and alias moves (audit)."""

model_evaluations = sa.Table(
    "model_evaluations",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("dataset", sa.Text, nullable=True),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    ),
    sa.Index("ix_model_evaluations_name_version", "name", "version"),
)
"""Evaluations of model versions (Vertex-style): metrics as JSON, on a named dataset."""


# --- Feature registry (ferrostore.features; migration 0003_feature_registry) ---

feature_registry_objects = sa.Table(
    "feature_registry_objects",
    metadata,
    sa.Column("project", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
"""Feature definitions (entity, feature_view, feature_service) as JSON, with a fingerprint."""

feature_materializations = sa.Table(
    "feature_materializations",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column("project", sa.Text, nullable=False),
    sa.Column("feature_view", sa.Text, nullable=False),
    sa.Column("start_ts", sa.BigInteger, nullable=False),
    sa.Column("end_ts", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_feature_materializations_project_view", "project", "feature_view"),
)
"""Materialized intervals per feature view (microseconds since the epoch, UTC)."""

# --- end of feature registry tables ---


# --- Lineage (ferrostore.lineage; migration 0004_lineage) ---

lineage_types = sa.Table(
    "lineage_types",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("base_type", sa.Text, nullable=True),
    sa.Column("create_time", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("kind", "name", name="uq_lineage_types_kind_name"),
)
"""Artifact, execution and context types (``kind``: artifact / execution / context)."""

lineage_type_properties = sa.Table(
    "lineage_type_properties",
    metadata,
    sa.Column(
        "type_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_types.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("data_type", sa.Text, nullable=False),
)
"""The typed properties a lineage type declares (INT, DOUBLE, STRING, BOOLEAN, STRUCT)."""


def _lineage_node_table(name: str, *, name_nullable: bool, with_uri: bool) -> sa.Table:
    columns: list[sa.Column[object]] = [
        sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
        sa.Column("type_id", sa.BigInteger, sa.ForeignKey("lineage_types.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=name_nullable),
        sa.Column("external_id", sa.Text, nullable=True, unique=True),
        sa.Column("state", sa.Text, nullable=True),
        sa.Column("create_time", sa.BigInteger, nullable=False),
        sa.Column("last_update_time", sa.BigInteger, nullable=False),
    ]
    if with_uri:
        columns.append(sa.Column("uri", sa.Text, nullable=True, index=True))
    return sa.Table(
        name,
        metadata,
        *columns,
        sa.UniqueConstraint("type_id", "name", name=f"uq_{name}_type_id_name"),
    )


def _lineage_property_table(name: str, owner: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "node_id",
            sa.BigInteger,
            sa.ForeignKey(f"{owner}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("is_custom", sa.Boolean, primary_key=True),
        sa.Column("data_type", sa.Text, nullable=False),
        sa.Column("int_value", sa.BigInteger, nullable=True),
        sa.Column("double_value", sa.Float, nullable=True),
        sa.Column("string_value", sa.Text, nullable=True),
        sa.Index(f"ix_{name}_name_string_value", "name", "string_value"),
    )


lineage_artifacts = _lineage_node_table("lineage_artifacts", name_nullable=True, with_uri=True)
"""Artifacts (datasets, models, feature views...); ``state`` is MLMD's artifact state."""

lineage_executions = _lineage_node_table("lineage_executions", name_nullable=True, with_uri=False)
"""Executions (runs, builds, promotions...); ``state`` is the last known execution state."""

lineage_contexts = _lineage_node_table("lineage_contexts", name_nullable=False, with_uri=False)
"""Contexts (experiments, registered models, projects, stacks); unique name per type."""

lineage_artifact_properties = _lineage_property_table(
    "lineage_artifact_properties", "lineage_artifacts"
)
"""Artifact properties (declared by the type) and custom properties, one row per value."""

lineage_execution_properties = _lineage_property_table(
    "lineage_execution_properties", "lineage_executions"
)
"""Execution properties and custom properties."""

lineage_context_properties = _lineage_property_table(
    "lineage_context_properties", "lineage_contexts"
)
"""Context properties and custom properties."""

lineage_events = sa.Table(
    "lineage_events",
    metadata,
    sa.Column("id", _BigIntId, primary_key=True, autoincrement=True),
    sa.Column(
        "artifact_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_artifacts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column(
        "execution_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_executions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=True),
    sa.Column("src_node", sa.BigInteger, nullable=False),
    sa.Column("dst_node", sa.BigInteger, nullable=False),
    sa.Column("milliseconds_since_epoch", sa.BigInteger, nullable=False),
    sa.UniqueConstraint(
        "artifact_id", "execution_id", "type", name="uq_lineage_events_artifact_id"
    ),
    sa.Index("ix_lineage_events_src_dst", "src_node", "dst_node"),
    sa.Index("ix_lineage_events_dst_src", "dst_node", "src_node"),
)
"""Events: an artifact read or written by an execution. ``src_node`` / ``dst_node`` are the
data-flow edge (node key ``2 * artifact_id`` or ``2 * execution_id + 1``), indexed both ways
for the recursive lineage queries."""

lineage_attributions = sa.Table(
    "lineage_attributions",
    metadata,
    sa.Column(
        "context_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_contexts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "artifact_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_artifacts.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)
"""Artifacts attributed to contexts."""

lineage_associations = sa.Table(
    "lineage_associations",
    metadata,
    sa.Column(
        "context_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_contexts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "execution_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_executions.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)
"""Executions associated with contexts."""

lineage_parent_contexts = sa.Table(
    "lineage_parent_contexts",
    metadata,
    sa.Column(
        "context_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_contexts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "parent_context_id",
        sa.BigInteger,
        sa.ForeignKey("lineage_contexts.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)
"""Parent contexts (a pipeline run inside a pipeline, an experiment inside a project)."""

# --- end of lineage tables ---


# --- Vector catalogue (ferrostore.vectors; migration 0005_vector_catalogue) ---

vector_collections = sa.Table(
    "vector_collections",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("dimension", sa.Integer, nullable=True),
    sa.Column("space", sa.Text, nullable=False),
    sa.Column("hnsw_m", sa.Integer, nullable=False),
    sa.Column("hnsw_construction_ef", sa.Integer, nullable=False),
    sa.Column("hnsw_search_ef", sa.Integer, nullable=False),
    sa.Column("metadata", sa.Text, nullable=True),
    sa.Column("record_count", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
"""Vector collections: ``id`` a UUID (folder ``collections/<id>``), ``dimension`` fixed by the
first add (``NULL`` until then), ``space`` cosine | l2 | ip, HNSW parameters, the user's
collection metadata as JSON, ``record_count`` as of the last write through the API, and
creation / update times (microseconds since the epoch, UTC)."""

# --- end of vector catalogue tables ---


# --- Stack state (ferrostore.stack; migration 0006_stack_state) ---

stack_resources = sa.Table(
    "stack_resources",
    metadata,
    sa.Column("stack", sa.Text, primary_key=True),
    sa.Column("resource", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("protect", sa.Boolean, nullable=False),
    sa.Column("applied_at", sa.BigInteger, nullable=False),
)
"""The resources a declared stack owns: ``resource`` is the stable id ``kind.name``, ``spec``
the fields it last applied (JSON), ``protect`` whether destroying it is refused, and
``applied_at`` milliseconds since the epoch (UTC). Deletes only ever touch these rows."""

# --- end of stack state tables ---
