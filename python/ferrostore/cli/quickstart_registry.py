"""The registry part of the quickstart: train, log, register, promote, load, predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_registry_quickstart"]

MODEL_NAME = "fraud-detector"


def run_registry_quickstart(
    tracking_uri: Path,
    X: Any,
    y: Any,
    *,
    first_step: int,
    training_set_uri: str | None = None,
) -> tuple[str, int]:
    """Train a small classifier on ``X, y`` and take it through the registry, step by step.

    Args:
        tracking_uri: The tracking folder (its ``metadata.db`` is the project's database).
        X: Training features (a DataFrame or array).
        y: Labels.
        first_step: The number of the first printed step.
        training_set_uri: The feature store training set the model is trained on, recorded
            on the run (tag ``ferrostore.training_set``) so lineage links them.

    Returns:
        The registered model's name and the next step number.

    Raises:
        InvalidArgument: scikit-learn is not installed (``pip install 'ferrostore[sklearn]'``).
    """
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as err:
        from ferrostore.errors import InvalidArgument

        raise InvalidArgument(
            "the registry quickstart needs scikit-learn: pip install 'ferrostore[sklearn]'"
        ) from err
    import ferrostore.registry as mlflow
    from ferrostore.registry import Client

    mlflow.set_tracking_uri(Path(tracking_uri))
    mlflow.set_experiment("quickstart")
    step = first_step
    tags = {"ferrostore.training_set": training_set_uri} if training_set_uri else None
    with mlflow.start_run(run_name="train-fraud", tags=tags) as run:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y)
        accuracy = float(model.score(X, y))
        mlflow.log_params({"model": "StandardScaler+LogisticRegression", "max_iter": 200})
        mlflow.log_metric("train_accuracy", accuracy)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:5])
    print(
        f"{step}. trained and logged a classifier in run {run.info.run_id} "
        f"(train accuracy {accuracy:.3f})"
    )
    step += 1
    client = Client()
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    print(f"{step}. registered {MODEL_NAME} version {version.version}")
    step += 1
    client.transition_model_version_stage(MODEL_NAME, version.version, "Staging")
    print(f"{step}. moved version {version.version} to Staging")
    client.transition_model_version_stage(
        MODEL_NAME, version.version, "Production", archive_existing_versions=True
    )
    step += 1
    print(f"{step}. promoted version {version.version} to Production (earlier ones archived)")
    prod = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/Production")
    predictions = prod.predict(X[:5])
    step += 1
    shown = np.asarray(predictions).tolist()
    print(f"{step}. loaded models:/{MODEL_NAME}/Production and predicted {shown}")
    return MODEL_NAME, step + 1
