"""Python-function models: ``PythonModel``, ``log_model``, ``load_model`` (MLflow's pyfunc).

``load_model(uri)`` loads any flavor (a :class:`PythonModel`, a scikit-learn estimator...)
as a :class:`PyFuncModel` whose ``predict(data)`` is the uniform entry point.

Example:
    >>> import tempfile, ferrostore.registry as mlflow
    >>> class AddOne(mlflow.pyfunc.PythonModel):
    ...     def predict(self, context, model_input, params=None):
    ...         return [x + 1 for x in model_input]
    >>> mlflow.set_tracking_uri(tempfile.mkdtemp())
    >>> with mlflow.start_run():
    ...     info = mlflow.pyfunc.log_model(name="model", python_model=AddOne())
    >>> mlflow.pyfunc.load_model(info.model_uri).predict([1, 2])
    [2, 3]
"""

from __future__ import annotations

import abc
import importlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle

from ferrostore.errors import InvalidArgument, NotFound, SchemaMismatch
from ferrostore.registry import tracking
from ferrostore.registry.artifacts import normalize_artifact_path
from ferrostore.registry.entities import ModelInfo
from ferrostore.registry.models import (
    LocalModelFiles,
    ModelFiles,
    PyFuncModel,
    PythonModelContext,
    call_python_model_predict,
    infer_signature,
    is_local_model,
    read_mlmodel,
    temp_model_dir,
    write_model_dir,
)
from ferrostore.registry.store import Store

__all__ = [
    "PyFuncModel",
    "PythonModel",
    "PythonModelContext",
    "infer_signature",
    "load_model",
    "log_model",
    "save_model",
]

FLAVOR = "python_function"
_MODEL_FILE = "python_model.pkl"
_LOADERS = ("ferrostore.registry.pyfunc", "ferrostore.registry.sklearn")


class PythonModel(abc.ABC):
    """Base class of custom Python models: implement :meth:`predict` (and ``load_context``).

    ``predict`` may be declared ``predict(self, context, model_input, params=None)`` (MLflow 2)
    or ``predict(self, model_input, params=None)``.
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Load what the model needs from ``context.artifacts`` (local file paths).

        Optional: the default loads nothing.
        """
        del context

    @abc.abstractmethod
    def predict(self, context: PythonModelContext, model_input: Any, params: Any = None) -> Any:
        """Return predictions for ``model_input`` (abstract, as in MLflow)."""


class _StoreModelFiles:
    """The files of a model logged in a run, read from the content-addressed store."""

    def __init__(
        self, store: Store, run_id: str, path: str, manifest: dict[str, tuple[str, int]]
    ) -> None:
        self.store, self.run_id, self.path, self.manifest = store, run_id, path, manifest

    def read(self, name: str) -> bytes:
        entry = self.manifest.get(f"{self.path}/{name}")
        if entry is None:
            raise NotFound(f"model runs:/{self.run_id}/{self.path} has no file {name!r}")
        return self.store.artifacts.read_bytes(entry[0])

    def materialize(self, prefix: str) -> Path:
        dst = Path(tempfile.mkdtemp(prefix="ferrostore-model-"))
        base = f"{self.path}/{prefix}"
        for full, (digest, _) in self.manifest.items():
            if full.startswith(base + "/"):
                target = dst / full[len(self.path) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.store.artifacts.read_bytes(digest))
        return dst / prefix


def open_model(model_uri: str | os.PathLike[str]) -> tuple[ModelFiles, dict[str, Any], str]:
    """Return the files, MLmodel content and a description of the model at ``model_uri``.

    Raises:
        InvalidArgument: A malformed URI.
        NotFound: The URI names no model.
    """
    if not isinstance(model_uri, str | os.PathLike):
        raise InvalidArgument(f"model URI must be a string, got {model_uri!r}")
    if is_local_model(model_uri):
        folder = Path(str(model_uri).removeprefix("file://").removeprefix("file:"))
        files: ModelFiles = LocalModelFiles(folder)
    else:
        uri = os.fspath(model_uri)
        store = tracking.store_for()
        files = _StoreModelFiles(store, *store.resolve_model(uri))
    where = os.fspath(model_uri)
    return files, read_mlmodel(files, where), where


def load_model(model_uri: str | os.PathLike[str]) -> PyFuncModel:
    """Load a model of any flavor for prediction.

    Args:
        model_uri: ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``,
            ``models:/<name>/<stage>``, ``models:/<name>@<alias>`` or a local model folder.

    Returns:
        A :class:`PyFuncModel`; call ``predict(data)``.

    Raises:
        InvalidArgument: A malformed URI.
        NotFound: The URI names no model (unknown run, path, model, version, stage or alias).
        SchemaMismatch: The stored model has no python_function flavor.
    """
    files, mlmodel, where = open_model(model_uri)
    flavor = mlmodel["flavors"].get(FLAVOR)
    if not isinstance(flavor, dict) or flavor.get("loader_module") not in _LOADERS:
        raise SchemaMismatch(f"model {where} has no loadable {FLAVOR} flavor")
    module = importlib.import_module(flavor["loader_module"])
    model: PyFuncModel = module._load_pyfunc(files, mlmodel)
    return model


def _load_pyfunc(files: ModelFiles, mlmodel: dict[str, Any]) -> PyFuncModel:
    flavor = mlmodel["flavors"][FLAVOR]
    python_model = cloudpickle.loads(files.read(flavor["python_model"]))
    artifacts: dict[str, str] = {}
    names = flavor.get("artifacts") or {}
    if names:
        folder = files.materialize("artifacts")
        artifacts = {name: str(folder / rel) for name, rel in names.items()}
    context = PythonModelContext(artifacts, flavor.get("model_config"))
    python_model.load_context(context)
    return PyFuncModel(call_python_model_predict(python_model, context), mlmodel, python_model)


def _model_dir(
    folder: Path,
    python_model: Any,
    artifacts: Mapping[str, str | os.PathLike[str]] | None,
    signature: Any,
    input_example: Any,
    model_config: Mapping[str, Any] | None,
    run_id: str | None,
    artifact_path: str,
) -> dict[str, Any]:
    if python_model is None or not callable(getattr(python_model, "predict", None)):
        raise InvalidArgument(
            f"python_model must be a PythonModel (an object with predict()), got {python_model!r}"
        )
    extra: dict[str, Path] = {}
    names: dict[str, str] = {}
    for key, local in (artifacts or {}).items():
        path = Path(local)
        if not path.is_file():
            raise NotFound(f"model artifact {key!r}: {str(path)!r} is not a file")
        names[key] = f"{key}/{path.name}"
        extra[f"artifacts/{key}/{path.name}"] = path
    flavor = {
        "loader_module": "ferrostore.registry.pyfunc",
        "python_model": _MODEL_FILE,
        "artifacts": names,
        "model_config": dict(model_config or {}),
    }
    return write_model_dir(
        folder,
        flavors={FLAVOR: flavor},
        files={_MODEL_FILE: cloudpickle.dumps(python_model)},
        signature=signature,
        input_example=input_example,
        packages=(),
        run_id=run_id,
        artifact_path=artifact_path,
        extra_files=extra,
    )


def save_model(
    path: str | os.PathLike[str],
    python_model: Any = None,
    artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
    signature: Any = None,
    input_example: Any = None,
    model_config: Mapping[str, Any] | None = None,
) -> None:
    """Save a PythonModel to a local folder (which must not exist or be empty).

    Raises:
        AlreadyExists: The folder holds files already.
        InvalidArgument: ``python_model`` has no ``predict``.
    """
    from ferrostore.errors import AlreadyExists

    folder = Path(path)
    if folder.exists() and any(folder.iterdir()):
        raise AlreadyExists(f"model folder {str(folder)!r} exists and is not empty")
    _model_dir(folder, python_model, artifacts, signature, input_example, model_config, None, "")


def log_built_model(
    build: Any,
    *,
    name: str | None,
    artifact_path: str | None,
    registered_model_name: str | None,
) -> ModelInfo:
    """Build a model folder with ``build(folder, run_id, path)`` and log it to the active run."""
    path = normalize_artifact_path(name or artifact_path or "model", allow_empty=False)
    store, run_id = tracking._current_run_id()
    with temp_model_dir() as tmp:
        mlmodel = build(Path(tmp), run_id, path)
        tracking.log_artifacts_for(store, run_id, Path(tmp), path)
    uri = f"runs:/{run_id}/{path}"
    version = None
    if registered_model_name is not None:
        version = tracking.register_model(uri, registered_model_name).version
    return ModelInfo(
        run_id=run_id,
        artifact_path=path,
        model_uri=uri,
        flavors=mlmodel["flavors"],
        signature=mlmodel["signature"],
        utc_time_created=mlmodel["utc_time_created"],
        model_uuid=mlmodel["model_uuid"],
        registered_model_version=version,
    )


def log_model(
    artifact_path: str | None = None,
    python_model: Any = None,
    artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
    signature: Any = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    *,
    name: str | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> ModelInfo:
    """Log a PythonModel to the active run (one is started if none is active).

    Stored with the Python version, package versions and an optional signature (given, or
    inferred from ``input_example``).

    Args:
        artifact_path: Where in the run's artifacts (MLflow 2 name; default ``"model"``).
        python_model: The :class:`PythonModel` instance.
        artifacts: ``{name: local file}`` copied with the model; at load,
            ``context.artifacts[name]`` is a local path to it.
        signature: A dict from :func:`infer_signature`.
        input_example: Example input, used to infer the signature when none is given.
        registered_model_name: Also register the model under this name.
        name: Same as ``artifact_path`` (MLflow 3 name).
        model_config: Passed to the model as ``context.model_config``.

    Returns:
        :class:`ModelInfo` with ``model_uri`` ``runs:/<run_id>/<path>``.

    Raises:
        InvalidArgument: ``python_model`` has no ``predict``; a bad path or signature.
        NotFound: An artifact file does not exist.
    """

    def build(folder: Path, run_id: str, path: str) -> dict[str, Any]:
        return _model_dir(
            folder, python_model, artifacts, signature, input_example, model_config, run_id, path
        )

    return log_built_model(
        build, name=name, artifact_path=artifact_path, registered_model_name=registered_model_name
    )
