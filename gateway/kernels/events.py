"""Per-kernel event streams: publish what happens to a kernel, subscribe with catch-up.

A kernel's channel (its replay buffer and event numbering) begins with its first subscriber and ends with the
kernel: kernels nobody watches cost nothing.

Pure asyncio, no web framework. Each kernel has a channel with a bounded replay buffer; every event gets an id
``"<epoch>-<n>"`` where ``n`` increases by one per event of that kernel and ``epoch`` is random per hub (per
gateway process), so an id from an earlier process never matches and its holder gets a fresh snapshot instead.

Publishing never blocks and never waits for subscribers: a subscriber whose queue is full is cut off (it sees the
end of its stream and reconnects, catching up from its last id or from a snapshot).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

#: Kinds of events (the SSE ``event`` field).
CELL_ADDED = "cell_added"
CELL_EDITED = "cell_edited"
CELL_DELETED = "cell_deleted"
RUN_STARTED = "run_started"
OUTPUT = "output"
RUN_FINISHED = "run_finished"
KERNEL_STATE = "kernel_state"


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    data: dict[str, Any]


class Subscription:
    """One subscriber's queue. Iterate it for events; it ends when the kernel goes or the subscriber lags."""

    def __init__(self, channel: _Channel, capacity: int) -> None:
        self._channel = channel
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(capacity)
        self.lagged = False

    def _offer(self, event: Event | None) -> bool:
        """Queue ``event`` (None ends the stream). A full queue cuts the subscriber off: what it has not read yet
        is dropped and its stream ends (it reconnects and catches up); returns False then."""
        try:
            self._queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.lagged = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
            return False

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event; None at the end of the stream. Raises TimeoutError after ``timeout`` s without one."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    def close(self) -> None:
        self._channel.subscribers.discard(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self.next()) is not None:
            yield event


@dataclass
class _Channel:
    buffer: deque[tuple[Event, int]]  # (event, its size as the publisher counted it)
    sequence: int = 0
    size: int = 0
    subscribers: set[Subscription] = field(default_factory=set)


class EventHub:
    """Publish/subscribe for every kernel of one gateway. Use from the event loop only."""

    def __init__(self, replay: int = 2000, queue_size: int = 5000, replay_bytes: int = 2_000_000) -> None:
        """Each kernel keeps its last ``replay`` events, and no more than ``replay_bytes`` of them (as sized by
        the publishers; the newest event is always kept)."""
        self.epoch = secrets.token_hex(4)
        self.replay = replay
        self.replay_bytes = replay_bytes
        self.queue_size = queue_size
        self._channels: dict[int, _Channel] = {}

    def _channel(self, kernel_id: int) -> _Channel:
        channel = self._channels.get(kernel_id)
        if channel is None:
            channel = self._channels[kernel_id] = _Channel(deque())
        return channel

    def publish(self, kernel_id: int, kind: str, data: dict[str, Any], size: int = 0) -> Event | None:
        """Record the event and hand it to every subscriber of the kernel, at once. ``size``: roughly how many
        bytes ``data`` holds (outputs), for the replay buffer's byte bound. A kernel nobody has watched yet keeps
        no events (a first subscriber starts from a snapshot): None then."""
        channel = self._channels.get(kernel_id)
        if channel is None:
            return None
        channel.sequence += 1
        event = Event(f"{self.epoch}-{channel.sequence}", kind, data)
        channel.buffer.append((event, size))
        channel.size += size
        while len(channel.buffer) > 1 and (len(channel.buffer) > self.replay or channel.size > self.replay_bytes):
            channel.size -= channel.buffer.popleft()[1]
        for subscription in list(channel.subscribers):
            if not subscription._offer(event):
                channel.subscribers.discard(subscription)
        return event

    def last_id(self, kernel_id: int) -> str:
        """The id of the kernel's latest event (``"<epoch>-0"`` before the first)."""
        return f"{self.epoch}-{self._channel(kernel_id).sequence}"

    def subscribe(self, kernel_id: int, last_event_id: str | None = None) -> tuple[Subscription, list[Event] | None]:
        """Subscribe to the kernel's events from now on, and the events after ``last_event_id`` if they are all
        still in the replay buffer (None if not: the caller sends a snapshot instead). Synchronous, so a snapshot
        taken in the same step as this call is consistent with the events that follow."""
        channel = self._channel(kernel_id)
        subscription = Subscription(channel, self.queue_size)
        channel.subscribers.add(subscription)
        return subscription, self._since(channel, last_event_id)

    def _since(self, channel: _Channel, last_event_id: str | None) -> list[Event] | None:
        if not last_event_id:
            return None
        epoch, _, number = last_event_id.partition("-")
        if epoch != self.epoch or not number.isdigit():
            return None
        seen = int(number)
        if seen > channel.sequence:
            return None
        missed = channel.sequence - seen
        if missed > len(channel.buffer):
            return None  # some fell out of the buffer
        return [event for event, _ in list(channel.buffer)[len(channel.buffer) - missed :]] if missed else []

    def close(self, kernel_id: int) -> None:
        """The kernel is gone: end every subscriber's stream and forget its events."""
        channel = self._channels.pop(kernel_id, None)
        if channel is None:
            return
        for subscription in list(channel.subscribers):
            subscription._offer(None)
        channel.subscribers.clear()

    def subscriber_count(self) -> int:
        return sum(len(c.subscribers) for c in self._channels.values())
