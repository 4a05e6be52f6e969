"""The declared stack: one ``ferrostore.yaml`` describing a team's ferrostore.

This release parses and validates the file (:func:`load_stack`); ``plan`` / ``apply`` /
``destroy`` are not built yet.

Example:
    >>> from ferrostore.stack import STACK_FILE
    >>> STACK_FILE
    'ferrostore.yaml'
"""

from __future__ import annotations

from ferrostore.stack.spec import (
    STACK_FILE,
    CollectionSpec,
    FeatureRepoSpec,
    ModelSpec,
    StackSpec,
    load_stack,
)

__all__ = [
    "STACK_FILE",
    "CollectionSpec",
    "FeatureRepoSpec",
    "ModelSpec",
    "StackSpec",
    "load_stack",
]
