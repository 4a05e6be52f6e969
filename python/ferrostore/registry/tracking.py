"""Module-level tracking state and the fluent API (``start_run``, ``log_metric``...).

As in MLflow, the tracking URI and the active experiment are process-wide and the stack of
active runs is per thread. One :class:`~ferrostore.registry.store.Store` (a
:class:`~ferrostore.metadata.MetadataDB` and an artifact store) is opened per tracking URI
and cached.

Tracking URIs:

- a folder path (or ``file:`` URI): ``<folder>/metadata.db`` and ``<folder>/artifacts/``;
- a path to a ``.db``/``.sqlite`` file: that SQLite file, artifacts in ``artifacts/`` next to it;
- a SQLAlchemy URL (``postgresql://...``, ``sqlite:///...``): artifacts under
  ``$FERROSTORE_ARTIFACT_ROOT``, else ``./ferrostore-artifacts``.

The default is ``$FERROSTORE_TRACKING_URI``, else the folder ``.ferrostore`` in the working
directory (the project's shared metadata database).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd

from ferrostore.errors import AlreadyExists, InvalidArgument, NotFound
from ferrostore.metadata import MetadataDB
from ferrostore.registry.artifacts import ArtifactStore, normalize_artifact_path
from ferrostore.registry.entities import (
    Experiment,
    Metric,
    ModelEvaluation,
    ModelVersion,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
)
from ferrostore.registry.store import (
    DEFAULT_EXPERIMENT_ID,
    RunTable,
    Store,
    current_user,
    now_ms,
)

__all__ = [
    "ARTIFACT_ROOT_ENV",
    "TRACKING_URI_ENV",
    "ActiveRun",
    "active_run",
    "create_experiment",
    "end_run",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_model_evaluation",
    "log_param",
    "log_params",
    "register_model",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]

TRACKING_URI_ENV = "FERROSTORE_TRACKING_URI"
"""Environment variable overriding the default tracking URI."""
ARTIFACT_ROOT_ENV = "FERROSTORE_ARTIFACT_ROOT"
"""Environment variable naming the artifact folder used with a database URL."""
DEFAULT_FOLDER = ".ferrostore"
_SQL_SCHEMES = ("sqlite", "postgresql", "postgres")
_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")

_lock = threading.RLock()
_tracking_uri: str | None = None
_stores: dict[tuple[str, str], Store] = {}
# _locations answers by (uri, cwd, HOME, artifact root variable).
_resolved: dict[tuple[str, str, str | None, str | None], tuple[str, Path]] = {}
_active_experiment: dict[str, str] = {}
_thread = threading.local()
_last_run_id: list[str | None] = [None]


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Set where runs and models are stored for this process.

    Args:
        uri: A folder path, a SQLite file path, ``file:`` URI or a SQLAlchemy URL
            (``postgresql://user@host/db``); ``None`` returns to the default.

    Raises:
        InvalidArgument: ``uri`` is not a string or path.
    """
    global _tracking_uri
    if uri is not None and not isinstance(uri, str | os.PathLike):
        raise InvalidArgument(f"tracking URI must be a path or URL string, got {uri!r}")
    with _lock:
        _tracking_uri = None if uri is None else os.fspath(uri)
        _active_experiment.clear()


def get_tracking_uri() -> str:
    """Return the current tracking URI (set, from the environment, or the default folder).

    Returns:
        The URI or path as a string; the default is ``<cwd>/.ferrostore``.
    """
    if _tracking_uri is not None:
        return _tracking_uri
    env = os.environ.get(TRACKING_URI_ENV, "").strip()
    return env or str(Path.cwd() / DEFAULT_FOLDER)


def _locations(uri: str) -> tuple[str, Path]:
    """Return the metadata database (path or URL) and artifact root for a tracking URI.

    What the answer depends on is its cache key: the URI, the working directory (relative
    paths), ``HOME`` (``~``) and the artifact root variable. A path that does not exist yet is
    resolved again on every call, as it may still become a file.
    """
    try:
        cwd = os.getcwd()
    except OSError:  # the working directory was removed: resolve (and fail) as before
        return _resolve_locations(uri)[0]
    key = (uri, cwd, os.environ.get("HOME"), os.environ.get(ARTIFACT_ROOT_ENV))
    found = _resolved.get(key)
    if found is None:
        found, settled = _resolve_locations(uri)
        if settled:
            _resolved[key] = found
    return found


def _resolve_locations(uri: str) -> tuple[tuple[str, Path], bool]:
    """:func:`_locations`, and whether the answer holds as long as the path exists."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in _SQL_SCHEMES:
        root = os.environ.get(ARTIFACT_ROOT_ENV, "").strip()
        return (uri, Path(root or Path.cwd() / "ferrostore-artifacts").absolute()), True
    if scheme and scheme != "file":
        raise InvalidArgument(
            f"tracking URI {uri!r} has an unsupported scheme {scheme!r}; expected a folder, "
            "file:, sqlite:// or postgresql:// URI"
        )
    path = Path(uri.removeprefix("file://").removeprefix("file:")).expanduser().absolute()
    if path.suffix in _DB_SUFFIXES or path.is_file():
        return (str(path), path.parent / "artifacts"), True
    return (str(path / "metadata.db"), path / "artifacts"), path.is_dir()


def store_for(uri: str | None = None) -> Store:
    """Return the (cached) store of a tracking URI, opening its database on first use.

    Args:
        uri: The tracking URI; ``None`` means :func:`get_tracking_uri`.

    Returns:
        The store.

    Raises:
        InvalidArgument: The URI is malformed.
        StorageError: The database or artifact folder cannot be opened.
    """
    uri = get_tracking_uri() if uri is None else os.fspath(uri)
    db_url, artifact_root = _locations(uri)
    key = (db_url, str(artifact_root))
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = Store(MetadataDB(db_url), ArtifactStore(artifact_root), uri)
            _stores[key] = store
        return store


def _reset_for_tests() -> None:
    """Close cached stores and forget all state (tests only)."""
    global _tracking_uri
    with _lock:
        for store in _stores.values():
            store.db.close()
        _stores.clear()
        _resolved.clear()
        _active_experiment.clear()
        _tracking_uri = None
    _thread.__dict__.clear()
    _last_run_id[0] = None


def _stack() -> list[ActiveRun]:
    stack: list[ActiveRun] | None = getattr(_thread, "stack", None)
    if stack is None:
        stack = []
        _thread.stack = stack
    return stack


class ActiveRun:
    """The run started by :func:`start_run`; a context manager that ends it.

    ``run.info`` and ``run.data`` are the run as it was when started (as in MLflow); call
    :func:`get_run` for its current state. Leaving the ``with`` block ends the run with
    status FINISHED, or FAILED when the block raised (KILLED on KeyboardInterrupt).
    """

    def __init__(self, run: Run, store: Store) -> None:
        self._run = run
        self._store = store

    @property
    def info(self) -> RunInfo:
        """The run's attributes (``run_id``, ``status``, ...)."""
        return self._run.info

    @property
    def data(self) -> RunData:
        """The run's metrics, params and tags when it started."""
        return self._run.data

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        stack = _stack()
        if self in stack:
            while stack and stack[-1] is not self:
                end_run(status)
            end_run(status)

    def __repr__(self) -> str:
        return f"<ActiveRun: run_id={self.info.run_id!r}, status={self.info.status!r}>"


def create_experiment(
    name: str, artifact_location: str | None = None, tags: Mapping[str, Any] | None = None
) -> str:
    """Create an experiment and return its id.

    Args:
        name: A unique name.
        artifact_location: Informational location recorded with the experiment.
        tags: Experiment tags.

    Returns:
        The new experiment id (a decimal string).

    Raises:
        AlreadyExists: An experiment has this name.
        InvalidArgument: The name is empty.
    """
    return store_for().create_experiment(name, artifact_location, tags)


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment active for new runs, creating it (by name) when missing.

    Args:
        experiment_name: The experiment's name.
        experiment_id: Or its id (must exist).

    Returns:
        The experiment.

    Raises:
        InvalidArgument: Neither or both arguments are given.
        NotFound: ``experiment_id`` does not exist.
    """
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidArgument("set_experiment needs exactly one of experiment_name, experiment_id")
    store = store_for()
    if experiment_id is not None:
        exp = store.get_experiment(experiment_id)
    else:
        exp = store.get_experiment_by_name(experiment_name)  # type: ignore[arg-type]
        if exp is None:
            with contextlib.suppress(AlreadyExists):  # another process created it first
                store.create_experiment(experiment_name)  # type: ignore[arg-type]
            exp = store.get_experiment_by_name(experiment_name)  # type: ignore[arg-type]
            assert exp is not None
    if exp.lifecycle_stage != "active":
        raise InvalidArgument(f"experiment {exp.name!r} is deleted; restore it or use another")
    with _lock:
        _active_experiment[store.uri] = exp.experiment_id
    return exp


def get_experiment(experiment_id: str) -> Experiment:
    """Return the experiment with this id.

    Raises:
        NotFound: No such experiment.
    """
    return store_for().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    """Return the experiment with this name, or ``None`` (as MLflow does)."""
    return store_for().get_experiment_by_name(name)


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    parent_run_id: str | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active run of this thread.

    Args:
        run_id: Resume this existing run instead of creating one.
        experiment_id: The experiment (default: the one set by :func:`set_experiment`, else
            the Default experiment "0").
        run_name: A name; default a random ``adjective-animal-number``.
        nested: Allow starting while another run is active: the new run becomes its child
            (tag ``mlflow.parentRunId``).
        tags: Run tags.
        description: Stored as tag ``mlflow.note.content``.
        parent_run_id: Explicit parent run (must exist).

    Returns:
        The :class:`ActiveRun`, a context manager.

    Raises:
        InvalidArgument: A run is active and ``nested`` is false.
        NotFound: ``run_id``, ``experiment_id`` or ``parent_run_id`` does not exist.

    Example:
        >>> import tempfile, ferrostore.registry as mlflow
        >>> mlflow.set_tracking_uri(tempfile.mkdtemp())
        >>> with mlflow.start_run(run_name="demo") as run:
        ...     mlflow.log_param("lr", 0.1)
        0.1
        >>> mlflow.get_run(run.info.run_id).info.status
        'FINISHED'
    """
    stack = _stack()
    if stack and not nested:
        raise InvalidArgument(
            f"run {stack[-1].info.run_id} is already active; end it with end_run() or start "
            "this run with nested=True"
        )
    store = store_for()
    if run_id is not None:
        run = store.get_run(run_id)
        if run.info.lifecycle_stage != "active":
            raise InvalidArgument(f"run {run_id} is deleted; cannot resume it")
        store.update_run(run_id, status=RunStatus.RUNNING)
        if tags:
            set_tags_for(store, run_id, tags)
        run = store.get_run(run_id)
    else:
        exp_id = experiment_id
        if exp_id is None:
            env_exp = os.environ.get("MLFLOW_EXPERIMENT_ID") or None
            exp_id = _active_experiment.get(store.uri) or env_exp or DEFAULT_EXPERIMENT_ID
        parent = parent_run_id or (stack[-1].info.run_id if stack else None)
        if parent_run_id is not None:
            store.get_run(parent_run_id)
        all_tags = dict(tags or {})
        if description is not None:
            all_tags["mlflow.note.content"] = description
        run = store.create_run(str(exp_id), run_name=run_name, tags=all_tags, parent_run_id=parent)
    active = ActiveRun(run, store)
    stack.append(active)
    _last_run_id[0] = run.info.run_id
    return active


def active_run() -> ActiveRun | None:
    """Return the active run of this thread, or ``None``."""
    stack = _stack()
    return stack[-1] if stack else None


def last_active_run() -> Run | None:
    """Return the active run, else the most recently started run of this process."""
    current = active_run()
    if current is not None:
        return current._store.get_run(current.info.run_id)
    if _last_run_id[0] is None:
        return None
    return store_for().get_run(_last_run_id[0])


def end_run(status: str = RunStatus.FINISHED) -> None:
    """End the active run of this thread (no-op when none is active).

    Args:
        status: FINISHED (default), FAILED or KILLED.

    Raises:
        InvalidArgument: ``status`` is not a run status.
    """
    if status not in RunStatus.ALL:
        raise InvalidArgument(f"invalid run status {status!r}; expected one of {RunStatus.ALL}")
    stack = _stack()
    if not stack:
        return
    run = stack[-1]
    run._store.update_run(run.info.run_id, status=status, end_time=now_ms())
    stack.pop()


def _current_run_id() -> tuple[Store, str]:
    """Return the active run, starting one as MLflow does when none is active."""
    run = active_run()
    if run is None:
        run = start_run()
    return run._store, run.info.run_id


def log_param(key: str, value: Any) -> Any:
    """Log a parameter of the active run (started if none); params are write-once.

    Args:
        key: The name.
        value: The value (stored as its string form).

    Returns:
        ``value``.

    Raises:
        AlreadyExists: The param was logged with another value; nothing changes.
        InvalidArgument: The key is empty or too long.
    """
    store, run_id = _current_run_id()
    store.log_batch(run_id, params=[Param(key, _as_text(value))])
    return value


def log_params(params: Mapping[str, Any]) -> None:
    """Log several parameters at once (one transaction); see :func:`log_param`."""
    store, run_id = _current_run_id()
    store.log_batch(run_id, params=[Param(k, _as_text(v)) for k, v in params.items()])


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Append a metric point to the active run; NaN is stored as NaN.

    Args:
        key: The metric name.
        value: A number.
        step: The step (default 0).
        timestamp: Milliseconds since the epoch (default now).

    Raises:
        InvalidArgument: ``value`` is not a number or ``step`` not an integer.
    """
    store, run_id = _current_run_id()
    store.log_batch(run_id, metrics=[_metric(key, value, step, timestamp)])


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    """Append several metric points at one step in one transaction; see :func:`log_metric`."""
    store, run_id = _current_run_id()
    ts = now_ms() if timestamp is None else timestamp
    store.log_batch(run_id, metrics=[_metric(k, v, step, ts) for k, v in metrics.items()])


def set_tag(key: str, value: Any) -> None:
    """Set a tag on the active run (the last value wins)."""
    store, run_id = _current_run_id()
    store.log_batch(run_id, tags=[RunTag(key, _as_text(value))])


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags on the active run in one transaction."""
    store, run_id = _current_run_id()
    set_tags_for(store, run_id, tags)


def set_tags_for(store: Store, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on a given run."""
    store.log_batch(run_id, tags=[RunTag(k, _as_text(v)) for k, v in tags.items()])


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Store a local file as an artifact of the active run (content-addressed).

    Args:
        local_path: The file.
        artifact_path: The folder inside the run's artifacts (default: the root).

    Raises:
        NotFound: ``local_path`` is not a file.
        InvalidArgument: ``artifact_path`` leaves the run's artifacts.
    """
    source = Path(local_path)
    if not source.is_file():
        raise NotFound(f"artifact file {str(source)!r} does not exist or is not a file")
    base = normalize_artifact_path(artifact_path)
    store, run_id = _current_run_id()
    store.log_artifact_files(run_id, [(f"{base}/{source.name}" if base else source.name, source)])


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Store every file under a local folder as artifacts of the active run.

    Raises:
        NotFound: ``local_dir`` is not a folder.
    """
    store, run_id = _current_run_id()
    log_artifacts_for(store, run_id, Path(local_dir), artifact_path)


def log_artifacts_for(store: Store, run_id: str, folder: Path, artifact_path: str | None) -> None:
    """Store a folder's files as artifacts of a given run."""
    if not folder.is_dir():
        raise NotFound(f"artifact folder {str(folder)!r} does not exist or is not a folder")
    base = normalize_artifact_path(artifact_path)
    files = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        files.append((f"{base}/{rel}" if base else rel, file))
    store.log_artifact_files(run_id, files)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """Return the URI of the active run's artifacts (``runs:/<run_id>[/<path>]``)."""
    _, run_id = _current_run_id()
    base = normalize_artifact_path(artifact_path)
    return f"runs:/{run_id}/{base}" if base else f"runs:/{run_id}"


def get_run(run_id: str) -> Run:
    """Return a run with its latest metrics, params and tags.

    Raises:
        NotFound: No such run.
    """
    return store_for().get_run(run_id)


def search_runs(
    experiment_ids: str | Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: int | None = None,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
) -> pd.DataFrame | list[Run]:
    """Search runs with an MLflow filter string; filtering and ordering run in SQL.

    Args:
        experiment_ids: Experiment id(s) to search; default the active experiment.
        filter_string: E.g. ``"metrics.acc > 0.9 AND params.model = 'xgb'"``.
        run_view_type: Accepted for MLflow compatibility; deleted runs are never returned.
        max_results: At most this many runs.
        order_by: E.g. ``["metrics.acc DESC", "attributes.start_time"]``.
        output_format: ``"pandas"`` (a DataFrame, MLflow's columns) or ``"list"`` (Runs).
        search_all_experiments: Search every experiment.
        experiment_names: Experiments by name instead of id.

    Returns:
        A DataFrame with ``run_id, experiment_id, status, artifact_uri, start_time,
        end_time, metrics.*, params.*, tags.*`` columns, or a list of :class:`Run`.

    Raises:
        InvalidArgument: A malformed filter or order_by, or an unknown output_format.
        NotFound: An experiment name that does not exist.
    """
    del run_view_type
    if output_format not in ("pandas", "list"):
        raise InvalidArgument(f"output_format must be 'pandas' or 'list', got {output_format!r}")
    store = store_for()
    ids: list[str] | None
    if search_all_experiments:
        ids = None
    elif experiment_names is not None:
        ids = []
        for name in experiment_names:
            exp = store.get_experiment_by_name(name)
            if exp is None:
                raise NotFound(f"experiment {name!r} does not exist")
            ids.append(exp.experiment_id)
    elif experiment_ids is None:
        ids = [_active_experiment.get(store.uri, DEFAULT_EXPERIMENT_ID)]
    else:
        ids = (
            [experiment_ids]
            if isinstance(experiment_ids, str)
            else [str(e) for e in experiment_ids]
        )
    if output_format == "list":
        return store.search_runs(ids, filter_string, order_by, max_results)
    table = store.search_run_table(ids, filter_string, order_by, max_results, columns=FRAME_COLUMNS)
    return run_table_to_frame(table)


FRAME_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")
"""The ``runs`` columns of MLflow's ``search_runs`` DataFrame, in its order."""


def run_table_to_frame(table: RunTable) -> pd.DataFrame:
    """Return runs as MLflow's ``search_runs`` DataFrame, built column by column.

    Every column goes in as a NumPy array (object arrays for text), which pandas takes as it
    is; from lists it would convert and check each value. The table's rows need every
    :data:`FRAME_COLUMNS` (in any order).
    """
    values = list(zip(*table.rows, strict=True)) if table.rows else [()] * len(table.columns)
    by_name = dict(zip(table.columns, values, strict=True))
    n = len(by_name["run_id"])
    frame: dict[str, Any] = {
        name: _ms_to_datetime(by_name[name]) if name.endswith("_time") else _objects(by_name[name])
        for name in FRAME_COLUMNS
    }
    for prefix, by_key, empty in (
        ("metrics", table.metrics, np.full(n, math.nan)),
        ("params", table.params, np.full(n, None, dtype=object)),
        ("tags", table.tags, np.full(n, None, dtype=object)),
    ):
        for key in sorted(by_key):
            by_row = by_key[key]
            values = empty.copy()
            values[np.fromiter(by_row, np.intp, len(by_row))] = list(by_row.values())
            frame[f"{prefix}.{key}"] = values
    return pd.DataFrame(frame)


def _objects(values: Sequence[Any]) -> np.ndarray[Any, np.dtype[np.object_]] | list[Any]:
    # An empty list stays a list: pandas gives it the dtype MLflow's empty frame has.
    return np.fromiter(values, object, len(values)) if values else []


def _ms_to_datetime(values: Sequence[int | None]) -> pd.DatetimeIndex:
    """Epoch milliseconds (``None`` for none) as UTC datetimes, as MLflow's frame has them.

    Raises:
        pandas.errors.OutOfBoundsDatetime: A time outside the nanosecond range (as
            ``pd.to_datetime`` does).
    """
    # datetime64[ms] (None becomes NaT) is taken as it is, then checked as it is widened to ns.
    stamps = np.fromiter(values, "datetime64[ms]", len(values))
    return pd.DatetimeIndex(stamps, tz="UTC").as_unit("ns")


def register_model(
    model_uri: str,
    name: str,
    tags: Mapping[str, Any] | None = None,
    *,
    await_registration_for: int | None = None,
) -> ModelVersion:
    """Register the model at ``model_uri`` as the next version of ``name`` (created if new).

    The version number comes from an atomic per-model counter in the same transaction:
    concurrent registrations get distinct numbers, and numbers are never reused.

    Args:
        model_uri: ``runs:/<run_id>/<path>`` or a ``models:/`` URI.
        name: The registered model's name.
        tags: Tags of the new version.
        await_registration_for: Accepted for MLflow compatibility (registration is
            synchronous).

    Returns:
        The new :class:`ModelVersion` (stage ``"None"``).

    Raises:
        InvalidArgument: A malformed URI.
        NotFound: The URI names no logged model.
    """
    del await_registration_for
    return store_for().create_model_version(name, model_uri, tags=tags, create_model=True)


def log_model_evaluation(
    name: str,
    version: int | str,
    metrics: Mapping[str, float],
    dataset: str | None = None,
    *,
    evaluated_by: str | None = None,
) -> ModelEvaluation:
    """Record an evaluation of a model version on a dataset (Vertex AI style).

    Args:
        name: The registered model.
        version: The version evaluated.
        metrics: ``{metric: value}``; NaN allowed.
        dataset: A name or URI of the evaluation data.
        evaluated_by: Who ran it (default: the OS user).

    Returns:
        The stored :class:`ModelEvaluation`.

    Raises:
        NotFound: Unknown model or version.
        InvalidArgument: Empty or non-numeric metrics.
    """
    return store_for().log_evaluation(
        name, version, metrics, dataset, evaluated_by or current_user()
    )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _metric(key: str, value: Any, step: int | None, timestamp: int | None) -> Metric:
    return Metric(
        key, value, now_ms() if timestamp is None else timestamp, 0 if step is None else step
    )
