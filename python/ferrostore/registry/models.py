"""Saving and loading models: the MLmodel file, signatures and the uniform ``predict``.

A model is a folder of files: ``MLmodel`` (YAML: flavors, Python and package versions,
signature, ids, creation time) and the serialized model (cloudpickle). ``log_model`` stores
that folder as artifacts of a run (content-addressed); ``load_model(uri)`` reads it back from
``runs:/``, ``models:/`` URIs or a local folder and returns an object whose ``predict(data)``
works the same for every flavor.

Example:
    >>> sig = infer_signature({"a": [1.0], "b": [2]})
    >>> [c["name"] for c in sig["inputs"]]
    ['a', 'b']
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import importlib.metadata
import inspect
import os
import platform
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from ferrostore.errors import InvalidArgument, NotFound, SchemaMismatch

__all__ = [
    "MLMODEL_FILE",
    "ModelFiles",
    "PyFuncModel",
    "infer_signature",
    "package_versions",
    "read_mlmodel",
    "write_model_dir",
]

MLMODEL_FILE = "MLmodel"
# libyaml's parser when PyYAML was built with it: the pure-Python one is ~10x slower.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def package_versions(*names: str) -> dict[str, str]:
    """Return ``{package: installed version}`` for the named packages that are installed."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _column_type(dtype: Any) -> str:
    kind = getattr(dtype, "kind", None)
    return {
        "b": "boolean",
        "i": "long",
        "u": "long",
        "f": "double",
        "M": "datetime",
        "O": "string",
        "U": "string",
        "S": "binary",
    }.get(kind or "", str(dtype))


def _schema(data: Any) -> list[dict[str, Any]]:
    import numpy as np
    import pandas as pd

    if isinstance(data, Mapping):
        data = pd.DataFrame(dict(data))
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        return [{"name": str(c), "type": _column_type(data[c].dtype)} for c in data.columns]
    array = np.asarray(data)
    return [{"type": "tensor", "dtype": str(array.dtype), "shape": [-1, *array.shape[1:]]}]


def infer_signature(model_input: Any, model_output: Any = None) -> dict[str, Any]:
    """Describe a model's input (and output) columns or tensor shape, as MLflow does.

    Args:
        model_input: An example input: a pandas DataFrame, a dict of columns, a NumPy
            array or a list.
        model_output: An example output, optional.

    Returns:
        ``{"inputs": [...], "outputs": [...] | None}``: named columns with their types, or
        one tensor spec (dtype and shape, batch dimension -1).

    Raises:
        InvalidArgument: The example cannot be described.
    """
    try:
        return {
            "inputs": _schema(model_input),
            "outputs": None if model_output is None else _schema(model_output),
        }
    except (TypeError, ValueError) as err:
        raise InvalidArgument(f"cannot infer a signature from {type(model_input)}: {err}") from err


def _check_signature(signature: Any) -> dict[str, Any] | None:
    if signature is None:
        return None
    if hasattr(signature, "to_dict"):
        signature = signature.to_dict()
    if not isinstance(signature, Mapping) or "inputs" not in signature:
        raise InvalidArgument(
            f"signature must be a dict with 'inputs' (see infer_signature), got {signature!r}"
        )
    return dict(signature)


def write_model_dir(
    folder: Path,
    *,
    flavors: dict[str, Any],
    files: Mapping[str, bytes],
    signature: Any,
    input_example: Any,
    packages: tuple[str, ...],
    run_id: str | None,
    artifact_path: str,
    extra_files: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Write a model folder (MLmodel + files); return the MLmodel content."""
    sig = _check_signature(signature)
    if sig is None and input_example is not None:
        sig = infer_signature(input_example)
    mlmodel = {
        "artifact_path": artifact_path,
        "flavors": flavors,
        "model_uuid": uuid.uuid4().hex,
        "run_id": run_id,
        "utc_time_created": dt.datetime.now(dt.UTC).isoformat(),
        "python_version": platform.python_version(),
        "packages": package_versions("ferrostore", "cloudpickle", "numpy", "pandas", *packages),
        "signature": sig,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for name, source in (extra_files or {}).items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(source).read_bytes())
    (folder / MLMODEL_FILE).write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    return mlmodel


class ModelFiles(Protocol):
    """Read access to the files of one stored model."""

    def read(self, name: str) -> bytes:
        """Return the content of file ``name`` of the model."""
        ...

    def materialize(self, prefix: str) -> Path:
        """Return a local folder holding the model's files under ``prefix``."""
        ...


class LocalModelFiles:
    """The files of a model saved in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, name: str) -> bytes:
        """Return the content of file ``name``."""
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError as err:
            raise NotFound(f"model folder {str(self.folder)!r} has no file {name!r}") from err

    def materialize(self, prefix: str) -> Path:
        """Return the local folder ``prefix``."""
        return self.folder / prefix


@functools.lru_cache(maxsize=64)
def _parse_mlmodel(text: bytes) -> Any:
    # Keyed by the file's bytes, so a cached parse is never stale.
    return yaml.load(text, Loader=_YAML_LOADER)


def read_mlmodel(files: ModelFiles, where: str) -> dict[str, Any]:
    """Read and parse the MLmodel file of a stored model.

    Returns:
        The content, a fresh object the caller may change.

    Raises:
        SchemaMismatch: The file is not YAML or names no flavors.
    """
    try:
        content = copy.deepcopy(_parse_mlmodel(files.read(MLMODEL_FILE)))
    except yaml.YAMLError as err:
        raise SchemaMismatch(f"model {where}: MLmodel file is not valid YAML: {err}") from err
    if not isinstance(content, dict) or "flavors" not in content:
        raise SchemaMismatch(f"model {where}: MLmodel file has no flavors")
    return content


class PythonModelContext:
    """What :meth:`PythonModel.load_context` receives: local paths of the model's artifacts."""

    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None) -> None:
        self.artifacts = artifacts
        self.model_config = model_config or {}


class PyFuncModel:
    """A loaded model of any flavor; :meth:`predict` is the uniform entry point.

    Args:
        predict_fn: Called with the input (and ``params``) to predict.
        metadata: The MLmodel content.
        raw: The underlying model object (``unwrap_python_model`` returns it).
    """

    def __init__(self, predict_fn: Any, metadata: dict[str, Any], raw: Any) -> None:
        self._predict_fn = predict_fn
        self.metadata = metadata
        self._raw = raw

    @property
    def loader_module(self) -> str:
        """The module that loaded the model (``ferrostore.registry.sklearn``...)."""
        return str(self.metadata["flavors"]["python_function"]["loader_module"])

    def unwrap_python_model(self) -> Any:
        """Return the underlying model object (a PythonModel or an estimator)."""
        return self._raw

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Predict on ``data``, checked against the model's signature when it has one.

        Args:
            data: The input: a pandas DataFrame, a NumPy array, a dict of columns or a list.
            params: Extra inference parameters, passed to PythonModels that accept them.

        Returns:
            What the model returns.

        Raises:
            SchemaMismatch: ``data`` lacks columns the signature names.
        """
        signature = self.metadata.get("signature") or {}
        inputs = signature.get("inputs") or []
        names = [c["name"] for c in inputs if isinstance(c, dict) and "name" in c]
        if names:
            import pandas as pd

            if isinstance(data, Mapping):
                data = pd.DataFrame(dict(data))
            if isinstance(data, pd.DataFrame):
                missing = [n for n in names if n not in data.columns]
                if missing:
                    raise SchemaMismatch(
                        f"model input is missing columns {missing}; the model's signature "
                        f"expects {names}"
                    )
                data = data[names]
        return self._predict_fn(data, params)

    def __repr__(self) -> str:
        return f"PyFuncModel(flavor={self.loader_module!r}, run_id={self.metadata.get('run_id')!r})"


def call_python_model_predict(model: Any, context: PythonModelContext) -> Any:
    """Return ``fn(data, params)`` calling a PythonModel's predict with or without context."""
    params = list(inspect.signature(model.predict).parameters)
    takes_context = bool(params) and params[0] == "context"
    takes_params = "params" in params

    def predict(data: Any, extra: dict[str, Any] | None) -> Any:
        args: list[Any] = [context, data] if takes_context else [data]
        if takes_params:
            return model.predict(*args, params=extra)
        return model.predict(*args)

    return predict


def temp_model_dir() -> tempfile.TemporaryDirectory[str]:
    """Return a temporary folder to build a model in before logging it."""
    return tempfile.TemporaryDirectory(prefix="ferrostore-model-")


def is_local_model(uri: str | os.PathLike[str]) -> bool:
    """Return whether ``uri`` is a local folder holding an MLmodel file."""
    if isinstance(uri, str) and ":/" in uri and not uri.startswith("file:"):
        return False
    path = Path(str(uri).removeprefix("file://").removeprefix("file:"))
    return (path / MLMODEL_FILE).is_file()
