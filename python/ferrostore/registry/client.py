"""``Client``: MLflow's ``MlflowClient`` for the registry and tracking, plus approval history.

Unlike MLflow, every stage change and alias move is kept with who made it and when, so
"which version was in Production on date X, and who approved it" has an answer
(:meth:`Client.get_stage_at`, :meth:`Client.get_model_version_history`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ferrostore.registry import tracking
from ferrostore.registry.entities import (
    Experiment,
    FileInfo,
    Metric,
    ModelEvaluation,
    ModelVersion,
    ModelVersionEvent,
    Param,
    RegisteredModel,
    Run,
    RunTag,
    StageAssignment,
)
from ferrostore.registry.store import DEFAULT_EXPERIMENT_ID, Store, current_user, now_ms
from ferrostore.registry.uris import parse_model_uri

__all__ = ["Client", "MlflowClient"]


class Client:
    """The registry and tracking client (MLflow's ``MlflowClient``).

    Args:
        tracking_uri: Where to connect; default :func:`~ferrostore.registry.get_tracking_uri`.
        registry_uri: Accepted for MLflow compatibility; the registry lives with tracking.

    Raises:
        InvalidArgument: A malformed URI.
        StorageError: The database cannot be opened.

    Example:
        >>> import tempfile
        >>> client = Client(tempfile.mkdtemp())
        >>> client.create_registered_model("demo").name
        'demo'
    """

    def __init__(
        self, tracking_uri: str | os.PathLike[str] | None = None, registry_uri: str | None = None
    ) -> None:
        del registry_uri
        self._uri = None if tracking_uri is None else os.fspath(tracking_uri)

    @property
    def _store(self) -> Store:
        return tracking.store_for(self._uri)

    # ---------------------------------------------------------------- tracking

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> str:
        """Create an experiment; return its id.

        Raises:
            AlreadyExists: The name is taken.
        """
        return self._store.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id: str) -> Experiment:
        """Return an experiment by id.

        Raises:
            NotFound: No such experiment.
        """
        return self._store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """Return an experiment by name, or ``None``."""
        return self._store.get_experiment_by_name(name)

    def search_experiments(self) -> list[Experiment]:
        """Return the active experiments."""
        return self._store.search_experiments()

    def create_run(
        self,
        experiment_id: str = DEFAULT_EXPERIMENT_ID,
        start_time: int | None = None,
        tags: Mapping[str, Any] | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Create a RUNNING run (not made active).

        Raises:
            NotFound: Unknown experiment.
        """
        return self._store.create_run(
            experiment_id, run_name=run_name, tags=tags, parent_run_id=None, start_time=start_time
        )

    def get_run(self, run_id: str) -> Run:
        """Return a run.

        Raises:
            NotFound: No such run.
        """
        return self._store.get_run(run_id)

    def set_terminated(
        self, run_id: str, status: str = "FINISHED", end_time: int | None = None
    ) -> None:
        """End a run with a status.

        Raises:
            NotFound: No such run.
            InvalidArgument: Unknown status.
        """
        self._store.update_run(run_id, status=status, end_time=end_time or now_ms())

    def delete_run(self, run_id: str) -> None:
        """Mark a run deleted.

        Raises:
            NotFound: No such run.
        """
        self._store.delete_run(run_id)

    def log_param(self, run_id: str, key: str, value: Any) -> Any:
        """Log a write-once parameter; return ``value``.

        Raises:
            AlreadyExists: Logged before with another value.
        """
        self._store.log_batch(run_id, params=[Param(key, str(value))])
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        """Append one metric point to a run.

        Raises:
            NotFound: No such run.
            InvalidArgument: A non-numeric value.
        """
        metric = Metric(key, value, now_ms() if timestamp is None else timestamp, step or 0)
        self._store.log_batch(run_id, metrics=[metric])

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        """Set a run tag.

        Raises:
            NotFound: No such run.
        """
        self._store.log_batch(run_id, tags=[RunTag(key, str(value))])

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Log metrics, params and tags in one transaction (all or nothing).

        Raises:
            NotFound: No such run.
            AlreadyExists: A param logged before with another value.
        """
        self._store.log_batch(run_id, metrics, params, tags)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Return every point of a metric, by step.

        Raises:
            NotFound: No such run.
        """
        return self._store.get_metric_history(run_id, key)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """List a run's artifacts directly under ``path``.

        Raises:
            NotFound: No such run.
        """
        return self._store.list_artifacts(run_id, path)

    def download_artifacts(
        self, run_id: str, path: str, dst_path: str | os.PathLike[str] | None = None
    ) -> str:
        """Write a run's artifact file or folder to ``dst_path`` (default a temp folder).

        Returns:
            The local path of the artifact.

        Raises:
            NotFound: No such run or artifact.
        """
        import tempfile
        from pathlib import Path

        dst = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp())
        return str(self._store.download_artifacts(run_id, path, dst))

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
    ) -> list[Run]:
        """Return runs matching a filter (see :func:`ferrostore.registry.search_runs`).

        Raises:
            InvalidArgument: A malformed filter.
        """
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids)
        return self._store.search_runs(ids, filter_string, order_by, max_results)

    # ---------------------------------------------------------------- registry

    def create_registered_model(
        self, name: str, tags: Mapping[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        """Create a registered model.

        Raises:
            AlreadyExists: The name is taken.
            InvalidArgument: An empty name.
        """
        return self._store.create_registered_model(name, tags, description)

    def get_registered_model(self, name: str) -> RegisteredModel:
        """Return a registered model with its tags, aliases and latest versions.

        Raises:
            NotFound: Unknown model.
        """
        return self._store.get_registered_model(name)

    def update_registered_model(self, name: str, description: str | None = None) -> RegisteredModel:
        """Set a registered model's description.

        Raises:
            NotFound: Unknown model.
        """
        return self._store.update_registered_model(name, description)

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
    ) -> list[RegisteredModel]:
        """Search registered models (``name``, ``tags.<key>``; ``=``, ``!=``, ``LIKE``, ...).

        Raises:
            InvalidArgument: A malformed filter.
        """
        return self._store.search_registered_models(filter_string, max_results, order_by)

    def delete_registered_model(self, name: str, *, approved_by: str | None = None) -> None:
        """Delete a model and all its versions; its history is kept.

        Raises:
            NotFound: Unknown model.
        """
        self._store.delete_registered_model(name, approved_by or current_user())

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        """Set a tag on a registered model.

        Raises:
            NotFound: Unknown model.
        """
        self._store.set_registered_model_tag(name, key, value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Delete a registered model's tag.

        Raises:
            NotFound: Unknown model or tag.
        """
        self._store.delete_registered_model_tag(name, key)

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Create the next version of an existing registered model from a model URI.

        Raises:
            NotFound: Unknown model, or a source that names no logged model.
            InvalidArgument: A malformed source URI, or ``run_id`` not the source's run.
        """
        return self._store.create_model_version(
            name, source, run_id=run_id, tags=tags, run_link=run_link, description=description
        )

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        """Return one model version.

        Raises:
            NotFound: Unknown model or version.
        """
        return self._store.get_model_version(name, version)

    def update_model_version(
        self, name: str, version: int | str, description: str | None = None
    ) -> ModelVersion:
        """Set a version's description.

        Raises:
            NotFound: Unknown model or version.
        """
        return self._store.update_model_version(name, version, description)

    def set_model_version_tag(
        self,
        name: str,
        version: int | str | None = None,
        key: str | None = None,
        value: Any = None,
        stage: str | None = None,
    ) -> None:
        """Set a tag on a model version (or on the latest version in ``stage``).

        Raises:
            NotFound: Unknown model or version.
            InvalidArgument: Neither ``version`` nor ``stage`` given.
        """
        number = self._version_or_stage(name, version, stage)
        self._store.set_model_version_tag(name, number, key, value)  # type: ignore[arg-type]

    def delete_model_version_tag(
        self,
        name: str,
        version: int | str | None = None,
        key: str | None = None,
        stage: str | None = None,
    ) -> None:
        """Delete a tag of a model version.

        Raises:
            NotFound: Unknown model, version or tag.
        """
        number = self._version_or_stage(name, version, stage)
        self._store.delete_model_version_tag(name, number, key)  # type: ignore[arg-type]

    def _version_or_stage(self, name: str, version: int | str | None, stage: str | None) -> int:
        from ferrostore.errors import InvalidArgument

        if version is not None:
            return int(self._store.get_model_version(name, version).version)
        if stage is None:
            raise InvalidArgument("give a model version (or a stage)")
        latest = self._store.get_latest_versions(name, [stage])
        if not latest:
            from ferrostore.errors import NotFound

            raise NotFound(f"registered model {name!r} has no version in stage {stage!r}")
        return latest[0].version

    def transition_model_version_stage(
        self,
        name: str,
        version: int | str,
        stage: str,
        archive_existing_versions: bool = False,
        *,
        approved_by: str | None = None,
    ) -> ModelVersion:
        """Move a version to None, Staging, Production or Archived, recording the approver.

        With ``archive_existing_versions`` every other version in the target stage is moved
        to Archived in the same transaction (the model row is locked), so exactly one version
        is left in that stage even when transitions race.

        Args:
            name: The registered model.
            version: The version.
            stage: The target stage (case-insensitive).
            archive_existing_versions: Archive the others in Staging/Production.
            approved_by: Who approved the change (default the OS user); kept in history.

        Returns:
            The updated version.

        Raises:
            NotFound: Unknown model or version.
            InvalidArgument: An invalid stage name.
        """
        return self._store.transition_stage(
            name,
            version,
            stage,
            archive_existing_versions=bool(archive_existing_versions),
            actor=approved_by or current_user(),
        )

    def set_registered_model_alias(
        self, name: str, alias: str, version: int | str, *, approved_by: str | None = None
    ) -> None:
        """Point ``alias`` at a version (moving it if set); the move is kept in history.

        Raises:
            NotFound: Unknown model or version.
            InvalidArgument: A reserved (``latest``, ``v<digits>``) or malformed alias.
        """
        self._store.set_alias(name, alias, version, approved_by or current_user())

    def delete_registered_model_alias(
        self, name: str, alias: str, *, approved_by: str | None = None
    ) -> None:
        """Remove an alias; kept in history.

        Raises:
            NotFound: Unknown model or alias.
        """
        self._store.delete_alias(name, alias, approved_by or current_user())

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """Return the version an alias points at.

        Raises:
            NotFound: Unknown model or alias.
        """
        return self._store.get_model_version_by_alias(name, alias)

    def get_latest_versions(
        self, name: str, stages: Sequence[str] | None = None
    ) -> list[ModelVersion]:
        """Return the newest version in each stage (or only in ``stages``).

        Raises:
            NotFound: Unknown model.
            InvalidArgument: An invalid stage name.
        """
        return self._store.get_latest_versions(name, stages)

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: Sequence[str] | None = None,
    ) -> list[ModelVersion]:
        """Search versions: ``name``, ``version_number``, ``run_id`` (with ``IN``), ``tags.<k>``.

        Raises:
            InvalidArgument: A malformed filter.
        """
        return self._store.search_model_versions(filter_string, max_results, order_by)

    def delete_model_version(
        self, name: str, version: int | str, *, approved_by: str | None = None
    ) -> None:
        """Delete a version; its number is never handed out again.

        Raises:
            NotFound: Unknown model or version.
        """
        self._store.delete_model_version(name, version, approved_by or current_user())

    def copy_model_version(self, src_model_uri: str, dst_name: str) -> ModelVersion:
        """Copy a version (a ``models:/`` URI) as the next version of ``dst_name``.

        Raises:
            NotFound: The source names no version.
            InvalidArgument: A malformed URI.
        """
        parsed = parse_model_uri(src_model_uri)
        if parsed.scheme != "models":
            from ferrostore.errors import InvalidArgument

            raise InvalidArgument(f"copy_model_version needs a models:/ URI, got {src_model_uri!r}")
        return self._store.create_model_version(dst_name, src_model_uri, create_model=True)

    # --------------------------------------------------- history and evaluations

    def get_model_version_history(
        self, name: str, version: int | str | None = None
    ) -> list[ModelVersionEvent]:
        """Return who did what and when to a model (or one version), oldest first.

        Events: ``created``, ``stage`` (from -> to), ``alias_set``, ``alias_deleted``,
        ``deleted``, ``model_deleted``. Kept even after a delete.

        Raises:
            NotFound: The model never existed (or the version does not exist).
        """
        return self._store.history(name, version)

    def get_stage_at(
        self, name: str, stage: str, when: dt.datetime | int | str
    ) -> list[StageAssignment]:
        """Return the versions that were in ``stage`` at time ``when``, and who put them there.

        Args:
            name: The registered model.
            stage: None, Staging, Production or Archived.
            when: A datetime (naive = UTC), ISO string or epoch milliseconds.

        Returns:
            One :class:`StageAssignment` per version then in the stage (usually one).

        Raises:
            NotFound: The model never existed.
            InvalidArgument: An invalid stage or time.
        """
        return self._store.stage_at(name, stage, when)

    def log_model_evaluation(
        self,
        name: str,
        version: int | str,
        metrics: Mapping[str, float],
        dataset: str | None = None,
        *,
        evaluated_by: str | None = None,
    ) -> ModelEvaluation:
        """Record an evaluation of a version on a dataset.

        Raises:
            NotFound: Unknown model or version.
            InvalidArgument: Empty or non-numeric metrics.
        """
        return self._store.log_evaluation(
            name, version, metrics, dataset, evaluated_by or current_user()
        )

    def list_model_evaluations(
        self, name: str, version: int | str | None = None
    ) -> list[ModelEvaluation]:
        """Return the evaluations of a model (or of one version), oldest first.

        Raises:
            NotFound: Unknown model or version.
        """
        return self._store.list_evaluations(name, version)

    def compare_model_evaluations(self, name: str, dataset: str | None = None) -> pd.DataFrame:
        """Return one row per version (latest evaluation on ``dataset``), metrics as columns.

        Raises:
            NotFound: Unknown model.
        """
        latest: dict[int, ModelEvaluation] = {}
        for ev in self._store.list_evaluations(name, None):
            if dataset is None or ev.dataset == dataset:
                latest[ev.version] = ev
        rows = [
            {"version": v, "dataset": ev.dataset, **ev.metrics} for v, ev in sorted(latest.items())
        ]
        return pd.DataFrame(rows)


MlflowClient = Client
"""Alias so ``from ferrostore.registry import MlflowClient`` reads like MLflow."""
