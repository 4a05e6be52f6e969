"""Experiment tracking and model registry shaped like MLflow, on the shared metadata database.

Port MLflow code by changing its imports::

    import ferrostore.registry as mlflow
    from ferrostore.registry import Client as MlflowClient

Runs (params, metrics with steps, tags, content-addressed artifacts), ``pyfunc`` and
``sklearn`` models, ``register_model`` and a :class:`Client` with versions, stages, aliases,
tags and searches. Beyond MLflow: every stage change and alias move is kept with who
approved it and when (``Client.get_stage_at``), model evaluations per version, and several
processes may write at once on SQLite or PostgreSQL.

Example:
    >>> import tempfile, ferrostore.registry as mlflow
    >>> mlflow.set_tracking_uri(tempfile.mkdtemp())
    >>> with mlflow.start_run() as run:
    ...     mlflow.log_metrics({"acc": 0.9})
    >>> float(mlflow.search_runs(filter_string="metrics.acc > 0.5")["metrics.acc"][0])
    0.9
"""

from __future__ import annotations

from ferrostore.registry import pyfunc, sklearn
from ferrostore.registry.client import Client, MlflowClient
from ferrostore.registry.entities import (
    STAGES,
    Experiment,
    FileInfo,
    Metric,
    ModelEvaluation,
    ModelInfo,
    ModelVersion,
    ModelVersionEvent,
    Param,
    RegisteredModel,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    StageAssignment,
)
from ferrostore.registry.models import infer_signature
from ferrostore.registry.tracking import (
    ActiveRun,
    active_run,
    create_experiment,
    end_run,
    get_artifact_uri,
    get_experiment,
    get_experiment_by_name,
    get_run,
    get_tracking_uri,
    last_active_run,
    log_artifact,
    log_artifacts,
    log_metric,
    log_metrics,
    log_model_evaluation,
    log_param,
    log_params,
    register_model,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)

__all__ = [
    "STAGES",
    "ActiveRun",
    "Client",
    "Experiment",
    "FileInfo",
    "Metric",
    "MlflowClient",
    "ModelEvaluation",
    "ModelInfo",
    "ModelVersion",
    "ModelVersionEvent",
    "Param",
    "RegisteredModel",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "StageAssignment",
    "active_run",
    "create_experiment",
    "end_run",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_run",
    "get_tracking_uri",
    "infer_signature",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_model_evaluation",
    "log_param",
    "log_params",
    "pyfunc",
    "register_model",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "sklearn",
    "start_run",
]
