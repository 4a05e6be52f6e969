"""Model URIs: ``runs:/<run_id>/<path>``, ``models:/<name>/<version|stage>``, ``models:/<name>@<alias>``.

Example:
    >>> parse_model_uri("models:/fraud@champion").alias
    'champion'
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import re

from ferrostore.errors import InvalidArgument

__all__ = ["ModelUri", "parse_model_uri"]

_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclasses.dataclass(frozen=True)
class ModelUri:
    """A parsed model URI; which fields are set depends on its form."""

    scheme: str
    run_id: str | None = None
    path: str = ""
    name: str | None = None
    version: int | None = None
    stage: str | None = None
    alias: str | None = None


def parse_model_uri(uri: str) -> ModelUri:
    """Parse a model URI.

    Args:
        uri: ``runs:/<run_id>/<artifact path>``, ``models:/<name>/<version>``,
            ``models:/<name>/<stage>`` (``None``, ``Staging``, ``Production``, ``Archived``,
            or ``latest``) or ``models:/<name>@<alias>``.

    Returns:
        The parsed URI (stages are not validated here).

    Raises:
        InvalidArgument: The URI has another form; the message quotes it.
    """
    if not isinstance(uri, str):
        raise InvalidArgument(f"model URI must be a string, got {uri!r}")
    if uri.startswith("runs:/"):
        rest = uri[len("runs:/") :].lstrip("/")
        run_id, _, path = rest.partition("/")
        if not _RUN_ID.fullmatch(run_id):
            raise InvalidArgument(
                f"model URI {uri!r}: {run_id!r} is not a run id (32 hex characters); "
                "expected runs:/<run_id>/<path>"
            )
        path = "/".join(p for p in path.split("/") if p)
        if not path:
            raise InvalidArgument(f"model URI {uri!r} names no artifact path after the run id")
        return ModelUri("runs", run_id=run_id, path=path)
    if uri.startswith("models:/"):
        rest = uri[len("models:/") :].strip("/")
        if "/" in rest:
            name, _, ref = rest.rpartition("/")
            if not name or not ref:
                raise InvalidArgument(f"model URI {uri!r}: expected models:/<name>/<version>")
            if ref.isdigit():
                return ModelUri("models", name=name, version=int(ref))
            return ModelUri("models", name=name, stage=ref)
        if "@" in rest:
            name, _, alias = rest.rpartition("@")
            if name and alias:
                return ModelUri("models", name=name, alias=alias)
        raise InvalidArgument(
            f"model URI {uri!r}: expected models:/<name>/<version>, models:/<name>/<stage> "
            "or models:/<name>@<alias>"
        )
    raise InvalidArgument(
        f"model URI {uri!r} has an unsupported scheme; expected runs:/<run_id>/<path>, "
        "models:/<name>/<version|stage> or models:/<name>@<alias>"
    )
