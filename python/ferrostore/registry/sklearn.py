"""scikit-learn models: ``log_model`` and ``load_model`` (MLflow's ``mlflow.sklearn``).

The estimator is stored with cloudpickle, alongside the Python, scikit-learn and other
package versions and an optional input signature. ``ferrostore.registry.pyfunc.load_model``
loads it too, calling the estimator's ``predict``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cloudpickle

from ferrostore.errors import InvalidArgument, SchemaMismatch
from ferrostore.registry.entities import ModelInfo
from ferrostore.registry.models import ModelFiles, PyFuncModel, write_model_dir
from ferrostore.registry.pyfunc import log_built_model, open_model

__all__ = ["FLAVOR", "load_model", "log_model"]

FLAVOR = "sklearn"
_MODEL_FILE = "model.pkl"


def _model_dir(
    folder: Path, sk_model: Any, signature: Any, input_example: Any, run_id: str, path: str
) -> dict[str, Any]:
    if not callable(getattr(sk_model, "predict", None)) or not hasattr(sk_model, "get_params"):
        raise InvalidArgument(f"sk_model must be a fitted scikit-learn estimator, got {sk_model!r}")
    from ferrostore.registry.models import package_versions

    return write_model_dir(
        folder,
        flavors={
            "python_function": {
                "loader_module": "ferrostore.registry.sklearn",
                "model_path": _MODEL_FILE,
            },
            FLAVOR: {
                "pickled_model": _MODEL_FILE,
                "sklearn_version": package_versions("scikit-learn").get("scikit-learn"),
                "serialization_format": "cloudpickle",
            },
        },
        files={_MODEL_FILE: cloudpickle.dumps(sk_model)},
        signature=signature,
        input_example=input_example,
        packages=("scikit-learn", "scipy", "joblib"),
        run_id=run_id,
        artifact_path=path,
    )


def log_model(
    sk_model: Any,
    artifact_path: str | None = None,
    signature: Any = None,
    input_example: Any = None,
    registered_model_name: str | None = None,
    *,
    name: str | None = None,
) -> ModelInfo:
    """Log a scikit-learn estimator to the active run (one is started if none is active).

    Args:
        sk_model: The fitted estimator (or pipeline).
        artifact_path: Where in the run's artifacts (MLflow 2 name; default ``"model"``).
        signature: A dict from ``infer_signature``.
        input_example: Example input, used to infer the signature when none is given.
        registered_model_name: Also register the model under this name.
        name: Same as ``artifact_path`` (MLflow 3 name).

    Returns:
        :class:`ModelInfo` with ``model_uri`` ``runs:/<run_id>/<path>``.

    Raises:
        InvalidArgument: ``sk_model`` is not an estimator.
    """

    def build(folder: Path, run_id: str, path: str) -> dict[str, Any]:
        return _model_dir(folder, sk_model, signature, input_example, run_id, path)

    return log_built_model(
        build, name=name, artifact_path=artifact_path, registered_model_name=registered_model_name
    )


def _read_estimator(files: ModelFiles, mlmodel: dict[str, Any], where: str) -> Any:
    flavor = mlmodel["flavors"].get(FLAVOR)
    if not isinstance(flavor, dict):
        raise SchemaMismatch(f"model {where} is not a scikit-learn model (no sklearn flavor)")
    return cloudpickle.loads(files.read(flavor["pickled_model"]))


def load_model(model_uri: str | os.PathLike[str]) -> Any:
    """Load a scikit-learn model as the estimator itself.

    Args:
        model_uri: ``runs:/``, ``models:/`` URI or a local model folder.

    Returns:
        The estimator.

    Raises:
        NotFound: The URI names no model.
        SchemaMismatch: The model is not a scikit-learn model.
    """
    files, mlmodel, where = open_model(model_uri)
    return _read_estimator(files, mlmodel, where)


def _load_pyfunc(files: ModelFiles, mlmodel: dict[str, Any]) -> PyFuncModel:
    estimator = _read_estimator(files, mlmodel, str(mlmodel.get("run_id")))

    def predict(data: Any, params: dict[str, Any] | None) -> Any:
        del params
        return estimator.predict(data)

    return PyFuncModel(predict, mlmodel, estimator)
