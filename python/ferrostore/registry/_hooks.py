"""The one place the registry reports what happened, for subscribers such as lineage.

Every run start and end, model version creation, stage transition and alias move calls
:func:`_emit` after its transaction committed; :func:`_emit` hands the event to every
subscribed listener, in subscription order. Lineage's subscriber,
:func:`ferrostore.lineage.recording.on_registry_event`, is subscribed the first time an event
is emitted, so lineage is recorded without user code.

A listener's failure never fails the registry call that emitted the event (its change is
committed already): it is logged on the ``ferrostore.registry`` logger and the other
listeners still run.

Example:
    >>> seen = []
    >>> unsubscribe = subscribe(lambda name, payload: seen.append(name))
    >>> _emit("run_started", run_id="r1")
    >>> unsubscribe()
    >>> seen
    ['run_started']
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Listener", "subscribe", "unsubscribe"]

Listener = Callable[[str, Mapping[str, Any]], None]
"""A subscriber: called with the event's name and its payload."""

_DEFAULT_SUBSCRIBERS = (("ferrostore.lineage.recording", "on_registry_event"),)
_logger = logging.getLogger("ferrostore.registry")
_lock = threading.Lock()
_listeners: list[Listener] = []
_defaults_loaded = False


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(event_name, payload)`` for every registry event from now on.

    Subscribing the same callable twice has no effect.

    Args:
        listener: The callable.

    Returns:
        A function that unsubscribes it.
    """
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)
    return lambda: unsubscribe(listener)


def unsubscribe(listener: Listener) -> None:
    """Stop calling ``listener`` (no effect if it was not subscribed)."""
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _load_default_subscribers() -> None:
    global _defaults_loaded
    if _defaults_loaded:
        return
    _defaults_loaded = True
    for module, attribute in _DEFAULT_SUBSCRIBERS:
        try:
            subscribe(getattr(importlib.import_module(module), attribute))
        except (ImportError, AttributeError):
            _logger.exception("cannot load registry event subscriber %s.%s", module, attribute)


def _emit(event_name: str, **payload: Any) -> None:
    """Report a committed registry event to every subscriber.

    Args:
        event_name: ``"run_started"``, ``"run_ended"``, ``"model_version_created"``,
            ``"stage_transitioned"``, ``"alias_set"``, ``"alias_deleted"``...
        **payload: Event details (the store, names, versions, run ids, who, when).
    """
    _load_default_subscribers()
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event_name, payload)
        except Exception:
            _logger.exception("registry event subscriber %r failed on %s", listener, event_name)
