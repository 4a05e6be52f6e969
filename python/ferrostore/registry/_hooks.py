"""The one place the registry reports what happened: recorders and subscribers.

Every run start and end, model version creation, stage transition and alias move reports
its event twice:

- to the **recorders**, with :func:`_record`, inside the transaction that makes the change.
  Lineage is the recorder (:func:`ferrostore.lineage.recording.record_registry_event`,
  loaded by name the first time): the change and its lineage commit together, so a crash
  never leaves an acknowledged transition without its approval record. When a recorder
  fails, the transaction is rolled back, the failure logged, and the change made again
  without recording: it still commits. (A savepoint per recorder would cost every change a
  statement journal; a failing recorder is the rare case.) :func:`_prepare_recorders` runs
  first, outside the transaction (lineage declares its types there).
- to the **subscribers**, with :func:`_emit`, after the commit, in subscription order.

A subscriber's failure never fails the registry call that emitted the event (its change is
committed already): it is logged on the ``ferrostore.registry`` logger and the other
subscribers still run.

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

from ferrostore.metadata.db import DriverConnection

__all__ = ["Listener", "subscribe", "unsubscribe"]

Listener = Callable[[str, Mapping[str, Any]], None]
"""A subscriber: called with the event's name and its payload."""

Recorder = Callable[[str, Mapping[str, Any], DriverConnection], None]
"""A recorder: called with the event's name, its payload and the change's transaction."""

_RECORDER_MODULE = "ferrostore.lineage.recording"
_logger = logging.getLogger("ferrostore.registry")
_lock = threading.Lock()
_listeners: list[Listener] = []
# (prepare, record) pairs, loaded from _RECORDER_MODULE on first use.
_recorders: list[tuple[Callable[[Any], None], Recorder]] | None = None


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


def _loaded_recorders() -> list[tuple[Callable[[Any], None], Recorder]]:
    global _recorders
    if _recorders is None:
        loaded = []
        try:
            module = importlib.import_module(_RECORDER_MODULE)
            loaded.append((module.prepare_registry_recording, module.record_registry_event))
        except (ImportError, AttributeError):
            _logger.exception("cannot load the registry event recorder %s", _RECORDER_MODULE)
        _recorders = loaded
    return _recorders


def _prepare_recorders(store: Any) -> bool:
    """Get the recorders ready for ``store``'s events; call outside any transaction.

    Returns:
        Whether every recorder is ready. A failure is logged: the registry still works,
        the recorder's events fail (logged) until a later call succeeds.
    """
    ready = True
    for prepare, _ in _loaded_recorders():
        try:
            prepare(store)
        except Exception:
            ready = False
            _logger.exception("cannot prepare registry event recorder %r", prepare)
    return ready


class _RecordingFailed(Exception):
    """A recorder failed: the change is rolled back and made again without recording."""

    def __init__(self, recorder: Recorder, event_name: str) -> None:
        super().__init__(f"registry event recorder {recorder!r} failed on {event_name}")


def _record(driver: DriverConnection, event_name: str, **payload: Any) -> None:
    """Hand an event to every recorder, inside the transaction that makes the change.

    Args:
        driver: The change's transaction.
        event_name: As for :func:`_emit`.
        **payload: As for :func:`_emit`.

    Raises:
        _RecordingFailed: A recorder raised (the original is its ``__cause__``). Its writes
            are in the transaction, which must be rolled back.
    """
    for _, record in _loaded_recorders():
        try:
            record(event_name, payload, driver)
        except Exception as err:
            raise _RecordingFailed(record, event_name) from err


def _emit(event_name: str, **payload: Any) -> None:
    """Report a committed registry event to every subscriber.

    Args:
        event_name: ``"run_started"``, ``"run_ended"``, ``"model_version_created"``,
            ``"stage_transitioned"``, ``"alias_set"``, ``"alias_deleted"``...
        **payload: Event details (the store, names, versions, run ids, who, when).
    """
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event_name, payload)
        except Exception:
            _logger.exception("registry event subscriber %r failed on %s", listener, event_name)
