"""The declared stack: one ``ferrostore.yaml`` describing a team's ferrostore.

:func:`load_stack` parses and validates the file; :func:`plan_stack` diffs it with the
current state (the metadata database, the vector catalogue, the folders, and what the stack
last applied); :func:`apply_stack` applies the diff in dependency order (journaled, so an
interrupted apply resumes) and records it in lineage; :func:`destroy_stack` removes what the
stack declared; :func:`stack_history` lists the recorded applies.

Example:
    >>> from ferrostore.stack import STACK_FILE
    >>> STACK_FILE
    'ferrostore.yaml'
"""

from __future__ import annotations

from ferrostore.stack.apply import (
    ApplyResult,
    HistoryEntry,
    apply_stack,
    destroy_stack,
    diff_history,
    plan_stack,
    stack_history,
)
from ferrostore.stack.plan import Change, FieldChange, Plan
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
    "ApplyResult",
    "Change",
    "CollectionSpec",
    "FeatureRepoSpec",
    "FieldChange",
    "HistoryEntry",
    "ModelSpec",
    "Plan",
    "StackSpec",
    "apply_stack",
    "destroy_stack",
    "diff_history",
    "load_stack",
    "plan_stack",
    "stack_history",
]
