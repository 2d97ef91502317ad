"""Participation events: other packages react when a participation starts or is shared, in the
transaction that starts or shares it, without `campaigns` knowing them.

The app factory subscribes the connectors' listeners (the LTI tool queues a grade job when a
result is shared); `journey` publishes. A listener receives the database session and the
participation, may add rows, never commits. If it raises, the change is undone: the participation
is not shared, or not started, and the caller gets `ListenerFailed`. With no listener,
publishing costs nothing: no savepoint, no statement.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from campaigns.shared.errors import ServiceError
from campaigns.shared.models import Participation

log = logging.getLogger(__name__)

Listener = Callable[[Session, Participation], None]


class Event(enum.StrEnum):
    STARTED = "started"  # a participation was created (first start, or a new try)
    SHARED = "shared"  # the student sent the results: `shared_results` is frozen


class ListenerFailed(ServiceError):
    """A listener refused the event: what triggered it was rolled back."""

    def __init__(self, event: Event) -> None:
        super().__init__(f"a listener of {event} failed: nothing was changed", code="listener")
        self.event = event


_listeners: dict[Event, tuple[Listener, ...]] = {event: () for event in Event}


def subscribe(event: Event, listener: Listener) -> None:
    """Call `listener` on every `event` from now on (once, however often it is subscribed)."""
    if listener not in _listeners[event]:
        _listeners[event] = (*_listeners[event], listener)


def unsubscribe(event: Event, listener: Listener) -> None:
    _listeners[event] = tuple(f for f in _listeners[event] if f is not listener)


def listened(event: Event) -> bool:
    return bool(_listeners[event])


def publish(session: Session, event: Event, participation: Participation) -> None:
    """Call the listeners of `event`, in order. The caller runs this inside a savepoint that
    holds the change, so that a failure undoes both."""
    for listener in _listeners[event]:
        try:
            listener(session, participation)
        except Exception as error:
            log.exception(
                "participation %s: listener %s of %s failed",
                participation.id,
                getattr(listener, "__qualname__", repr(listener)),
                event,
            )
            raise ListenerFailed(event) from error
