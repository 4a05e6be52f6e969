"""The registry part of the quickstart: train, log, register, promote, load, predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_registry_quickstart"]

MODEL_NAME = "fraud-detector"


def run_registry_quickstart(root: Path, X: Any, y: Any) -> str:
    """Train a small classifier on ``X, y`` and take it through the registry, step by step.

    Uses the tracking URI ``<root>/.ferrostore`` (the project's metadata database). Prints
    each step numbered ("6. ..." onward, after the feature store steps).

    Args:
        root: The quickstart folder.
        X: Training features (a DataFrame or array).
        y: Labels.

    Returns:
        The registered model's name.

    Raises:
        InvalidArgument: scikit-learn is not installed (``pip install 'ferrostore[sklearn]'``).
    """
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as err:
        from ferrostore.errors import InvalidArgument

        raise InvalidArgument(
            "the registry quickstart needs scikit-learn: pip install 'ferrostore[sklearn]'"
        ) from err
    import ferrostore.registry as mlflow
    from ferrostore.registry import Client

    mlflow.set_tracking_uri(Path(root) / ".ferrostore")
    mlflow.set_experiment("quickstart")
    with mlflow.start_run(run_name="train-fraud") as run:
        model = LogisticRegression(max_iter=200).fit(X, y)
        accuracy = float(model.score(X, y))
        mlflow.log_params({"model": "LogisticRegression", "max_iter": 200})
        mlflow.log_metric("train_accuracy", accuracy)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:5])
    print(
        f"6. trained and logged a classifier in run {run.info.run_id} "
        f"(train accuracy {accuracy:.3f})"
    )
    client = Client()
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    print(f"7. registered {MODEL_NAME} version {version.version}")
    client.transition_model_version_stage(MODEL_NAME, version.version, "Staging")
    print(f"8. moved version {version.version} to Staging")
    client.transition_model_version_stage(
        MODEL_NAME, version.version, "Production", archive_existing_versions=True
    )
    print(f"9. promoted version {version.version} to Production (earlier ones archived)")
    prod = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/Production")
    predictions = prod.predict(X[:5])
    print(f"10. loaded models:/{MODEL_NAME}/Production and predicted {list(predictions)}")
    return MODEL_NAME
