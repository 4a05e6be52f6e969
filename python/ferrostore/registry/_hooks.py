"""The one place the registry reports what happened, so lineage can subscribe later.

Every run start and end, model version creation, stage transition and alias move calls
:func:`_emit` after its transaction committed. It does nothing yet: the lineage issue will
make it record events (and may add subscribers); callers need not change.
"""

from __future__ import annotations

from typing import Any

__all__: list[str] = []


def _emit(event_name: str, **payload: Any) -> None:
    """Report a committed registry event (no-op until lineage subscribes).

    Args:
        event_name: ``"run_started"``, ``"run_ended"``, ``"model_version_created"``,
            ``"stage_transitioned"``, ``"alias_set"``, ``"alias_deleted"``...
        **payload: Event details (names, versions, run ids, who, when).
    """
    del event_name, payload
