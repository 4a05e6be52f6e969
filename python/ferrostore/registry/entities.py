"""The objects the registry returns, shaped like MLflow's entities.

They are frozen dataclasses with slots (cheaper to create): snapshots of the database when
the call returned. Fields carry MLflow's names (``run.info.run_id``,
``model_version.current_stage``...), times are milliseconds since the Unix epoch as in MLflow.

Example:
    >>> Metric("acc", 0.9, 0, 0).value
    0.9
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "STAGES",
    "Experiment",
    "FileInfo",
    "Metric",
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
]

STAGES: tuple[str, ...] = ("None", "Staging", "Production", "Archived")
"""The model version stages, in MLflow's spelling."""


class RunStatus:
    """The statuses of a run, as MLflow spells them."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    ALL: tuple[str, ...] = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")

    @staticmethod
    def is_terminated(status: str) -> bool:
        """Return whether ``status`` is a final status (FINISHED, FAILED or KILLED)."""
        return status in ("FINISHED", "FAILED", "KILLED")


@dataclasses.dataclass(frozen=True, slots=True, init=False)
class Metric:
    """One point of a metric: key, value, timestamp (ms) and step."""

    key: str
    value: float
    timestamp: int
    step: int

    def __init__(self, key: str, value: float, timestamp: int, step: int) -> None:
        # What the generated __init__ of a frozen dataclass does, through the slots' own
        # setters instead of object.__setattr__: a third cheaper, and thousands are made.
        _set_metric_key(self, key)
        _set_metric_value(self, value)
        _set_metric_timestamp(self, timestamp)
        _set_metric_step(self, step)


_set_metric_key = Metric.__dict__["key"].__set__
_set_metric_value = Metric.__dict__["value"].__set__
_set_metric_timestamp = Metric.__dict__["timestamp"].__set__
_set_metric_step = Metric.__dict__["step"].__set__


@dataclasses.dataclass(frozen=True, slots=True)
class Param:
    """One run parameter."""

    key: str
    value: str


@dataclasses.dataclass(frozen=True, slots=True)
class RunTag:
    """One run tag."""

    key: str
    value: str


@dataclasses.dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment: a named group of runs."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str]
    creation_time: int
    last_update_time: int


@dataclasses.dataclass(frozen=True, slots=True)
class RunInfo:
    """The attributes of a run (MLflow's ``RunInfo``)."""

    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str

    @property
    def run_uuid(self) -> str:
        """The run id (MLflow's deprecated name for it)."""
        return self.run_id


@dataclasses.dataclass(frozen=True, slots=True)
class RunData:
    """What was logged in a run: latest metric values, params and tags."""

    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """A run: its :class:`RunInfo` and :class:`RunData`."""

    info: RunInfo
    data: RunData


@dataclasses.dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a registered model (MLflow's ``ModelVersion``)."""

    name: str
    version: int
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None
    user_id: str
    current_stage: str
    source: str
    run_id: str | None
    status: str
    run_link: str | None
    tags: dict[str, str]
    aliases: list[str]
    status_message: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A registered model: its description, tags, aliases and latest version per stage."""

    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_versions: list[ModelVersion]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelVersionEvent:
    """One entry of a model's history: who did what to which version, and when.

    ``kind`` is ``"created"``, ``"stage"`` (``from_stage`` -> ``to_stage``), ``"alias_set"``,
    ``"alias_deleted"``, ``"deleted"`` or ``"model_deleted"``; ``approved_by`` is the user who
    made the change. For an alias move, ``from_stage`` holds the previous target as ``v<N>``.
    """

    name: str
    version: int | None
    kind: str
    from_stage: str | None
    to_stage: str | None
    alias: str | None
    approved_by: str
    timestamp: int


@dataclasses.dataclass(frozen=True, slots=True)
class StageAssignment:
    """A version that held a stage at a given time, with who put it there and when."""

    name: str
    version: int
    stage: str
    approved_by: str
    since: int


@dataclasses.dataclass(frozen=True, slots=True)
class ModelEvaluation:
    """An evaluation of a model version on a dataset (Vertex AI's model evaluation)."""

    evaluation_id: int
    name: str
    version: int
    metrics: dict[str, float]
    dataset: str | None
    created_by: str
    timestamp: int


@dataclasses.dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``log_model`` returns: where the model was stored and its metadata."""

    run_id: str
    artifact_path: str
    model_uri: str
    flavors: dict[str, Any]
    signature: dict[str, Any] | None
    utc_time_created: str
    model_uuid: str
    registered_model_version: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry of a run's artifact listing: a file (with its size) or a folder."""

    path: str
    is_dir: bool
    file_size: int | None
