"""ferrostore: the ML platform of a team in one ``pip install``.

A feature store with point-in-time training sets and an LMDB online store, an experiment
tracker and model registry, a vector database and a lineage store, with a Rust core for the
hot paths. Areas live in subpackages: :mod:`ferrostore.features`, :mod:`ferrostore.metadata`,
and the errors every call raises in :mod:`ferrostore.errors`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ferrostore")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

__all__ = ["__version__"]
